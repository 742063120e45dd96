// The pool's GPU figures where only whole-device readings exist (a PID namespace): a device's drop
// is claimed by no worker when others shared it, so totals and /metrics never count it twice.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { GpuAccounting } from '../dist/pool/gpu-accounting.js';

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
  await gpu.afterCleanup(worker as never, during as never, device(1600), 1, 1);
  assert.equal(during.gpuFreedMiB, undefined, JSON.stringify(during));
  assert.equal(during.gpuBeforeMiB, 1600);
  await reclaim;
  // Readings taken after that reclaim ended: the drop is this worker's.
  await sleep(5);
  const later = cleanup();
  await gpu.afterCleanup(worker as never, later as never, device(700), 1, 1);
  assert.equal(later.gpuFreedMiB, 100, JSON.stringify(later));
});
