// Recycling, cleanup and every fault a worker can have, through the real supervisor (library mode and
// forked) with real worker processes.
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { getEventListeners } from 'node:events';
import { unlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Supervisor, type SupervisorEventMap } from 'gpu-supervisor';
import {
  ECHO_WORKER,
  SupervisorProcess,
  cancelRunningAndQueued,
  childPids,
  expectCode,
  isAlive,
  scratchDir,
  waitUntil,
} from './helpers.js';

// Every supervisor a test makes is shut down at the end, even when its test failed halfway:
// a leftover worker would keep this test file's process alive.
const made: Supervisor[] = [];
after(() => Promise.all(made.map((sup) => sup.shutdown())));

function librarySupervisor(options: ConstructorParameters<typeof Supervisor>[0] = {}): Supervisor {
  const sup = new Supervisor({ worker: ECHO_WORKER, workers: 2, logLevel: 'silent', ...options });
  made.push(sup);
  return sup;
}

async function poolIsFull(sup: Supervisor, size: number): Promise<void> {
  await waitUntil(async () => {
    const { workers } = await sup.stats();
    return workers.length === size && workers.every((w) => w.state === 'ready');
  }, `pool back to ${size} ready workers`);
}

describe('recycling', () => {
  test('recycle every N tasks: the worker is replaced after exactly N, with a recycle log line', async () => {
    const sup = SupervisorProcess.fork(['--workers', '1', '--worker', ECHO_WORKER, '--recycle-every', '3']);
    await sup.ready();
    const pids: number[] = [];
    for (let i = 0; i < 7; i++) {
      const answer = await sup.request({ type: 'task', id: `t${i}`, payload: { op: 'pid' } });
      assert.ok(answer.type === 'result' && answer.ok);
      pids.push(answer.value as number);
    }
    // Tasks 0-2 on the first worker, 3-5 on the second, 6 on the third.
    assert.equal(new Set(pids.slice(0, 3)).size, 1);
    assert.equal(new Set(pids.slice(3, 6)).size, 1);
    assert.notEqual(pids[0], pids[3]);
    assert.notEqual(pids[3], pids[6]);
    const recycles = await sup.waitFor(() => {
      const lines = sup.logsWith('recycle');
      return lines.length >= 2 ? lines : undefined;
    }, 'two recycle lines');
    assert.deepEqual(
      recycles.map((r) => [r.reason, r.oldPid, r.newPid, r.tasksDone]),
      [
        ['every-n', pids[0], pids[3], 3],
        ['every-n', pids[3], pids[6], 3],
      ],
    );
    for (const r of recycles) {
      assert.equal(typeof r.rssFreedMiB, 'number');
      assert.equal(typeof r.ms, 'number');
    }
    assert.ok(!isAlive(pids[0]!) && !isAlive(pids[3]!), 'old workers are gone');
    const stats = await sup.request({ type: 'admin', id: 's', command: 'stats' });
    assert.ok(stats.type === 'admin-result' && stats.ok);
    assert.equal((stats.value as { totals: { recycles: number } }).totals.recycles, 2);
    assert.equal((await sup.stop()).code, 0);
  });

  test('every task is followed by a measured cleanup log line; the answer does not wait for it', async () => {
    const sup = SupervisorProcess.fork(['--workers', '1', '--worker', ECHO_WORKER, '--recycle-every', '0']);
    await sup.ready();
    await sup.request({ type: 'task', id: 'c1', payload: { op: 'leak', mib: 8 } });
    const line = await sup.waitFor(
      () => sup.logsWith('cleanup').find((l) => l.taskId === 'c1'),
      'cleanup line',
    );
    assert.equal(line.mode, 'light');
    assert.equal(typeof line.pid, 'number');
    for (const key of ['rssBeforeMiB', 'rssAfterMiB', 'freedMiB', 'ms'] as const)
      assert.equal(typeof line[key], 'number', key);
    assert.equal(
      line.freedMiB,
      Math.round(((line.rssBeforeMiB as number) - (line.rssAfterMiB as number)) * 10) / 10,
    );
    // The 8 MiB buffer is kept by the worker: RSS after cleanup still holds it.
    assert.ok((line.rssAfterMiB as number) > 40, `rss after ${line.rssAfterMiB}`);
    const counts = await sup.request({ type: 'task', id: 'c2', payload: { op: 'counts' } });
    assert.ok(counts.type === 'result' && counts.ok);
    assert.deepEqual(counts.value, { cleanups: 1, forced: 0, workerId: 0 });
    await sup.stop();
  });

  test('admin recycle replaces every worker one at a time while tasks keep flowing; clear-history reports rows', async () => {
    const sup = librarySupervisor({ workers: 2, recycleEveryTasks: 0 });
    await sup.start();
    const recycles: SupervisorEventMap['recycle'][] = [];
    sup.events.on('recycle', (e) => recycles.push(e));
    const before = (await sup.stats()).workers.map((w) => w.pid);
    const traffic = Array.from({ length: 40 }, (_, i) => sup.run({ op: 'sleep', ms: 5, value: i }));
    const result = (await sup.admin('recycle')) as { recycled: number[] };
    assert.deepEqual([...result.recycled].sort(), [...before].sort());
    assert.deepEqual(
      await Promise.all(traffic),
      Array.from({ length: 40 }, (_, i) => i),
    );
    assert.equal(recycles.length, 2);
    assert.ok(recycles.every((r) => r.reason === 'admin'));
    // One at a time: the second recycle started after the first one's replacement was ready.
    const after = (await sup.stats()).workers.map((w) => w.pid);
    assert.equal(after.filter((p) => before.includes(p)).length, 0);
    const cleared = (await sup.admin('clear-history')) as { removed: number; recycled: number[] };
    assert.equal(cleared.removed, 40);
    assert.equal(cleared.recycled.length, 2);
    assert.equal(sup.recentTasks().length, 0);
    await expectCode(
      sup.admin('clear-cache', { pid: cleared.recycled[0] }),
      'E_BAD_REQUEST',
      /not one of this supervisor's workers/,
    );
    const current = (await sup.stats()).workers[0]!.pid;
    assert.deepEqual(((await sup.admin('recycle', { pid: current })) as { recycled: number[] }).recycled, [
      current,
    ]);
    await expectCode(sup.admin('recycle', { pid: 'x' }), 'E_BAD_REQUEST', /args.pid/);
    // A key the command does not take is refused, not ignored: a typo must not recycle every worker.
    const pids = (await sup.stats()).workers.map((w) => w.pid);
    const recycledBefore = recycles.length;
    await expectCode(
      sup.admin('recycle', { worker: current }),
      'E_BAD_REQUEST',
      /unknown args for recycle: "worker"; it takes pid/,
    );
    await expectCode(
      sup.admin('clear-cache', { modle: 'mlp' }),
      'E_BAD_REQUEST',
      /"modle"; it takes pid, model, mode/,
    );
    await expectCode(sup.admin('stats', { verbose: true }), 'E_BAD_REQUEST', /it takes none/);
    // A huge value is quoted short in the error.
    const huge = await sup.admin('recycle', { pid: 'x'.repeat(100_000) }).catch((e: Error) => e);
    assert.ok(huge instanceof Error && huge.message.length < 200, `message of ${String(huge).length} chars`);
    assert.equal(recycles.length, recycledBefore, 'nothing was recycled');
    assert.deepEqual(
      (await sup.stats()).workers.map((w) => w.pid),
      pids,
    );
    await sup.shutdown();
  });
});

describe('dispatch', () => {
  test('the answer is sent before cleanup: a slow cleanup delays the next task, not this answer', async () => {
    // Event order, not elapsed time: the first answer comes before its cleanup ends; the second task,
    // sent right after the first answer, is answered only after that cleanup.
    const sup = librarySupervisor({ workers: 1, workerOptions: { cleanupDelayMs: 600 } });
    await sup.start();
    const order: string[] = [];
    sup.events.on('cleanup', (e) => e.taskId && order.push(`cleaned ${e.taskId}`));
    const first = await sup.submit('first', { op: 'echo', value: 1 });
    order.push('answer first');
    assert.ok(first.ok && first.value === 1);
    const second = await sup.submit('second', { op: 'echo', value: 2 });
    order.push('answer second');
    assert.ok(second.ok && second.value === 2);
    assert.deepEqual(order.slice(0, 3), ['answer first', 'cleaned first', 'answer second']);
    await sup.shutdown();
  });

  // A task already sent ahead to the worker (pipelineDepth) is not overtaken; priority orders the rest.
  for (const depth of [1, 2]) {
    test(`higher priority runs first among queued tasks (pipelineDepth ${depth})`, async () => {
      const sup = librarySupervisor({ workers: 1, pipelineDepth: depth });
      await sup.start();
      const order: string[] = [];
      const track = (name: string, p: Promise<unknown>): Promise<void> => p.then(() => void order.push(name));
      const blocker = track('blocker', sup.run({ op: 'sleep', ms: 200 }));
      await new Promise((r) => setTimeout(r, 50));
      const low = track('low', sup.run({ op: 'echo', value: 0 }, { priority: 0 }));
      const low2 = track('low2', sup.run({ op: 'echo', value: 0 }, { priority: 0 }));
      const high = track('high', sup.run({ op: 'echo', value: 0 }, { priority: 10 }));
      await Promise.all([blocker, low, low2, high]);
      assert.deepEqual(
        order,
        depth === 1 ? ['blocker', 'high', 'low', 'low2'] : ['blocker', 'low', 'high', 'low2'],
      );
      await sup.shutdown();
    });
  }
});

describe('faults', () => {
  test('a worker that dies mid-task: E_WORKER_CRASHED, replaced, pool full again, other tasks unaffected', async () => {
    const sup = librarySupervisor();
    await sup.start();
    const exits: SupervisorEventMap['recycle'][] = [];
    sup.events.on('recycle', (e) => exits.push(e));
    const bystander = sup.run({ op: 'sleep', ms: 200, value: 'fine' });
    const error = await expectCode(sup.run({ op: 'exit', code: 7 }), 'E_WORKER_CRASHED', /exit code 7/);
    assert.match(error.message, /while running task/);
    assert.equal(await bystander, 'fine');
    await poolIsFull(sup, 2);
    assert.equal(exits[0]?.reason, 'crash');
    assert.equal(await sup.run({ op: 'echo', value: 42 }), 42);
    await sup.shutdown();
  });

  test('a task over its timeout: the hung worker is killed, E_TIMEOUT, replaced', async () => {
    const sup = librarySupervisor({ workers: 1 });
    await sup.start();
    const hungPid = (await sup.stats()).workers[0]!.pid;
    // The per-task timeout, not the 60 s taskTimeoutMs default, ended it: the message names 300 ms.
    await expectCode(sup.run({ op: 'hang' }, { timeoutMs: 300 }), 'E_TIMEOUT', /300 ms/);
    await waitUntil(() => !isAlive(hungPid), 'hung worker killed');
    assert.equal(await sup.run({ op: 'echo', value: 'after' }), 'after');
    const recycles: string[] = [];
    sup.events.on('recycle', (e) => recycles.push(e.reason));
    await expectCode(sup.run({ op: 'hang' }, { timeoutMs: 100 }), 'E_TIMEOUT');
    await waitUntil(() => recycles.includes('timeout'), 'recycle with reason timeout');
    await sup.shutdown();
  });

  test('a task timing out while queued is answered without killing anyone', async () => {
    const sup = librarySupervisor({ workers: 1 });
    await sup.start();
    const pid = (await sup.stats()).workers[0]!.pid;
    const slow = sup.run({ op: 'sleep', ms: 400, value: 'slow' });
    await expectCode(sup.run({ op: 'echo', value: 1 }, { timeoutMs: 50 }), 'E_TIMEOUT');
    assert.equal(await slow, 'slow');
    assert.equal((await sup.stats()).workers[0]!.pid, pid);
    await sup.shutdown();
  });

  test('a handler that throws: E_TASK_FAILED with its message; a worker-raised E_BAD_REQUEST passes through', async () => {
    const sup = librarySupervisor({ workers: 1 });
    await sup.start();
    await expectCode(sup.run({ op: 'throw', message: 'model exploded' }), 'E_TASK_FAILED', /model exploded/);
    await expectCode(
      sup.run({ op: 'bad-request', message: 'sr must be 16000' }),
      'E_BAD_REQUEST',
      /sr must be 16000/,
    );
    assert.equal((await sup.stats()).totals.recycles, 0, 'handler errors do not cost a worker');
    await sup.shutdown();
  });

  test('cancellation with an AbortSignal: queued tasks are dropped, running ones end their worker', async () => {
    const sup = librarySupervisor({ workers: 1 });
    await sup.start();
    const pid = (await sup.stats()).workers[0]!.pid;
    await cancelRunningAndQueued(sup);
    await waitUntil(() => !isAlive(pid), 'cancelled worker killed');
    assert.equal(await sup.run({ op: 'echo', value: 'next' }), 'next');
    await sup.shutdown();
  });

  test('a worker module whose setup fails stops start-up with E_WORKERS_UNAVAILABLE', async () => {
    const sup = librarySupervisor({ workerOptions: { failSetup: true } });
    await expectCode(sup.start(), 'E_WORKERS_UNAVAILABLE', /setup exploded on purpose/);
  });

  // Counted on the real IPC channel of a forked supervisor, after a grace period: a library promise
  // settles once whatever the pool does, so only the channel can show a duplicate answer.
  test('every task gets exactly one answer under a mix of faults', async () => {
    const sup = SupervisorProcess.fork(['--workers', '2', '--worker', ECHO_WORKER, '--recycle-every', '7']);
    await sup.ready();
    const ops = Array.from({ length: 120 }, (_, i) =>
      i % 17 === 0
        ? { op: 'exit' }
        : i % 13 === 0
          ? { op: 'hang' }
          : i % 11 === 0
            ? { op: 'throw' }
            : { op: 'echo', value: i },
    );
    ops.forEach((payload, i) =>
      sup.send({ type: 'task', id: `mix-${i}`, payload, timeoutMs: payload.op === 'hang' ? 200 : 20_000 }),
    );
    await sup.waitFor(
      () => (ops.every((_, i) => sup.answersFor(`mix-${i}`).length > 0) ? true : undefined),
      'an answer to every task',
      30_000,
    );
    await new Promise((r) => setTimeout(r, 1_000)); // a late duplicate would arrive by now
    ops.forEach((payload, i) => {
      const answers = sup.answersFor(`mix-${i}`);
      assert.equal(answers.length, 1, `mix-${i} answered ${answers.length} times`);
      const answer = answers[0]!;
      assert.ok(answer.type === 'result');
      const expected = { exit: 'E_WORKER_CRASHED', hang: 'E_TIMEOUT', throw: 'E_TASK_FAILED' }[payload.op];
      if (expected === undefined) assert.ok(answer.ok && answer.value === i, JSON.stringify(answer));
      else assert.ok(!answer.ok && answer.error.code === expected, JSON.stringify(answer));
    });
    assert.equal(sup.messages.filter((m) => m.type === 'result').length, 120, 'no answer to an unknown id');
    const stats = await sup.request({ type: 'admin', id: 'stats', command: 'stats' });
    assert.ok(stats.type === 'admin-result' && stats.ok);
    const totals = (stats.value as { totals: { tasks: number; ok: number; failed: number } }).totals;
    assert.deepEqual(totals.tasks, 120);
    assert.equal(totals.ok + totals.failed, 120);
    assert.equal((await sup.stop()).code, 0);
  });
});

describe('races found in review', () => {
  test('two concurrent admin recycles while the worker is busy: both are answered', async () => {
    const sup = librarySupervisor({ workers: 1 });
    await sup.start();
    const busy = sup.run({ op: 'sleep', ms: 300, value: 'done' });
    await new Promise((r) => setTimeout(r, 50));
    const [a, b] = await Promise.all([sup.admin('recycle'), sup.admin('clear-history')]);
    assert.equal((a as { recycled: number[] }).recycled.length, 1);
    assert.equal((b as { recycled: number[] }).recycled.length, 1);
    assert.equal(await busy, 'done');
    await sup.shutdown();
  });

  test('a cleanup hook that hangs: the worker is killed after cleanup.timeoutMs and the slot refilled', async () => {
    const sup = librarySupervisor({
      workers: 1,
      workerOptions: { cleanupDelayMs: 60_000 },
      cleanup: { timeoutMs: 300 },
    });
    const recycles: string[] = [];
    sup.events.on('recycle', (e) => recycles.push(e.reason));
    await sup.start();
    assert.equal(await sup.run({ op: 'echo', value: 1 }), 1);
    await waitUntil(() => recycles.length === 1, 'worker replaced after its cleanup hung');
    assert.equal(recycles[0], 'crash');
    await sup.shutdown();
  });

  // Worker pids come from the process table and from `transition` events (emitted whatever the state),
  // never from `worker-ready`, which a shutdown during start never emits: an empty list proves nothing.
  function watchWorkers(sup: Supervisor): { pids: Set<number>; sample: () => void } {
    const before = new Set(childPids());
    const pids = new Set<number>();
    sup.events.on('transition', (e) => pids.add(e.pid));
    return {
      pids,
      sample: () => {
        for (const pid of childPids()) if (!before.has(pid)) pids.add(pid);
      },
    };
  }
  async function noneLeft(pids: Set<number>): Promise<void> {
    await waitUntil(() => [...pids].every((pid) => !isAlive(pid)), 'every worker gone', 5_000).catch(() =>
      assert.fail(`workers still alive: ${[...pids].filter(isAlive).join(', ')}`),
    );
  }

  test('shutdown during start leaves no worker behind', async () => {
    const sup = librarySupervisor({ workers: 2, workerOptions: { setupDelayMs: 400 } });
    const workers = watchWorkers(sup);
    const starting = sup.start();
    await new Promise((r) => setTimeout(r, 100));
    workers.sample();
    assert.equal(workers.pids.size, 2, 'both workers were forked and are starting');
    await sup.shutdown();
    await expectCode(starting, 'E_SHUTTING_DOWN');
    workers.sample();
    await noneLeft(workers.pids);
  });

  test('shutdown while a recycle is starting the replacement leaves no worker behind', async () => {
    const sup = librarySupervisor({ workers: 1, recycleEveryTasks: 1, workerOptions: { setupDelayMs: 500 } });
    const workers = watchWorkers(sup);
    await sup.start();
    await sup.run({ op: 'echo', value: 1 }); // triggers the recycle; the replacement takes 500 ms to start
    await new Promise((r) => setTimeout(r, 200));
    workers.sample();
    assert.ok(workers.pids.size >= 2, `the replacement was forked (${[...workers.pids].join(', ')})`);
    await sup.shutdown();
    workers.sample();
    await noneLeft(workers.pids);
  });

  test('a payload that cannot be sent is E_BAD_REQUEST and costs no worker', async () => {
    const sup = librarySupervisor({ workers: 1 });
    const exits: unknown[] = [];
    sup.events.on('worker-exit', (e) => exits.push(e));
    await sup.start();
    await expectCode(sup.run({ op: 'echo', value: () => 1 }), 'E_BAD_REQUEST', /cannot be sent/);
    assert.equal(await sup.run({ op: 'echo', value: 2 }), 2);
    assert.equal(exits.length, 0);
    await sup.shutdown();
  });

  test('a result that cannot be sent back is E_TASK_FAILED at once, not a timeout; the worker serves on', async () => {
    // A deadline far beyond the test's: an answer that never came would fail it as a timeout.
    const sup = librarySupervisor({ workers: 1, taskTimeoutMs: 600_000 });
    const exits: unknown[] = [];
    sup.events.on('worker-exit', (e) => exits.push(e));
    await sup.start();
    await expectCode(sup.run({ op: 'unsendable' }), 'E_TASK_FAILED', /result cannot be sent/);
    assert.equal(await sup.run({ op: 'echo', value: 3 }), 3);
    assert.equal(exits.length, 0, 'the worker is not killed for it');
    await sup.shutdown();
  });

  test("a worker inherits the supervisor's environment, but not its admin token", async () => {
    process.env.GPU_SUPERVISOR_ADMIN_TOKEN = 'not-for-workers-0123';
    process.env.GPU_SUPERVISOR_TEST_MARK = 'inherited';
    const sup = librarySupervisor({ workers: 1 });
    try {
      await sup.start();
      assert.equal(await sup.run({ op: 'env', name: 'GPU_SUPERVISOR_TEST_MARK' }), 'inherited');
      assert.equal(await sup.run({ op: 'env', name: 'GPU_SUPERVISOR_ADMIN_TOKEN' }), null);
    } finally {
      delete process.env.GPU_SUPERVISOR_ADMIN_TOKEN;
      delete process.env.GPU_SUPERVISOR_TEST_MARK;
      await sup.shutdown();
    }
  });

  test('one AbortSignal for many tasks: no listener is left on it', async () => {
    const sup = librarySupervisor({ workers: 1 });
    await sup.start();
    const controller = new AbortController();
    for (let i = 0; i < 30; i++) await sup.run({ op: 'echo', value: i }, { signal: controller.signal });
    assert.equal(getEventListeners(controller.signal, 'abort').length, 0);
    await sup.shutdown();
  });

  test('a timeout too large for a Node timer is refused, not fired at once', async () => {
    const sup = librarySupervisor({ workers: 1 });
    await sup.start();
    await expectCode(sup.run({ op: 'echo', value: 1 }, { timeoutMs: 3e9 }), 'E_BAD_REQUEST', /timeoutMs/);
    await sup.shutdown();
  });
});

/** Waits until the pool answers a task again (it recovers by itself once a start succeeds). */
async function waitUntilServing(sup: Supervisor): Promise<void> {
  await waitUntil(
    async () => {
      try {
        return (await sup.run({ op: 'echo', value: 'back' })) === 'back';
      } catch {
        return false;
      }
    },
    'recovered',
    20_000,
  );
}

describe('crash loops and retries', () => {
  test('workers that die right after starting: back-off, then degraded with the last error, then recovery', async () => {
    const flag = join(scratchDir('crash-loop-'), 'crash');
    writeFileSync(flag, 'on');
    const sup = librarySupervisor({
      workers: 1,
      minUptimeMs: 1000,
      maxFailedStarts: 3,
      workerOptions: { crashFlagFile: flag },
    });
    const degraded: unknown[] = [];
    const starts: number[] = [];
    sup.events.on('degraded', (e) => degraded.push(e));
    sup.events.on('worker-ready', () => starts.push(Date.now()));
    await sup.start();
    await waitUntil(() => degraded.length === 1, 'degraded', 15_000);
    await expectCode(sup.run({ op: 'echo', value: 1 }), 'E_WORKERS_UNAVAILABLE', /3 in a row.*exit code 5/);
    // Respawns backed off: the gaps between starts grow.
    const gaps = starts.slice(1).map((t, i) => t - starts[i]!);
    assert.ok(gaps.length >= 2 && gaps[gaps.length - 1]! > gaps[0]!, `gaps ${gaps.join(', ')}`);
    unlinkSync(flag);
    await waitUntilServing(sup);
    await sup.shutdown();
  });

  test('workers that die the instant they report ready are failed starts too, never a dead slot', async () => {
    // The exit can land between "ready" and the worker taking its slot: it must still be seen.
    const flag = join(scratchDir('crash-instant-'), 'crash');
    writeFileSync(flag, 'on');
    const sup = librarySupervisor({
      workers: 1,
      minUptimeMs: 1000,
      maxFailedStarts: 3,
      workerOptions: { crashFlagFile: flag, crashDelayMs: 0 },
    });
    const degraded: unknown[] = [];
    sup.events.on('degraded', (e) => degraded.push(e));
    // The first worker may die before start() resolves: then start() fails, with the documented code.
    await sup.start().catch((e: unknown) => expectCode(Promise.reject(e), 'E_WORKERS_UNAVAILABLE'));
    await waitUntil(() => degraded.length === 1, 'degraded', 15_000);
    unlinkSync(flag);
    await waitUntilServing(sup);
    await sup.shutdown();
  });

  test('one slot crash-looping backs off alone; the healthy slot keeps serving and the pool is not degraded', async () => {
    const flag = join(scratchDir('crash-slot-'), 'crash');
    writeFileSync(flag, 'on');
    const sup = librarySupervisor({
      workers: 2,
      minUptimeMs: 1000,
      maxFailedStarts: 2,
      workerOptions: { crashFlagFile: flag, crashWorkerId: 1 },
    });
    const degraded: unknown[] = [];
    sup.events.on('degraded', (e) => degraded.push(e));
    const failingExits: number[] = [];
    sup.events.on('worker-exit', (e) => e.slot === 1 && !e.expected && failingExits.push(e.pid));
    await sup.start();
    const healthy = (await sup.stats()).workers.find((w) => w.slot === 0)!.pid;
    // A task may land on the failing slot's worker in its short life (answered E_WORKER_CRASHED, and
    // then only one per death of that worker); none may be refused as if the whole pool were down, and
    // every other one is served by the healthy slot.
    let crashed = 0;
    let served = 0;
    for (let i = 0; i < 20; i++) {
      const outcome = await sup.submit(`s${i}`, { op: 'echo', value: i });
      if (outcome.ok) {
        assert.equal(outcome.value, i);
        served += outcome.workerPid === healthy ? 1 : 0;
      } else {
        assert.equal(outcome.error.code, 'E_WORKER_CRASHED', outcome.error.message);
        crashed++;
      }
      await new Promise((r) => setTimeout(r, 50));
    }
    assert.ok(crashed <= failingExits.length, `${crashed} crashed answers, ${failingExits.length} deaths`);
    assert.ok(failingExits.length >= 1, 'the failing slot did crash-loop');
    assert.ok(served > 0, 'the healthy slot served');
    assert.equal(degraded.length, 0);
    await sup.shutdown();
  });

  test('a task that kills its worker is not a crash loop: the pool never degrades', async () => {
    const sup = librarySupervisor({ workers: 1, minUptimeMs: 60_000, maxFailedStarts: 2 });
    await sup.start();
    for (let i = 0; i < 4; i++) await expectCode(sup.run({ op: 'exit' }), 'E_WORKER_CRASHED');
    assert.equal(await sup.run({ op: 'echo', value: 'fine' }), 'fine');
    await sup.shutdown();
  });

  test('retries: a task whose worker died runs again on another worker; the answer counts the attempts', async () => {
    const dir = scratchDir('retry-');
    const sup = librarySupervisor({ workers: 2, retries: 1 });
    await sup.start();
    const outcome = await sup.submit('r1', { op: 'exit-once', file: join(dir, 'a') });
    assert.ok(
      outcome.ok && outcome.value === 'second time lucky' && outcome.attempts === 2,
      JSON.stringify(outcome),
    );
    const failed = await sup.submit('r2', { op: 'throw', message: 'no retry for handler errors' });
    assert.ok(!failed.ok && failed.error.code === 'E_TASK_FAILED' && failed.attempts === undefined);
    await sup.shutdown();
    const noRetry = librarySupervisor({ workers: 1 });
    await noRetry.start();
    await expectCode(noRetry.run({ op: 'exit-once', file: join(dir, 'b') }), 'E_WORKER_CRASHED');
    await noRetry.shutdown();
  });
});

describe('idle release', () => {
  test('idleReleaseMs: an idle worker releases its caches in place (forced cleanup), once per idle stretch', async () => {
    const sup = librarySupervisor({ workers: 1, idleReleaseMs: 200 });
    const modes: Array<string | undefined> = [];
    sup.events.on('cleanup', (e) => modes.push(e.mode));
    await sup.start();
    const pid = (await sup.stats()).workers[0]!.pid;
    await sup.run({ op: 'echo', value: 1 });
    await new Promise((r) => setTimeout(r, 700));
    assert.deepEqual(await sup.run({ op: 'counts' }), { cleanups: 2, forced: 1, workerId: 0 });
    assert.deepEqual(modes.slice(0, 2), ['light', 'idle']);
    assert.equal((await sup.stats()).workers[0]!.pid, pid, 'no restart');
    await sup.shutdown();
  });
});
