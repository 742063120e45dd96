import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  cleanupFiguresOf,
  formatAdminCleanup,
  summarizeAdminCleanup,
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
