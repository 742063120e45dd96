import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  cleanupFiguresOf,
  formatAdminCleanup,
  summarizeAdminCleanup,
  summarizeInPlace,
} from '../dist/service/admin-cleanup.js';

// Recycle payloads as the pool emits them for an admin command (reason 'admin', one per worker).
const base = { reason: 'admin' as const, detail: 'admin', tasksDone: 3, ms: 40 };

test('admin cleanup: totals and per-worker figures over the replaced workers, with GPU', () => {
  const summary = summarizeAdminCleanup([
    {
      ...base,
      oldPid: 101,
      newPid: 201,
      rssBeforeMiB: 1024.25,
      rssAfterMiB: 512.1,
      rssFreedMiB: 512.15,
      gpuBeforeMiB: 3000,
      gpuFreedMiB: 2700,
      gpuBaselineMiB: 300,
    },
    {
      ...base,
      oldPid: 102,
      newPid: 202,
      rssBeforeMiB: 1024.25,
      rssAfterMiB: 512.1,
      rssFreedMiB: 512.15,
      gpuBeforeMiB: 1096,
      gpuFreedMiB: 883.5,
      gpuBaselineMiB: 212.5,
    },
  ]);
  assert.deepEqual(summary.recycled, [101, 102]);
  assert.deepEqual(summary.ram, { beforeMiB: 2048.5, afterMiB: 1024.2, freedMiB: 1024.3 });
  assert.deepEqual(summary.gpu, { beforeMiB: 4096, afterMiB: 512.5, freedMiB: 3583.5 });
  assert.deepEqual(summary.workers[1], {
    oldPid: 102,
    newPid: 202,
    ram: { beforeMiB: 1024.3, afterMiB: 512.1, freedMiB: 512.2 },
    gpu: { beforeMiB: 1096, afterMiB: 212.5, freedMiB: 883.5 },
  });
  // The seed's own log line, character for character.
  assert.equal(
    formatAdminCleanup(summary),
    'RAM: 2048.5MB -> 1024.2MB (freed ~1024.3MB); GPU: 4096.0MB -> 512.5MB (freed ~3583.5MB)',
  );
});

test('admin cleanup: no GPU readings means no GPU part; a worker without RSS readings is left out', () => {
  const summary = summarizeAdminCleanup([
    { ...base, oldPid: 7, newPid: 8, rssBeforeMiB: 300, rssAfterMiB: 100, rssFreedMiB: 200 },
    { ...base, oldPid: 9, newPid: 10, rssBeforeMiB: undefined, rssAfterMiB: 90, rssFreedMiB: undefined },
  ]);
  assert.deepEqual(summary.recycled, [7, 9]);
  assert.deepEqual(summary.ram, { beforeMiB: 300, afterMiB: 100, freedMiB: 200 });
  assert.equal(summary.gpu, undefined);
  assert.deepEqual(summary.workers[1], { oldPid: 9, newPid: 10 });
  assert.equal(formatAdminCleanup(summary), 'RAM: 300.0MB -> 100.0MB (freed ~200.0MB)');
});

test('admin cleanup: a GPU reading without a baseline takes the successor as before minus freed', () => {
  const summary = summarizeAdminCleanup([
    {
      ...base,
      oldPid: 1,
      newPid: 2,
      rssBeforeMiB: 50,
      rssAfterMiB: 40,
      rssFreedMiB: 10,
      gpuBeforeMiB: 800,
      gpuFreedMiB: 600,
    },
  ]);
  assert.deepEqual(summary.gpu, { beforeMiB: 800, afterMiB: 200, freedMiB: 600 });
});

test('admin cleanup: worker threads share one RSS, counted once (first before, last after)', () => {
  const summary = summarizeAdminCleanup([
    {
      ...base,
      oldPid: 5,
      newPid: 5,
      rssBeforeMiB: 900,
      rssAfterMiB: 700,
      rssFreedMiB: 200,
      memoryScope: 'process',
    },
    {
      ...base,
      oldPid: 5,
      newPid: 5,
      rssBeforeMiB: 700,
      rssAfterMiB: 550,
      rssFreedMiB: 150,
      memoryScope: 'process',
    },
  ]);
  assert.deepEqual(summary.ram, { beforeMiB: 900, afterMiB: 550, freedMiB: 350 });
});

// Inside a PID namespace only whole-device figures are known: each recycle's GPU before/after is the
// device's (two workers on one GPU, one after the other: 5000 -> 4500 -> 4000, 800 MiB back per exit).
const deviceRecycle = (oldPid: number, before: number, baseline: number, gpuIndex?: number) => ({
  ...base,
  oldPid,
  newPid: oldPid + 100,
  rssBeforeMiB: 100,
  rssAfterMiB: 60,
  rssFreedMiB: 40,
  gpuBeforeMiB: before,
  gpuFreedMiB: 800,
  gpuBaselineMiB: baseline,
  attribution: 'device' as const,
  ...(gpuIndex === undefined ? {} : { gpuIndex }),
});

test('admin cleanup: under device attribution a GPU counts once, first before to last after', () => {
  const summary = summarizeAdminCleanup([deviceRecycle(1, 5000, 4500), deviceRecycle(2, 4500, 4000)]);
  assert.deepEqual(summary.gpu, { beforeMiB: 5000, afterMiB: 4000, freedMiB: 1600 });
  // A device's figures are not the worker's own: no per-worker GPU part.
  assert.deepEqual(summary.workers[0], {
    oldPid: 1,
    newPid: 101,
    ram: { beforeMiB: 100, afterMiB: 60, freedMiB: 40 },
  });
  assert.equal(
    formatAdminCleanup(summary),
    'RAM: 200.0MB -> 120.0MB (freed ~80.0MB); GPU: 5000.0MB -> 4000.0MB (freed ~1600.0MB)',
  );
});

test('admin cleanup: under device attribution workers pinned to different GPUs add up per GPU', () => {
  const summary = summarizeAdminCleanup([
    deviceRecycle(1, 3000, 2500, 0),
    deviceRecycle(2, 2000, 1500, 1),
    deviceRecycle(3, 2500, 2000, 0),
  ]);
  // GPU 0: 3000 -> 2000, 1600 back; GPU 1: 2000 -> 1500, 800 back.
  assert.deepEqual(summary.gpu, { beforeMiB: 5000, afterMiB: 3500, freedMiB: 2400 });
});

test('admin cleanup: in-place releases under device attribution count the device once too', () => {
  const release = (pid: number, before: number, after: number) => ({
    pid,
    gpuBeforeMiB: before,
    gpuAfterMiB: after,
    attribution: 'device' as const,
    memoryScope: 'worker' as const,
  });
  const summary = summarizeInPlace([release(1, 5000, 4900), release(2, 4900, 4850)]);
  assert.deepEqual(summary.gpu, { beforeMiB: 5000, afterMiB: 4850, freedMiB: 150 });
  assert.deepEqual(summary.workers, [
    { oldPid: 1, newPid: 1 },
    { oldPid: 2, newPid: 2 },
  ]);
  // Per-process figures stay per worker and add up.
  const own = summarizeInPlace([
    { pid: 3, gpuBeforeMiB: 900, gpuAfterMiB: 600, attribution: 'process', memoryScope: 'worker' },
    { pid: 4, gpuBeforeMiB: 800, gpuAfterMiB: 700, attribution: 'process', memoryScope: 'worker' },
  ]);
  assert.deepEqual(own.gpu, { beforeMiB: 1700, afterMiB: 1300, freedMiB: 400 });
  assert.deepEqual(own.workers[0], {
    oldPid: 3,
    newPid: 3,
    gpu: { beforeMiB: 900, afterMiB: 600, freedMiB: 300 },
  });
});

test('admin cleanup: nothing replaced is zero freed, and the line still reads', () => {
  const summary = summarizeAdminCleanup([]);
  assert.deepEqual(summary, { recycled: [], ram: { beforeMiB: 0, afterMiB: 0, freedMiB: 0 }, workers: [] });
  assert.equal(formatAdminCleanup(summary), 'RAM: 0.0MB -> 0.0MB (freed ~0.0MB)');
});

test('admin cleanup: figures read off an answer only when they are numbers', () => {
  const ram = { beforeMiB: 10, afterMiB: 4, freedMiB: 6 };
  assert.deepEqual(cleanupFiguresOf({ recycled: [1], ram }), { ram });
  assert.deepEqual(cleanupFiguresOf({ recycled: [1], ram, gpu: ram }), { ram, gpu: ram });
  assert.equal(cleanupFiguresOf({ recycled: [1] }), undefined);
  assert.equal(cleanupFiguresOf({ ram: { beforeMiB: '10', afterMiB: 4, freedMiB: 6 } }), undefined);
  assert.equal(cleanupFiguresOf(null), undefined);
});
