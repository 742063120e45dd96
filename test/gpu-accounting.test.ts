// The pool's GPU figures where only whole-device readings exist (a PID namespace): a device's drop
// is claimed by no worker when others shared it, so totals and /metrics never count it twice.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { GpuAccounting } from '../dist/pool/gpu-accounting.js';
import type { SupervisorEventMap } from '../dist/events.js';
import { FakeTask, flush } from './fixtures/fake-task.js';
import { fakePool, readyAll } from './fixtures/fake-pool.js';

type Usage = { miB: number; attribution: 'process' | 'device'; at: number };

/** A GpuMeter stand-in: reclaims take `reclaimMs` and free `freedMiB` of the device, as each sees it. */
function meter(options: { reclaimMs: number; freedMiB: number; baseline: Usage }) {
  return {
    probe: { readsPerCleanup: false, state: 'available' },
    usage: async (): Promise<Usage> => options.baseline,
    waitReclaimed: async (_pid: number, _gpu: number | undefined, before: Usage) => {
      await sleep(options.reclaimMs);
      return {
        freedMiB: options.freedMiB,
        ms: options.reclaimMs,
        reclaimed: true,
        attribution: before.attribution,
      };
    },
  };
}

const handle = (pid: number, gpuIndex?: number) => ({ backend: 'process', pid, gpuIndex, state: 'ready' });
const device = (miB: number): Usage => ({ miB, attribution: 'device', at: Date.now() });

test('two exits reclaimed on one device at once: neither claims the drop; one alone does', async () => {
  const gpu = new GpuAccounting(
    meter({ reclaimMs: 50, freedMiB: 1600, baseline: device(2600) }) as never,
    1000,
  );
  const [a, b] = await Promise.all([
    gpu.reclaimed(handle(1, 0) as never, device(2600)),
    gpu.reclaimed(handle(2, 0) as never, device(2600)),
  ]);
  const figuresA = await gpu.recycleFigures(handle(11, 0) as never, device(2600), a);
  const figuresB = await gpu.recycleFigures(handle(12, 0) as never, device(2600), b);
  assert.equal(figuresA.gpuFreedMiB, undefined, JSON.stringify(figuresA));
  assert.equal(figuresB.gpuFreedMiB, undefined, JSON.stringify(figuresB));
  assert.equal(figuresA.gpuBeforeMiB, 2600);
  // On another GPU at the same time, or one after the other, each drop is its own.
  const [c, d] = await Promise.all([
    gpu.reclaimed(handle(3, 0) as never, device(2600)),
    gpu.reclaimed(handle(4, 1) as never, device(2600)),
  ]);
  assert.equal((await gpu.recycleFigures(undefined, device(2600), c)).gpuFreedMiB, 1600);
  assert.equal((await gpu.recycleFigures(undefined, device(2600), d)).gpuFreedMiB, 1600);
  const e = await gpu.reclaimed(handle(5, 0) as never, device(2600));
  assert.equal((await gpu.recycleFigures(undefined, device(2600), e)).gpuFreedMiB, 1600);
});

test("a recycle's figures are of one kind: a baseline read as the device's is left out of a worker's own", async () => {
  const gpu = new GpuAccounting(meter({ reclaimMs: 0, freedMiB: 0, baseline: device(5000) }) as never, 1000);
  const own: Usage = { miB: 800, attribution: 'process', at: Date.now() };
  const reclaim = { freedMiB: 0, ms: 1000, reclaimed: false, attribution: 'process' as const };
  const figures = await gpu.recycleFigures(handle(202, 0) as never, own, reclaim);
  assert.equal(figures.attribution, 'process');
  assert.equal(figures.gpuBaselineMiB, undefined, JSON.stringify(figures));
  assert.equal(figures.gpuBeforeMiB, 800);
});

test("a cleanup whose readings straddle another exit's reclaim on its GPU claims no drop", async () => {
  const gpu = new GpuAccounting(
    meter({ reclaimMs: 80, freedMiB: 1000, baseline: device(600) }) as never,
    1000,
  );
  const cleanup = () => ({ pid: 7 }) as Record<string, unknown>;
  const worker = { ...handle(7, 0), sent: 1, lastRunAt: 0 };
  // The old worker, already out of its slot, gives its memory back while its successor cleans up.
  const reclaim = gpu.reclaimed(handle(6, 0) as never, device(1600));
  const during = cleanup();
  await gpu.afterCleanup(worker as never, during as never, device(1600), 1, () => 1);
  assert.equal(during.gpuFreedMiB, undefined, JSON.stringify(during));
  assert.equal(during.gpuBeforeMiB, 1600);
  await reclaim;
  // Readings taken after that reclaim ended: the drop is this worker's.
  await sleep(5);
  const later = cleanup();
  await gpu.afterCleanup(worker as never, later as never, device(700), 1, () => 1);
  assert.equal(later.gpuFreedMiB, 100, JSON.stringify(later));
});

test("a worker retired for idleness: its exit's device drop is not another worker's cleanup figure", async () => {
  const { pool, fakes, events } = fakePool({
    workers: 2,
    minWorkers: 1,
    maxWorkers: 2,
    idleTimeoutMs: 40,
    pipelineDepth: 1,
    logLevel: 'silent',
  });
  // Device attribution: the device holds 1000 MiB per live fake worker, nothing else.
  const deviceMiB = () => 1000 * fakes.all.filter((f) => f.state !== 'exited').length;
  let frozen = false;
  let last: Usage | undefined;
  const read = () => (last = { miB: deviceMiB(), attribution: 'device', at: Date.now() });
  const gpuMeter = {
    probe: {
      state: 'available',
      readsPerCleanup: false,
      sampleIntervalMs: 5,
      get latest() {
        return undefined;
      },
      fresh: async () => undefined,
    },
    // The sampler's readings, until `frozen`: the next would come after the cleanup below.
    refresh: async () => {
      await sleep(1);
      if (!frozen) read();
      return undefined;
    },
    cached: () => last,
    usage: async () => {
      await sleep(1);
      return read();
    },
    waitReclaimed: async () => ({ freedMiB: 1000, ms: 1, reclaimed: true, attribution: 'device' }),
  };
  const cleanups: Array<SupervisorEventMap['cleanup']> = [];
  events.on('cleanup', (e) => cleanups.push(e));
  const started = pool.start(gpuMeter as never);
  await readyAll(fakes);
  await started;
  try {
    pool.submit(new FakeTask('t1'));
    pool.submit(new FakeTask('t2')); // grows the pool to two workers
    await flush(10);
    await readyAll(fakes);
    await flush(10);
    assert.equal(fakes.all.length, 2);
    const a = fakes.all.find((f) => f.inbox.some((m) => m.kind === 'run' && m.taskId === 't1'))!;
    const b = fakes.all.find((f) => f !== a)!;
    a.finish({ value: 1 });
    await flush(10);
    await sleep(30); // readings while B's task runs: 2000 MiB on the device
    frozen = true;
    assert.equal(last?.miB, 2000);
    await sleep(120);
    await flush(10); // past idleTimeoutMs: A retires and exits
    assert.equal(a.state, 'exited', 'the idle worker retired');
    const n = cleanups.length;
    b.finish({ value: 2 });
    await flush(10);
    await sleep(50);
    const mine = cleanups.slice(n);
    assert.equal(mine.length, 1);
    assert.equal(
      mine[0]!.gpuFreedMiB,
      undefined,
      `B claims the retired worker's drop: ${JSON.stringify(mine[0])}`,
    );
  } finally {
    await pool.close();
  }
});
