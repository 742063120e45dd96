import type { MemoryEventRow } from './schema.js';
import { distribution, extent, maxOf, median, round, slope, type Distribution } from './stats.js';
import type { HistoryStore, TaskCount } from './store.js';

/**
 * The savings report: what cleanups and recycles measurably gave back, computed from history rows.
 * MiB throughout; null where nothing was measured. Shape:
 *
 * - span: first and last recorded moment (epoch ms) and their distance.
 * - tasks: totals by status and by error code.
 * - workers[]: one per worker pid: its slot, tasks, baseline (RSS when ready), freed MiB per light
 *   cleanup, RSS/GPU peak and final reading, leak rate (least squares over RSS after each task's
 *   cleanup, MiB/task), and how it ended if it was recycled (reason, freed MiB, tasks done).
 * - slots[]: the workers that took turns in one pool slot, the tasks that slot handled, its measured
 *   peak RSS, and the PROJECTED peak without recycling: the first worker's baseline + overall leak
 *   rate x the slot's tasks. A projection, not a measurement: labelled so in every rendering.
 * - overall: the same distributions over all workers, restarts by reason, tasks between recycles.
 */
export interface HistoryReport {
  generatedAt: number;
  span: { from: number; to: number; ms: number } | null;
  /** Memory events the report was computed from; truncated = older ones were left out. */
  events: { count: number; truncated: boolean };
  tasks: { total: number; ok: number; failed: number; byCode: Record<string, number> };
  workers: WorkerReport[];
  slots: SlotReport[];
  overall: {
    lightCleanupFreedMiB: Distribution;
    /** force and idle cleanups (sessions released). */
    forcedCleanupFreedMiB: Distribution;
    cleanupGpuFreedMiB: Distribution;
    recycleFreedMiB: Distribution;
    recycleGpuFreedMiB: Distribution;
    restartsByReason: Record<string, number>;
    tasksBetweenRecycles: { count: number; median: number | null };
    /** Median of the per-worker leak rates. */
    leakMiBPerTask: number | null;
    rssPeakWithRecyclingMiB: number | null;
    rssPeakWithoutRecyclingMiB: { projected: true; value: number | null; basis: string };
    gpuPeakMiB: number | null;
  };
}

export interface WorkerReport {
  pid: number;
  slot: number | null;
  from: number;
  to: number;
  tasks: number;
  baselineMiB: number | null;
  lightCleanupFreedMiB: Distribution;
  rss: { peakMiB: number | null; finalMiB: number | null };
  gpu: { peakMiB: number | null; finalMiB: number | null } | null;
  leakMiBPerTask: number | null;
  recycled: {
    reason: string;
    at: number;
    freedMiB: number | null;
    gpuFreedMiB: number | null;
    tasksDone: number | null;
  } | null;
}

export interface SlotReport {
  slot: number | null;
  pids: number[];
  tasks: number;
  baselineMiB: number | null;
  rssPeakMiB: number | null;
  /** Projection, not a measurement: baselineMiB + overall leak rate x tasks. */
  projectedRssPeakWithoutRecyclingMiB: number | null;
}

export interface ReportInput {
  events: readonly MemoryEventRow[];
  taskCounts: readonly TaskCount[];
  truncated?: boolean;
  now?: number;
}

/** Reads what the report needs from the store (the newest `maxEvents` memory events) and builds it. */
export function buildReport(store: HistoryStore, maxEvents = 200_000): HistoryReport | undefined {
  const events = store.memoryEvents(maxEvents + 1);
  const taskCounts = store.taskCounts();
  if (!events || !taskCounts) return undefined;
  const truncated = events.length > maxEvents;
  return computeReport({ events: truncated ? events.slice(1) : events, taskCounts, truncated });
}

/** Pure: rows in, report out. */
export function computeReport(input: ReportInput): HistoryReport {
  const { events, taskCounts } = input;
  const tasksByPid = new Map<number, number>();
  const byCode: Record<string, number> = {};
  let ok = 0;
  let failed = 0;
  for (const c of taskCounts) {
    if (c.ok) ok += c.count;
    else failed += c.count;
    if (!c.ok) byCode[c.code ?? 'unknown'] = (byCode[c.code ?? 'unknown'] ?? 0) + c.count;
    if (c.workerPid !== undefined) tasksByPid.set(c.workerPid, (tasksByPid.get(c.workerPid) ?? 0) + c.count);
  }

  const byPid = new Map<number, MemoryEventRow[]>();
  for (const e of events) {
    const list = byPid.get(e.pid) ?? [];
    list.push(e);
    byPid.set(e.pid, list);
  }
  const workers = [...byPid].map(([pid, rows]) => workerReport(pid, rows, tasksByPid.get(pid) ?? 0));
  workers.sort((a, b) => a.from - b.from);

  const cleanups = events.filter((e) => e.kind === 'cleanup');
  const recycles = events.filter((e) => e.kind === 'recycle');
  const restartsByReason: Record<string, number> = {};
  for (const r of recycles)
    restartsByReason[r.reason ?? 'unknown'] = (restartsByReason[r.reason ?? 'unknown'] ?? 0) + 1;
  const tasksDone = recycles.flatMap((r) => (r.tasksDone === undefined ? [] : [r.tasksDone]));
  const leak = round(
    median(workers.flatMap((w) => (w.leakMiBPerTask === null ? [] : [w.leakMiBPerTask]))),
    3,
  );
  const slots = slotReports(workers, events, leak);

  const times = [...events.map((e) => e.at), ...taskCounts.flatMap((c) => [c.first, c.last])];
  const [from, to] = extent(times) ?? [null, null];
  const projected = maxOf(slots.map((s) => s.projectedRssPeakWithoutRecyclingMiB ?? undefined));
  return {
    generatedAt: input.now ?? Date.now(),
    span: from === null || to === null ? null : { from, to, ms: to - from },
    events: { count: events.length, truncated: input.truncated ?? false },
    tasks: { total: ok + failed, ok, failed, byCode },
    workers,
    slots,
    overall: {
      lightCleanupFreedMiB: distribution(freed(cleanups.filter((e) => e.mode === 'light'))),
      forcedCleanupFreedMiB: distribution(freed(cleanups.filter((e) => e.mode !== 'light'))),
      cleanupGpuFreedMiB: distribution(gpuFreed(cleanups)),
      recycleFreedMiB: distribution(freed(recycles)),
      recycleGpuFreedMiB: distribution(gpuFreed(recycles)),
      restartsByReason,
      tasksBetweenRecycles: { count: tasksDone.length, median: median(tasksDone) },
      leakMiBPerTask: leak,
      rssPeakWithRecyclingMiB: maxOf(workers.map((w) => w.rss.peakMiB ?? undefined)),
      rssPeakWithoutRecyclingMiB: {
        projected: true,
        value: round(projected),
        basis:
          leak === null
            ? 'no leak rate: too few cleanups per worker to fit one'
            : `projection: first worker's baseline + ${leak} MiB/task x tasks handled by one slot`,
      },
      gpuPeakMiB: maxOf(workers.map((w) => w.gpu?.peakMiB ?? undefined)),
    },
  };
}

function freed(rows: readonly MemoryEventRow[]): number[] {
  return rows.flatMap((r) => (r.rssFreedMiB === undefined ? [] : [r.rssFreedMiB]));
}

function gpuFreed(rows: readonly MemoryEventRow[]): number[] {
  return rows.flatMap((r) => (r.gpuFreedMiB === undefined ? [] : [r.gpuFreedMiB]));
}

function workerReport(pid: number, rows: MemoryEventRow[], tasks: number): WorkerReport {
  const start = rows.find((r) => r.kind === 'start');
  const recycle = rows.find((r) => r.kind === 'recycle');
  const afterTask = rows.filter((r) => r.kind === 'cleanup' && r.mode !== 'idle');
  const rssReadings = rows.flatMap((r) => [r.rssBeforeMiB, r.kind === 'recycle' ? undefined : r.rssAfterMiB]);
  const gpuReadings = rows.flatMap((r) => [r.gpuBeforeMiB, r.kind === 'recycle' ? undefined : r.gpuAfterMiB]);
  const lastOf = (values: Array<number | undefined>): number | null =>
    values.filter((v): v is number => v !== undefined).at(-1) ?? null;
  const gpuPeak = maxOf(gpuReadings);
  return {
    pid,
    slot: rows.find((r) => r.slot !== undefined)?.slot ?? null,
    from: rows[0]!.at,
    to: rows.at(-1)!.at,
    tasks,
    baselineMiB: start?.rssAfterMiB ?? null,
    lightCleanupFreedMiB: distribution(freed(afterTask.filter((r) => r.mode === 'light'))),
    rss: { peakMiB: maxOf(rssReadings), finalMiB: lastOf(rssReadings) },
    gpu: gpuPeak === null ? null : { peakMiB: gpuPeak, finalMiB: lastOf(gpuReadings) },
    leakMiBPerTask: round(
      slope(afterTask.flatMap((r) => (r.rssAfterMiB === undefined ? [] : [r.rssAfterMiB]))),
      3,
    ),
    recycled: recycle
      ? {
          reason: recycle.reason ?? 'unknown',
          at: recycle.at,
          freedMiB: recycle.rssFreedMiB ?? null,
          gpuFreedMiB: recycle.gpuFreedMiB ?? null,
          tasksDone: recycle.tasksDone ?? null,
        }
      : null,
  };
}

/**
 * Groups workers into the slots they took turns in: by recorded slot, else by following recycle
 * links (old pid -> new pid), so rows without a slot still chain.
 */
function slotReports(
  workers: WorkerReport[],
  events: readonly MemoryEventRow[],
  leak: number | null,
): SlotReport[] {
  const parent = new Map<string, string>();
  const find = (k: string): string => {
    let root = k;
    while (parent.has(root) && parent.get(root) !== root) root = parent.get(root)!;
    parent.set(k, root);
    return root;
  };
  const union = (a: string, b: string): void => void parent.set(find(a), find(b));
  for (const e of events) {
    if (e.slot !== undefined) union(`p${e.pid}`, `s${e.slot}`);
    if (e.kind === 'recycle' && e.newPid !== undefined) union(`p${e.pid}`, `p${e.newPid}`);
  }
  const groups = new Map<string, WorkerReport[]>();
  for (const w of workers) {
    const key = find(`p${w.pid}`);
    groups.set(key, [...(groups.get(key) ?? []), w]);
  }
  return [...groups.values()].map((ws) => {
    const tasks = ws.reduce((a, w) => a + w.tasks, 0);
    const first = ws[0]!;
    const baseline = first.baselineMiB ?? first.rss.finalMiB;
    return {
      slot: ws.find((w) => w.slot !== null)?.slot ?? null,
      pids: ws.map((w) => w.pid),
      tasks,
      baselineMiB: baseline,
      rssPeakMiB: maxOf(ws.map((w) => w.rss.peakMiB ?? undefined)),
      projectedRssPeakWithoutRecyclingMiB:
        leak === null || baseline === null ? null : round(baseline + Math.max(0, leak) * tasks),
    };
  });
}
