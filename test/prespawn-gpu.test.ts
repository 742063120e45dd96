// Budgeted pre-spawn against the fake GPU (issue 14 §2): the real supervisor and real worker
// processes, the fake nvidia-smi reporting a nearly full device or one with room. Each simulated CUDA
// worker records, as it comes up, which other fake GPU processes are alive (births/<pid>): that is
// what the device would hold at that moment, so double residency is observed, not inferred from time.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Supervisor, type SupervisorEventMap } from 'gpu-supervisor';
import { waitUntil } from './helpers.js';
import { CUDA_WORKER, GPU0, fakeGpuPerTest, type FakeGpu } from './gpu-helpers.js';

const PROBE = { command: 'nvidia-smi', minIntervalMs: 50, timeoutMs: 2_000, reclaimTimeoutMs: 3_000 };
const TOTAL_MIB = 143771;
const CONTEXT_MIB = 300;

interface Run {
  recycles: Array<SupervisorEventMap['recycle']>;
  /** Per worker pid, in start order: the other fake GPU processes alive when it came up. */
  births: Array<{ pid: number; alive: number[] }>;
  /** Every event that names a pid, in order: [kind, pid]. */
  order: Array<[string, number]>;
}

/**
 * Two recycles of one worker (N = 3). `awaitPeer`: each worker's last task waits until its successor
 * has come up (bounded), so an early start is observed whatever the machine's load; without an early
 * start it would wait in vain, so it is used only where the successor must start early.
 */
async function recycleTwice(
  fake: FakeGpu,
  options: { margin?: number; awaitPeer?: boolean } = {},
): Promise<Run> {
  const { margin, awaitPeer = false } = options;
  const sup = new Supervisor({
    worker: CUDA_WORKER,
    workers: 1,
    logLevel: 'silent',
    recycleEveryTasks: 3,
    workerOptions: { mode: 'simulated', contextMiB: CONTEXT_MIB },
    gpuProbe: PROBE,
    recycle: { prespawn: true, ...(margin === undefined ? {} : { prespawnMarginMiB: margin }) },
  });
  const recycles: Run['recycles'] = [];
  const order: Run['order'] = [];
  const started: number[] = [];
  sup.events.on('recycle', (e) => recycles.push(e));
  sup.events.on('worker-ready', (e) => {
    order.push(['ready', e.pid]);
    started.push(e.pid);
  });
  sup.events.on('worker-exit', (e) => order.push(['exit', e.pid]));
  await sup.start();
  try {
    // A worker's first task goes out once a GPU reading shows it (stats() takes a fresh one; a recycle
    // line comes after its successor's baseline reading), so the budget has its figures in time; a
    // reading still to come only delays the verdict (asked again when it is in).
    await sup.stats();
    for (let i = 1; i <= 7; i++) {
      if (i === 4 || i === 7) await waitUntil(() => recycles.length >= (i - 1) / 3, `recycle ${(i - 1) / 3}`);
      const last = i % 3 === 0;
      const outcome = await sup.run(
        last && awaitPeer ? { op: 'awaitPeer', timeoutMs: 15_000 } : { op: 'alloc', mib: 1, holdMs: 100 },
      );
      if (last && awaitPeer)
        assert.notEqual((outcome as { peer?: number }).peer, undefined, `task ${i}: no successor came up`);
    }
  } finally {
    await sup.shutdown();
  }
  const births = started.map((pid) => ({
    pid,
    alive: readFileSync(join(fake.dir, 'births', String(pid)), 'utf8')
      .split('\n')
      .filter(Boolean)
      .map(Number),
  }));
  return { recycles, births, order };
}

describe('budgeted pre-spawn (fake GPU)', () => {
  describe('a nearly full device', () => {
    // 700 MiB free before the worker: 400 once it holds its context, short of 300 + 256.
    const gpu = fakeGpuPerTest([{ uuid: GPU0, baseUsedMiB: TOTAL_MIB - 700 }]);

    test('deferred (gpu-budget): each successor starts only once the worker it replaces is gone', async () => {
      gpu.fake.write('reclaim-delay-ms', '200');
      const { recycles, births, order } = await recycleTwice(gpu.fake);
      assert.equal(recycles.length, 2);
      for (const r of recycles) {
        assert.equal(r.prespawn, 'deferred');
        assert.equal(r.prespawnReason, 'gpu-budget');
        // The wait that exists without pre-spawn: the driver had the old worker's memory back first.
        assert.equal(r.gpuReclaimed, true);
        assert.equal(r.gpuFreedMiB, CONTEXT_MIB);
      }
      // No double residency: at every start no other worker was on the device...
      assert.deepEqual(
        births.map((b) => b.alive),
        [[], [], []],
      );
      // ...and each successor's ready came after its predecessor's exit.
      for (const r of recycles) {
        const exitAt = order.findIndex(([kind, pid]) => kind === 'exit' && pid === r.oldPid);
        const readyAt = order.findIndex(([kind, pid]) => kind === 'ready' && pid === r.newPid);
        assert.ok(exitAt >= 0 && exitAt < readyAt, `exit at ${exitAt}, successor ready at ${readyAt}`);
      }
    });

    test('a margin the device covers: pre-spawned after all', async () => {
      // 400 MiB free beside the worker: covers its 300 MiB + 50.
      const { recycles, births } = await recycleTwice(gpu.fake, { margin: 50, awaitPeer: true });
      assert.equal(recycles.length, 2);
      for (const r of recycles) assert.equal(r.prespawn, 'early');
      assert.deepEqual(
        births.slice(1).map((b) => b.alive),
        recycles.map((r) => [r.oldPid]),
      );
    });
  });

  describe('a device with room', () => {
    const gpu = fakeGpuPerTest([{ uuid: GPU0 }]);

    test('pre-spawned as before, the successor beside the worker it replaces', async () => {
      const { recycles, births } = await recycleTwice(gpu.fake, { awaitPeer: true });
      assert.equal(recycles.length, 2);
      for (const r of recycles) {
        assert.equal(r.prespawn, 'early');
        assert.equal(r.prespawnReason, undefined);
      }
      assert.deepEqual(
        births.slice(1).map((b) => b.alive),
        recycles.map((r) => [r.oldPid]),
      );
    });
  });
});
