import type { HistoryReport } from './report.js';
import type { Distribution } from './stats.js';

const mib = (v: number | null): string => (v === null ? '-' : `${v.toFixed(1)} MiB`);

function dist(d: Distribution): string {
  if (d.count === 0) return 'none measured';
  return `median ${mib(d.median)}, p95 ${mib(d.p95)}, total ${mib(d.total)} over ${d.count}`;
}

function duration(ms: number): string {
  if (ms < 1_000) return `${ms} ms`;
  if (ms < 120_000) return `${(ms / 1_000).toFixed(1)} s`;
  if (ms < 7_200_000) return `${(ms / 60_000).toFixed(1)} min`;
  return `${(ms / 3_600_000).toFixed(1)} h`;
}

function counts(record: Record<string, number>): string {
  const entries = Object.entries(record).sort((a, b) => b[1] - a[1]);
  return entries.length ? entries.map(([k, n]) => `${k} ${n}`).join(', ') : 'none';
}

/** The report for people: measured figures first, the projection labelled as one. */
export function reportText(r: HistoryReport): string {
  const o = r.overall;
  const lines: string[] = [];
  lines.push(
    r.span
      ? `history ${new Date(r.span.from).toISOString()} .. ${new Date(r.span.to).toISOString()} (${duration(r.span.ms)})`
      : 'history is empty',
  );
  if (r.events.truncated) lines.push(`  (memory figures from the newest ${r.events.count} events only)`);
  lines.push(
    `tasks: ${r.tasks.total} (ok ${r.tasks.ok}, failed ${r.tasks.failed}${
      r.tasks.failed ? `: ${counts(r.tasks.byCode)}` : ''
    })`,
  );
  // RSS as the kernel counts it: read by the worker around a cleanup, by the parent around a recycle.
  lines.push('', 'freed memory (RSS):');
  lines.push(`  per light cleanup:   ${dist(o.lightCleanupFreedMiB)}`);
  if (o.forcedCleanupFreedMiB.count) lines.push(`  per forced cleanup:  ${dist(o.forcedCleanupFreedMiB)}`);
  lines.push(`  per recycle (RSS):   ${dist(o.recycleFreedMiB)}`);
  if (o.cleanupGpuFreedMiB.count) lines.push(`  GPU per cleanup:     ${dist(o.cleanupGpuFreedMiB)}`);
  if (o.recycleGpuFreedMiB.count) lines.push(`  GPU per recycle:     ${dist(o.recycleGpuFreedMiB)}`);
  lines.push('', 'recycling:');
  lines.push(`  restarts by reason:  ${counts(o.restartsByReason)}`);
  lines.push(
    `  tasks between recycles: ${o.tasksBetweenRecycles.median === null ? '-' : `median ${o.tasksBetweenRecycles.median}`}`,
  );
  lines.push(`  leak rate:           ${o.leakMiBPerTask === null ? '-' : `${o.leakMiBPerTask} MiB/task`}`);
  lines.push(`  RSS peak with recycling (measured):        ${mib(o.rssPeakWithRecyclingMiB)}`);
  lines.push(`  RSS peak without recycling (PROJECTED):    ${mib(o.rssPeakWithoutRecyclingMiB.value)}`);
  lines.push(`    ${o.rssPeakWithoutRecyclingMiB.basis}`);
  if (o.gpuPeakMiB !== null) lines.push(`  GPU peak (measured): ${mib(o.gpuPeakMiB)}`);
  lines.push('', 'workers:');
  lines.push('  pid      slot  tasks  baseline   RSS peak   RSS final  leak/task  freed/cleanup  ended');
  for (const w of r.workers) {
    const ended = w.recycled
      ? `${w.recycled.reason} after ${w.recycled.tasksDone ?? '?'} tasks, freed ${mib(w.recycled.freedMiB)}`
      : 'running';
    lines.push(
      [
        `  ${String(w.pid).padEnd(8)}`,
        String(w.slot ?? '-').padEnd(5),
        String(w.tasks).padStart(5),
        mib(w.baselineMiB).padStart(10),
        mib(w.rss.peakMiB).padStart(10),
        mib(w.rss.finalMiB).padStart(10),
        (w.leakMiBPerTask === null ? '-' : w.leakMiBPerTask.toFixed(2)).padStart(9),
        mib(w.lightCleanupFreedMiB.median).padStart(13),
        ` ${ended}`,
      ].join(' '),
    );
  }
  return lines.join('\n');
}
