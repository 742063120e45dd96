// The elastic pool (minWorkers / maxWorkers / idleTimeoutMs) and warm spares (spareWorkers), on both
// backends, with real workers. Timing-based checks use a slow-starting fixture (setupDelayMs) so
// that "waited for a cold start" and "did not" are seconds apart, not milliseconds.
import { after, afterEach, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { Supervisor, type SupervisorEventMap } from 'gpu-supervisor';
import { expectCode, waitUntil } from './helpers.js';
import { BACKENDS, POOL_WORKER, identity, supervisorFactory, type WhoAmI } from './fixtures/pool-helpers.js';

const { make, shutdownAll } = supervisorFactory({ worker: POOL_WORKER });
afterEach(shutdownAll);
after(shutdownAll);

async function size(sup: Supervisor): Promise<number> {
  return (await sup.stats()).workers.filter((w) => w.state !== 'exited').length;
}

describe('elastic pool configuration', () => {
  test('min <= workers <= max is checked at construction, in one line naming the keys', () => {
    assert.throws(
      () => new Supervisor({ worker: POOL_WORKER, workers: 2, minWorkers: 3, logLevel: 'silent' }),
      {
        name: 'ConfigError',
        message: 'invalid config: minWorkers (3) <= workers (2) <= maxWorkers (2) must hold',
      },
    );
    assert.throws(
      () => new Supervisor({ worker: POOL_WORKER, workers: 4, maxWorkers: 3, logLevel: 'silent' }),
      /minWorkers \(4\) <= workers \(4\) <= maxWorkers \(3\)/,
    );
  });
});

describe('the pool grows one start at a time up to maxWorkers', () => {
  for (const backend of BACKENDS) {
    test(`${backend}: three tasks held get three workers; a fourth waits for one to come back`, async () => {
      const sup = make({
        backend,
        workers: 1,
        minWorkers: 1,
        maxWorkers: 3,
        pipelineDepth: 1,
        recycleEveryTasks: 0,
      });
      const ready: number[] = [];
      sup.events.on('worker-ready', (e) => ready.push(e.slot));
      await sup.start();
      assert.deepEqual((await sup.stats()).pool, { current: 1, min: 1, max: 3, spares: 0, backend });
      const held = [0, 1, 2].map((i) => sup.submit(`hold-${i}`, { op: 'sleep', ms: 1_500 }));
      await waitUntil(() => ready.length === 3, 'two more workers started');
      assert.deepEqual(ready, [0, 1, 2], 'one start at a time, in slot order');
      assert.equal((await sup.stats()).pool.current, 3);
      let answered = false;
      const waiting = sup.submit('fourth', { op: 'whoami' }).then((o) => ((answered = true), o));
      await new Promise((r) => setTimeout(r, 300));
      assert.equal(answered, false, 'no fourth worker past maxWorkers: the task waits');
      assert.equal(ready.length, 3);
      const answers = await Promise.all(held);
      const fourth = await waiting;
      assert.ok(fourth.ok, JSON.stringify(fourth));
      const servers = answers.map((a) => (a.ok ? a.workerPid : -1));
      assert.ok(servers.includes(fourth.workerPid), 'it ran on one of the three, once one was free');
    });
  }
});

for (const backend of BACKENDS) {
  describe(`elastic pool on the ${backend} backend`, () => {
    test('starts minWorkers, grows while tasks wait (never past maxWorkers), shrinks back after idleTimeoutMs', async () => {
      const sup = make({ backend, workers: 2, minWorkers: 1, maxWorkers: 3, idleTimeoutMs: 400 });
      const recycles: SupervisorEventMap['recycle'][] = [];
      const exits: SupervisorEventMap['worker-exit'][] = [];
      const ready: SupervisorEventMap['worker-ready'][] = [];
      sup.events.on('recycle', (e) => recycles.push(e));
      sup.events.on('worker-exit', (e) => exits.push(e));
      sup.events.on('worker-ready', (e) => ready.push(e));
      await sup.start();
      assert.equal(await size(sup), 1);
      let peak = 1;
      const watching = setInterval(() => void size(sup).then((n) => (peak = Math.max(peak, n))), 25);
      await Promise.all(Array.from({ length: 9 }, (_, i) => sup.run({ op: 'sleep', ms: 300, value: i })));
      clearInterval(watching);
      // The supervisor's queue lets maxWorkers tasks in flight: with 9 sleeping tasks the pool grows to
      // exactly maxWorkers, never past it.
      const grown = ready.length;
      assert.equal(grown, 3, `${grown} workers started`);
      assert.ok(peak <= 3, `peak ${peak}`);
      assert.ok(new Set(ready.map((r) => r.slot)).size === grown, 'each in its own slot');
      await waitUntil(async () => (await size(sup)) === 1, 'back to minWorkers', 15_000);
      await waitUntil(
        () => recycles.filter((r) => r.reason === 'idle').length === grown - 1,
        'idle recycles',
      );
      const idle = recycles.filter((r) => r.reason === 'idle');
      assert.ok(idle.every((r) => r.newPid === undefined && /idleTimeoutMs 400/.test(r.detail)));
      assert.ok(exits.length === grown - 1 && exits.every((e) => e.expected), 'idle exits are expected');
      // It stays at minWorkers (no respawn), and still serves.
      await new Promise((r) => setTimeout(r, 600));
      assert.equal(await size(sup), 1);
      assert.equal(ready.length, grown);
      assert.equal(await sup.run({ op: 'echo', value: 'ok' }), 'ok');
    });

    test('minWorkers 0: no worker until a task comes, none again once idle', async () => {
      const sup = make({ backend, workers: 1, minWorkers: 0, idleTimeoutMs: 300 });
      await sup.start();
      assert.equal(await size(sup), 0);
      assert.equal(await sup.run({ op: 'echo', value: 1 }), 1);
      assert.equal(await size(sup), 1);
      await waitUntil(async () => (await size(sup)) === 0, 'shrunk to zero', 10_000);
      assert.equal(await sup.run({ op: 'echo', value: 2 }), 2);
    });
  });

  describe(`warm spares on the ${backend} backend`, () => {
    const SLOW = 600;

    // Event order, not elapsed time: after the trigger, did a worker for the slot have to become ready
    // before the next task could be answered (a cold start), or did a warm spare answer it at once?
    async function nextTaskAfter(
      spareWorkers: number,
      trigger: 'crash' | 'every-n',
    ): Promise<{ coldStarts: number; recycle: SupervisorEventMap['recycle'] & { spare?: true } }> {
      const sup = make({
        backend,
        workers: 1,
        spareWorkers,
        recycleEveryTasks: trigger === 'every-n' ? 2 : 0,
        recycle: { prespawn: false },
        workerOptions: { setupDelayMs: SLOW },
      });
      const recycles: SupervisorEventMap['recycle'][] = [];
      sup.events.on('recycle', (e) => recycles.push(e));
      const events: Array<['ready', number] | ['task', string]> = [];
      sup.events.on('worker-ready', (e) => events.push(['ready', e.slot]));
      sup.events.on('task', (e) => events.push(['task', e.id]));
      await sup.start();
      if (trigger === 'crash') await expectCode(sup.run({ op: 'exit' }), 'E_WORKER_CRASHED');
      else for (let i = 0; i < 2; i++) await sup.run({ op: 'echo', value: i });
      const triggeredAt = events.length;
      const next = await sup.submit('next', { op: 'echo', value: 'next' });
      assert.ok(next.ok && next.value === 'next', JSON.stringify(next));
      const answeredAt = events.findIndex(([kind, what]) => kind === 'task' && what === 'next');
      // Slot workers (slot >= 0; a spare is -1) that became ready between the trigger and the answer.
      const coldStarts = events
        .slice(triggeredAt, answeredAt)
        .filter(([kind, slot]) => kind === 'ready' && (slot as number) >= 0).length;
      await waitUntil(() => recycles.length > 0, 'recycle event');
      await sup.shutdown();
      return { coldStarts, recycle: recycles[0]! };
    }

    for (const trigger of ['crash', 'every-n'] as const) {
      test(`spareWorkers 1: after a ${trigger} the next task does not wait for a cold start`, async () => {
        const cold = await nextTaskAfter(0, trigger);
        assert.equal(cold.coldStarts, 1, 'without a spare the next task waits for the replacement to start');
        const warm = await nextTaskAfter(1, trigger);
        assert.equal(warm.coldStarts, 0, 'with a spare no worker had to start first');
        assert.equal(warm.recycle.reason, trigger);
        assert.equal(warm.recycle.spare, true);
        assert.equal(cold.recycle.spare, undefined);
      });
    }

    test('a new spare starts behind the one that took over; spares take no task', async () => {
      const sup = make({ backend, workers: 1, spareWorkers: 1, recycleEveryTasks: 0 });
      const ready: SupervisorEventMap['worker-ready'][] = [];
      sup.events.on('worker-ready', (e) => ready.push(e));
      await sup.start();
      assert.deepEqual(ready.map((r) => r.slot).sort(), [-1, 0]);
      const ids = new Set<number>();
      for (let i = 0; i < 5; i++) ids.add(identity(backend, (await sup.run({ op: 'whoami' })) as WhoAmI));
      assert.equal(ids.size, 1, 'the spare took no task');
      await expectCode(sup.run({ op: 'exit' }), 'E_WORKER_CRASHED');
      await waitUntil(() => ready.filter((r) => r.slot === -1).length === 2, 'a new spare started');
      const who = (await sup.run({ op: 'whoami' })) as WhoAmI;
      assert.ok(who.workerId >= 1, `the slot is served by the former spare (workerId ${who.workerId})`);
    });
  });
}
