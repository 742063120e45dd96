// Figures for the soak's summary: percentiles, the RSS slope, and the human-readable report.
export function percentile(values, p) {
  const finite = values.filter(Number.isFinite).sort((a, b) => a - b);
  if (finite.length === 0) return null;
  return finite[Math.min(finite.length - 1, Math.ceil((p / 100) * finite.length) - 1)];
}

/** Least-squares slope of y over x, or null with fewer than two points. */
export function slope(points) {
  if (points.length < 2) return null;
  const n = points.length;
  const mx = points.reduce((a, p) => a + p.x, 0) / n;
  const my = points.reduce((a, p) => a + p.y, 0) / n;
  const num = points.reduce((a, p) => a + (p.x - mx) * (p.y - my), 0);
  const den = points.reduce((a, p) => a + (p.x - mx) ** 2, 0);
  return den === 0 ? null : num / den;
}

const round = (v, d = 1) => (v === null || v === undefined ? v : Math.round(v * 10 ** d) / 10 ** d);

export function formatReport(r) {
  const lines = [
    `soak: ${r.tasks} tasks, seed ${r.seed}, concurrency ${r.concurrency}, ${r.workers} workers, ${round(r.wallS)} s (${round(r.tasksPerS, 0)} tasks/s; the last normal task answered at ${round(r.normalWallS)} s)`,
    `answers: ${r.answered} of ${r.sent} ids answered, ${r.lost} lost, ${r.duplicated} duplicated, ${r.wrongValues} wrong values`,
    `normal tasks by code: ${Object.entries(r.normalByCode)
      .map(([k, v]) => `${k} ${v}`)
      .join(', ')} (${r.retriedOk} ok after a retry)`,
    `ok share: ${round(r.okShare * 100, 2)}% (at least ${r.minOkShare * 100}% required); E_WORKER_CRASHED by who killed the worker: ${JSON.stringify(r.crashedByKiller)}`,
    `external kills: ${r.externalKills.killRate} a second; sent ${JSON.stringify(r.externalKills.sent)}, no target ${JSON.stringify(r.externalKills.noTarget)}${r.externalKills.afterKillsMs === undefined ? '' : `; pool full ${round(r.externalKills.afterKillsMs, 0)} ms after they stopped`}${r.externalKills.lateUnderKills ? `; ${r.externalKills.lateUnderKills} fault recoveries past their limit while kills went on (reported, not judged)` : ''}; minUptimeMs ${r.minUptimeMs}`,
    `kill storms: ${r.storms.map((s) => `${s.kills} kills, its tasks ${JSON.stringify(s.codes)}, pool full ${round(s.recoveryMs, 0)} ms after, answers ${s.answers}`).join('; ') || 'none'}; fault tasks hit by external kills ${JSON.stringify(r.faultTasksKilled)}; degraded events ${r.degradedEvents}`,
    `faults by kind: ${Object.entries(r.faultsByKind)
      .map(([k, v]) => `${k} ${v}`)
      .join(', ')}`,
    `faults skipped (no target at that moment): ${JSON.stringify(r.faultsSkipped)}`,
    `fault answers by code: ${Object.entries(r.faultAnswersByCode)
      .map(([k, v]) => `${k} ${v}`)
      .join(', ')}`,
    `recovery to full pool: n ${r.recovery.n}, p50 ${round(r.recovery.p50Ms, 0)} ms, p99 ${round(r.recovery.p99Ms, 0)} ms, max ${round(r.recovery.maxMs, 0)} ms`,
    `supervisor RSS: start ${r.rss.startMiB} MiB, end ${r.rss.endMiB} MiB, slope ${round(r.rss.slopeMiBPer10k, 2)} MiB per 10k tasks; heap ${r.rss.heapStartMiB} -> ${r.rss.heapEndMiB} MiB (${round(r.rss.heapSlopeMiBPer10k, 2)} per 10k)`,
    `processes: ${r.processes.workersSeen} worker pids seen, ${r.processes.leftBehind.length} left behind`,
  ];
  if (r.violations.length > 0) {
    lines.push(`VIOLATIONS (${r.violations.length}):`, ...r.violations.slice(0, 30).map((v) => `  - ${v}`));
    lines.push(`replay: ${r.replay}`);
  } else {
    lines.push('no violations');
  }
  return lines.join('\n');
}
