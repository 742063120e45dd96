// Races between a worker's exit and the pool's other moves (its start, a spare taking over, a retired
// worker's successor), found by review and driven here with fake workers, each to the point where it
// went wrong: a process left running after shutdown, or a spare started over the memory budget.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type { FakeWorkers } from '../dist/pool/runtime/fake-runtime.js';
import { FakeTask, flush } from './fixtures/fake-task.js';
import { fakePool, readyAll } from './fixtures/fake-pool.js';
import { scratchDir } from './helpers.js';
import type { SupervisorOptions } from '../dist/config/schema.js';

function scheduler(options: SupervisorOptions, procRoot?: string) {
  const base = {
    minUptimeMs: 0,
    startTimeoutMs: 600_000,
    logLevel: 'silent',
    cleanup: { gpu: false },
  } as const;
  return fakePool({ ...base, ...options }, procRoot ? { procRoot } : {});
}

const running = (fakes: FakeWorkers): number[] =>
  fakes.all.filter((f) => f.state !== 'exited').map((f) => f.pid);

test('a worker killed while the pool starts its spares is replaced once, and shutdown leaves no process', async () => {
  const { pool, fakes } = scheduler({ workers: 1, spareWorkers: 1, idleTimeoutMs: 0 });
  const started = pool.start();
  await flush();
  const first = fakes.all[0]!;
  first.becomeReady();
  await flush();
  const spare = fakes.all[1];
  assert.equal(spare?.state, 'starting', 'the spare starts once the slot worker is ready');
  // The spare still starts; the slot's worker dies, and its replacement comes up first.
  first.die(null, 'SIGKILL');
  await flush();
  const replacement = fakes.starting.find((f) => f !== spare)!;
  replacement.becomeReady();
  await flush();
  spare!.becomeReady();
  await started;
  await flush(10);
  const serving = pool.slotViews()[0]?.worker?.pid;
  assert.ok(serving !== undefined && serving !== first.pid, 'the dead worker is not put back in its slot');
  const task = new FakeTask('t');
  pool.submit(task);
  await flush();
  assert.equal(fakes.all.find((f) => f.inbox.some((r) => r.taskId === 't'))?.pid, serving);
  await pool.close();
  await flush();
  assert.deepEqual(running(fakes), [], 'a worker outlived the pool');
});

test("a retired worker's successor, stopped, does not take the next successor of its slot with it", async () => {
  const { pool, fakes } = scheduler({
    workers: 1,
    minWorkers: 0,
    maxWorkers: 1,
    recycleEveryTasks: 2,
    idleTimeoutMs: 30,
    recycle: { prespawn: true, maxConcurrent: 2 },
  });
  await pool.start();
  pool.submit(new FakeTask('t1'));
  await flush();
  const first = fakes.all[0]!;
  first.becomeReady();
  await flush();
  const successorA = fakes.starting[0]!;
  first.finish({ value: 1 });
  // Idle past idleTimeoutMs: the worker retires, its successor (still starting) is to be stopped.
  await sleep(100);
  await flush();
  pool.submit(new FakeTask('t2'));
  await flush();
  const second = fakes.starting.find((f) => f !== successorA)!;
  second.becomeReady();
  await flush();
  const successorB = fakes.starting.find((f) => f !== successorA);
  assert.ok(successorB, 'the new worker pre-spawned its own successor');
  successorA.becomeReady();
  await flush(10);
  assert.equal(successorA.state, 'exited', "the retired worker's successor is stopped");
  successorB.becomeReady();
  await flush(10);
  assert.equal(pool.slotViews()[0]?.successor?.state, 'ready', 'the slot still knows its successor');
  await pool.close();
  await flush();
  assert.deepEqual(running(fakes), [], 'a worker outlived the pool');
});

test('a spare refill held back by the memory budget starts only once the replaced worker is gone', async () => {
  const proc = scratchDir('gpu-supervisor-proc-');
  writeFileSync(join(proc, 'stat'), 'cpu  100 0 100 10000 0 0 0 0 0 0\n');
  // 10 MiB available: less than one more worker.
  writeFileSync(join(proc, 'meminfo'), 'MemTotal: 16777216 kB\nMemAvailable: 10240 kB\n');
  const { pool, fakes, events } = scheduler({ workers: 1, spareWorkers: 1, idleTimeoutMs: 0 }, proc);
  const recycles: Array<{ prespawn?: string; prespawnReason?: string }> = [];
  events.on('recycle', (event) => recycles.push(event));
  const started = pool.start();
  await readyAll(fakes);
  await started;
  const old = fakes.all[0]!;
  pool.submit(new FakeTask('t1'));
  await flush();
  const recycled = pool.recycle('admin');
  await flush();
  // The spare took the slot; the old worker still runs its task, so no new spare may start yet.
  assert.equal(fakes.all.length, 2, 'a spare refill started beside a worker that still holds its memory');
  old.finish({ value: 1 });
  await flush(10);
  await readyAll(fakes);
  await recycled;
  assert.equal(old.state, 'exited');
  assert.equal(fakes.all.length, 3, 'the refill started once the old worker was gone');
  assert.equal(recycles[0]?.prespawn, 'deferred');
  assert.equal(recycles[0]?.prespawnReason, 'ram-budget');
  await pool.close();
});

// ---- the pool's start: a first worker that dies early, a shutdown in the middle ------------------

/**
 * Two first workers: the first reports ready and dies before start() places it; the second reports
 * ready `lateMs` later. Resolves once start() has.
 */
async function firstDiesBeforePlacement(minUptimeMs: number, lateMs = 0) {
  const made = scheduler({ workers: 2, spareWorkers: 0, minUptimeMs });
  const { pool, fakes } = made;
  const started = pool.start();
  await flush();
  const [w0, w1] = fakes.all;
  w0!.becomeReady();
  await flush();
  w0!.die(1, null);
  await flush();
  if (lateMs > 0) await sleep(lateMs);
  w1!.becomeReady();
  await started;
  await flush(10);
  return made;
}

test('a first worker dead between ready and its placement is refilled once, its death counted once', async () => {
  const { pool, fakes, sleeps } = await firstDiesBeforePlacement(60_000);
  assert.equal(fakes.starting.length, 1, 'one refill for the one death');
  assert.deepEqual(sleeps, [100], 'the death is a failed start, counted once (the first back-off)');
  fakes.starting[0]!.becomeReady();
  await flush(10);
  assert.equal(fakes.all.length, 3, 'no second refill');
  assert.ok(pool.slotViews().every((v) => v.worker?.state === 'ready'));
  await pool.close();
  await flush();
  assert.deepEqual(running(fakes), []);
});

test('the uptime of a first worker dead before its placement is measured at its death, not at placement', async () => {
  // The other first worker takes longer than minUptimeMs to start.
  const { pool, fakes, sleeps } = await firstDiesBeforePlacement(500, 600);
  try {
    assert.deepEqual(sleeps, [100], 'its death is a failed start: the refill backs off');
  } finally {
    await readyAll(fakes);
    await pool.close();
  }
});

test('a shutdown asked from a worker-ready listener leaves no first worker running', async () => {
  for (const workers of [1, 2, 3]) {
    const { pool, fakes, events } = scheduler({ workers, spareWorkers: 0 });
    let closed: Promise<void> | undefined;
    let ready = 0;
    events.on('worker-ready', () => {
      if (++ready === workers) closed = pool.close();
    });
    const started = pool.start();
    await flush();
    for (const fake of fakes.all) fake.becomeReady();
    await assert.rejects(started);
    await closed;
    await flush(10);
    assert.deepEqual(running(fakes), [], `${workers} workers`);
  }
});

test('a task handed to the pool while its first workers start waits for them: no worker outside a slot', async () => {
  const { pool, fakes } = scheduler({ workers: 2, spareWorkers: 0 });
  const started = pool.start();
  await flush();
  const [w0, w1] = fakes.all;
  w0!.becomeReady();
  await flush();
  const task = new FakeTask('early');
  pool.submit(task);
  await flush();
  const extra = fakes.all.length - 2;
  w1!.becomeReady();
  await readyAll(fakes);
  await started;
  await flush(10);
  await pool.close();
  await flush(10);
  assert.deepEqual({ extra, left: running(fakes) }, { extra: 0, left: [] });
});
