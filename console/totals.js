import { facts, mib } from './format.js';

function byKey(counts) {
  const entries = Object.entries(counts ?? {});
  return entries.length === 0 ? '0' : entries.map(([key, n]) => `${key} ${n}`).join(', ');
}

export function renderTotals(dl, snapshot) {
  const c = snapshot.console;
  const { cleanup, recycle } = c.freed;
  facts(dl, [
    ['tasks ok', snapshot.totals.ok, 'ok'],
    [
      'failed',
      snapshot.totals.failed === 0 ? '0' : `${snapshot.totals.failed} (${byKey(c.failedByCode)})`,
      'failed',
    ],
    [
      'recycles',
      snapshot.totals.recycles === 0 ? '0' : `${snapshot.totals.recycles} (${byKey(c.recyclesByReason)})`,
      'recycles',
    ],
    ['freed by cleanup', `RAM ${mib(cleanup.ramMiB)} MiB, GPU ${mib(cleanup.gpuMiB)} MiB`, 'freed-cleanup'],
    ['freed by recycling', `RAM ${mib(recycle.ramMiB)} MiB, GPU ${mib(recycle.gpuMiB)} MiB`, 'freed-recycle'],
    ['throughput', `${c.throughputPerS} tasks/s`, 'throughput'],
    ['queue', `${snapshot.queue.size} queued, ${snapshot.queue.pending} running`, 'queue'],
    ['supervisor RSS', `${mib(snapshot.supervisor.rssMiB)} MiB`, 'supervisor-rss'],
  ]);
}
