// RecyclePolicy as a table of inputs -> decisions, the leak estimator, the jitter draw; then the
// rss, leak and maxConcurrent signals end to end with a worker that leaks native memory.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { Supervisor, type SupervisorEventMap } from 'gpu-supervisor';
import {
  decideAfterTask,
  decideWhenIdle,
  drawRecycleAfter,
  nextIdleCheckMs,
  type IdleFacts,
  type IdlePolicyOptions,
  type RecyclePolicyOptions,
  type WorkerFacts,
} from '../dist/core/recycle-policy.js';
import { LeakEstimator } from '../dist/core/leak-estimator.js';
import { nearCeiling } from '../dist/core/verdict.js';
import { ECHO_WORKER, waitUntil } from './helpers.js';

describe('decideAfterTask', () => {
  const base: RecyclePolicyOptions = {
    recycleEveryTasks: 0,
    rssMiB: 0,
    gpuMiB: 0,
    maxAgeMs: 0,
    leakHorizonTasks: 0,
  };
  const cases: Array<[string, WorkerFacts, Partial<RecyclePolicyOptions>, string | false]> = [
    [
      'nothing configured',
      { tasksDone: 1e6, rssMiB: 1e5, gpuMiB: 1e5, ageMs: 1e9, leakMiBPerTask: 9 },
      {},
      false,
    ],
    ['every-n reached', { tasksDone: 10 }, { recycleEveryTasks: 10 }, 'every-n'],
    ['every-n one task short', { tasksDone: 999 }, { recycleEveryTasks: 1000 }, false],
    ['every-n passed (a late verdict still recycles)', { tasksDone: 4 }, { recycleEveryTasks: 3 }, 'every-n'],
    ['every-n 1: after every task', { tasksDone: 1 }, { recycleEveryTasks: 1 }, 'every-n'],
    [
      "every-n with this worker's jittered N not reached",
      { tasksDone: 10, recycleAfterTasks: 13 },
      { recycleEveryTasks: 10 },
      false,
    ],
    [
      'every-n with jittered N reached',
      { tasksDone: 13, recycleAfterTasks: 13 },
      { recycleEveryTasks: 10 },
      'every-n',
    ],
    ['rss over the ceiling', { tasksDone: 1, rssMiB: 301 }, { rssMiB: 300 }, 'rss'],
    ['rss at the ceiling', { tasksDone: 1, rssMiB: 300 }, { rssMiB: 300 }, false],
    ['rss unknown', { tasksDone: 1 }, { rssMiB: 300 }, false],
    ['gpu over', { tasksDone: 1, gpuMiB: 2049 }, { gpuMiB: 2048 }, 'gpu'],
    [
      'leak would cross within the horizon',
      { tasksDone: 9, rssMiB: 250, leakMiBPerTask: 2 },
      { rssMiB: 300, leakHorizonTasks: 30 },
      'leak',
    ],
    [
      'leak would not cross within the horizon',
      { tasksDone: 9, rssMiB: 250, leakMiBPerTask: 1 },
      { rssMiB: 300, leakHorizonTasks: 30 },
      false,
    ],
    [
      'leak without a ceiling says nothing',
      { tasksDone: 9, rssMiB: 250, leakMiBPerTask: 50 },
      { leakHorizonTasks: 30 },
      false,
    ],
    [
      'shrinking is no leak',
      { tasksDone: 9, rssMiB: 250, leakMiBPerTask: -3 },
      { rssMiB: 300, leakHorizonTasks: 30 },
      false,
    ],
    ['max-age passed', { tasksDone: 1, ageMs: 61_000 }, { maxAgeMs: 60_000 }, 'max-age'],
    [
      'every-n wins over rss',
      { tasksDone: 5, rssMiB: 999 },
      { recycleEveryTasks: 5, rssMiB: 300 },
      'every-n',
    ],
  ];
  for (const [name, facts, options, expected] of cases) {
    test(name, () => {
      const decision = decideAfterTask(facts, { ...base, ...options });
      assert.equal(decision.recycle ? decision.reason : false, expected);
    });
  }

  test('details name the knob and the numbers', () => {
    const leak = decideAfterTask(
      { tasksDone: 9, rssMiB: 250, leakMiBPerTask: 2 },
      { ...base, rssMiB: 300, leakHorizonTasks: 30 },
    );
    assert.ok(leak.recycle);
    assert.match(
      leak.detail,
      /leaking 2\.00 MiB\/task: RSS 250 MiB would pass recycle\.rssMiB 300 within 30 tasks/,
    );
    const every = decideAfterTask(
      { tasksDone: 13, recycleAfterTasks: 13 },
      { ...base, recycleEveryTasks: 10 },
    );
    assert.ok(every.recycle);
    assert.match(every.detail, /13 tasks done \(recycleEveryTasks 10, 13 with jitter\)/);
  });
});

describe('decideWhenIdle and nextIdleCheckMs (the timer for idle workers)', () => {
  const idle: IdleFacts = { ageMs: 10_000, idleMs: 5_000, poolSize: 3, minWorkers: 1 };
  const cases: Array<[string, Partial<IdleFacts>, IdlePolicyOptions, string | false, number | undefined]> = [
    ['nothing configured', {}, {}, false, undefined],
    ['idle timeout 0 means never', {}, { idleTimeoutMs: 0 }, false, undefined],
    ['idle past the timeout, pool above min', {}, { idleTimeoutMs: 5_000 }, 'idle', 0],
    ['idle not yet past the timeout', { idleMs: 1_000 }, { idleTimeoutMs: 5_000 }, false, 4_000],
    ['at minWorkers: never shrinks', { poolSize: 1 }, { idleTimeoutMs: 5_000 }, false, undefined],
    ['max-age passed while idle', {}, { maxAgeMs: 9_000 }, 'max-age', 0],
    ['max-age not yet passed: check just after it', {}, { maxAgeMs: 12_000 }, false, 2_001],
    [
      'idle wins over max-age: a leaving worker is not restarted first',
      {},
      { maxAgeMs: 1, idleTimeoutMs: 1 },
      'idle',
      0,
    ],
    ['at min, max-age still applies', { poolSize: 1 }, { maxAgeMs: 9_000, idleTimeoutMs: 1 }, 'max-age', 0],
    [
      'the nearer of the two checks',
      { idleMs: 4_500 },
      { maxAgeMs: 12_000, idleTimeoutMs: 5_000 },
      false,
      500,
    ],
  ];
  for (const [name, facts, options, expected, nextMs] of cases) {
    test(name, () => {
      const decision = decideWhenIdle({ ...idle, ...facts }, options);
      assert.equal(decision.recycle ? decision.reason : false, expected);
      assert.equal(nextIdleCheckMs({ ...idle, ...facts }, options), nextMs);
    });
  }

  test('details name the knob and the numbers', () => {
    const shrink = decideWhenIdle(idle, { idleTimeoutMs: 5_000 });
    assert.ok(shrink.recycle);
    assert.equal(shrink.detail, 'idle 5000 ms (idleTimeoutMs 5000), pool 3 above minWorkers 1');
    const old = decideWhenIdle(idle, { maxAgeMs: 9_000 });
    assert.ok(old.recycle);
    assert.match(old.detail, /age 10000 ms over recycle\.maxAgeMs 9000/);
  });
});

describe('drawRecycleAfter and LeakEstimator', () => {
  test('jitter draws uniformly from [N, N + jitter]', () => {
    const draws = Array.from({ length: 2000 }, () => drawRecycleAfter(100, 10));
    assert.equal(Math.min(...draws), 100);
    assert.equal(Math.max(...draws), 110);
    assert.equal(new Set(draws).size, 11);
    assert.equal(drawRecycleAfter(100, 0), 100);
    assert.equal(drawRecycleAfter(0, 10), 0);
    assert.equal(
      drawRecycleAfter(100, 10, () => 0.999),
      110,
    );
  });

  test('the leak estimator finds the slope and ignores noise around a flat line', () => {
    const leak = new LeakEstimator(20);
    for (let i = 0; i < 4; i++) leak.add(100 + 2 * i);
    assert.equal(leak.miBPerTask, undefined, 'too few readings');
    for (let i = 4; i < 30; i++) leak.add(100 + 2 * i + (i % 2 ? 0.5 : -0.5));
    assert.ok(Math.abs(leak.miBPerTask! - 2) < 0.1, String(leak.miBPerTask));
    const flat = new LeakEstimator(20);
    for (let i = 0; i < 20; i++) flat.add(100 + (i % 3) - 1);
    assert.ok(Math.abs(flat.miBPerTask!) < 0.1);
  });

  test('LeakEstimator: a reading after a cleanup covering 3 tasks (cleanup.everyTasks 3) is still MiB per task', () => {
    const leak = new LeakEstimator(20);
    // 2 MiB per task, read once every 3 tasks: 6 MiB between readings.
    for (let i = 0; i < 10; i++) leak.add(100 + 6 * i, 3);
    assert.ok(Math.abs(leak.miBPerTask! - 2) < 1e-9, String(leak.miBPerTask));
  });

  test('LeakEstimator: the last step is known from the second reading, long before the rate', () => {
    const leak = new LeakEstimator(20);
    leak.add(100, 5);
    assert.equal(leak.lastStepMiBPerTask, undefined);
    leak.add(115, 5);
    assert.equal(leak.lastStepMiBPerTask, 3);
    assert.equal(leak.miBPerTask, undefined, 'the rate still waits for 5 readings');
  });

  test('nearCeiling: the last step counts before the leak rate is known', () => {
    const worker = {
      sent: 10,
      recycleAfter: 0,
      held: 0,
      cleaning: 0,
      rssMiB: 93,
      gpuMiB: undefined,
      leakMiBPerTask: undefined,
      lastStepMiBPerTask: undefined as number | undefined,
      ownMemory: true,
      ageMs: 1000,
      idleMs: 0,
      averageTaskMs: 1,
    };
    // cleanup.everyTasks 5 with pipelineDepth 1: the next reading is 6 tasks away (the scheduler's sum).
    const policy = { recycleEveryTasks: 0, rssMiB: 107, gpuMiB: 0, maxAgeMs: 0, leakHorizonTasks: 0 };
    const options = { policy, pipelineDepth: 5, idleTimeoutMs: 0, prespawn: false };
    assert.equal(nearCeiling(worker, options), false, 'no growth known: only the 5% margin (5.35 MiB)');
    assert.equal(nearCeiling({ ...worker, lastStepMiBPerTask: 3 }, options), true, '93 + 6 x 3 >= 107');
    assert.equal(nearCeiling({ ...worker, lastStepMiBPerTask: 1 }, options), false, '93 + 6 x 1 < 107');
    assert.equal(nearCeiling({ ...worker, lastStepMiBPerTask: 1, leakMiBPerTask: 3 }, options), true);
    // Once the rate is known it alone counts: a step after a trim does not hold pipelining back.
    assert.equal(nearCeiling({ ...worker, lastStepMiBPerTask: 30, leakMiBPerTask: 0.5 }, options), false);
  });
});

describe('memory signals end to end (a worker that keeps 4 MiB per task)', () => {
  async function runLeaking(recycle: Record<string, number>, tasks: number) {
    const sup = new Supervisor({
      worker: ECHO_WORKER,
      workers: 1,
      logLevel: 'silent',
      recycleEveryTasks: 0,
      recycle,
    });
    const recycles: SupervisorEventMap['recycle'][] = [];
    const rss: number[] = [];
    sup.events.on('recycle', (e) => recycles.push(e));
    sup.events.on('cleanup', (e) => rss.push(e.rssAfterMiB));
    await sup.start();
    const base = (await sup.stats()).workers[0]!.rssMiB!;
    for (let i = 0; i < tasks; i++) await sup.run({ op: 'leak', mib: 4 });
    await new Promise((r) => setTimeout(r, 300));
    await sup.shutdown();
    return { recycles, rss, base };
  }

  test('recycle.rssMiB: recycled once RSS passes the ceiling, never far above it', async () => {
    const { recycles, rss, base } = await runLeaking({ rssMiB: 0 }, 1);
    const ceiling = Math.round(base + 40);
    const run = await runLeaking({ rssMiB: ceiling }, 40);
    assert.ok(rss.length > 0);
    assert.ok(run.recycles.length >= 2, `${run.recycles.length} recycles`);
    assert.ok(run.recycles.every((r) => r.reason === 'rss'));
    assert.ok(
      Math.max(...run.rss) <= ceiling + 4 + 1,
      `peak ${Math.max(...run.rss)} MiB, ceiling ${ceiling}`,
    );
    assert.equal(recycles.length, 0);
  });

  test('leak rate: recycled before crossing the ceiling, with the rate in the detail', async () => {
    const probe = await runLeaking({}, 1);
    const ceiling = Math.round(probe.base + 60);
    const run = await runLeaking({ rssMiB: ceiling, leakHorizonTasks: 5 }, 40);
    assert.ok(run.recycles.length >= 1);
    assert.equal(run.recycles[0]!.reason, 'leak');
    assert.match(run.recycles[0]!.detail, /leaking \d+\.\d\d MiB\/task/);
    assert.ok(Math.max(...run.rss) <= ceiling, `peak ${Math.max(...run.rss)} stayed under ${ceiling}`);
  });

  test('recycle.maxConcurrent 1: workers due together recycle one after the other', async () => {
    const sup = new Supervisor({ worker: ECHO_WORKER, workers: 3, logLevel: 'silent', recycleEveryTasks: 2 });
    const order: string[] = [];
    sup.events.on('worker-exit', (e) => e.expected && order.push('exit'));
    sup.events.on('recycle', () => order.push('ready'));
    await sup.start();
    try {
      await Promise.all(Array.from({ length: 6 }, (_, i) => sup.run({ op: 'sleep', ms: 50, value: i })));
      // All three are due at once; deferred ones go as soon as the previous replacement is ready.
      await waitUntil(() => order.filter((o) => o === 'ready').length === 3, 'three recycles');
      // Never two exits before the replacement of the first is ready.
      for (let i = 1; i < order.length; i++)
        assert.ok(!(order[i] === 'exit' && order[i - 1] === 'exit'), order.join(','));
    } finally {
      await sup.shutdown();
    }
  });
});

describe('pre-spawn', () => {
  // Event order, not elapsed time: with pre-spawn the replacement reports ready before its predecessor
  // answers its last task (so the next task never waits for a cold start); without, only after it.
  async function timeline(prespawn: boolean): Promise<Array<['ready' | 'task', number]>> {
    const sup = new Supervisor({
      worker: ECHO_WORKER,
      workers: 1,
      logLevel: 'silent',
      recycleEveryTasks: 3,
      recycle: { prespawn },
    });
    const events: Array<['ready' | 'task', number]> = [];
    sup.events.on('worker-ready', (e) => events.push(['ready', e.pid]));
    sup.events.on('task', (e) => events.push(['task', e.workerPid!]));
    await sup.start();
    // Tasks long enough for a replacement to start while the last one runs.
    for (let i = 0; i < 12; i++) await sup.run({ op: 'sleep', ms: 250 });
    await sup.shutdown();
    return events;
  }

  function handOvers(
    events: Array<['ready' | 'task', number]>,
  ): Array<{ readyAt: number; lastTaskAt: number }> {
    const workers = [...new Set(events.filter(([kind]) => kind === 'task').map(([, pid]) => pid))];
    // 12 tasks, N = 3: exactly three tasks per worker, in both modes.
    assert.deepEqual(
      workers.map((pid) => events.filter(([kind, p]) => kind === 'task' && p === pid).length),
      [3, 3, 3, 3],
    );
    return workers.slice(1).map((pid, i) => ({
      readyAt: events.findIndex(([kind, p]) => kind === 'ready' && p === pid),
      lastTaskAt: events.findLastIndex(([kind, p]) => kind === 'task' && p === workers[i]),
    }));
  }

  test('the replacement is ready before the last task of the worker it replaces is answered', async () => {
    for (const { readyAt, lastTaskAt } of handOvers(await timeline(true)))
      assert.ok(
        readyAt >= 0 && readyAt < lastTaskAt,
        `ready at event ${readyAt}, last task at ${lastTaskAt}`,
      );
  });

  test('without pre-spawn the replacement starts only after that last task', async () => {
    for (const { readyAt, lastTaskAt } of handOvers(await timeline(false)))
      assert.ok(readyAt > lastTaskAt, `ready at event ${readyAt}, last task at ${lastTaskAt}`);
  });
});
