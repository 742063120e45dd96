import type { SupervisorEventMap } from '../events.js';

/**
 * What an admin recycle, clear-cache or clear-history freed, in the terms of the service this project
 * grew from: "RAM: 2048.5MB -> 1024.2MB (freed ~1024.3MB); GPU: ...". Pure: it is given the `recycle`
 * events of the workers the command replaced and adds them up; the caller collects the events.
 */

type RecycleEvent = Pick<
  SupervisorEventMap['recycle'],
  | 'oldPid'
  | 'newPid'
  | 'rssBeforeMiB'
  | 'rssAfterMiB'
  | 'rssFreedMiB'
  | 'gpuBeforeMiB'
  | 'gpuFreedMiB'
  | 'gpuBaselineMiB'
  | 'attribution'
  | 'gpuIndex'
  | 'memoryScope'
>;

export interface MemoryChange {
  beforeMiB: number;
  afterMiB: number;
  freedMiB: number;
}

export interface WorkerCleanup {
  oldPid: number;
  newPid: number | undefined;
  /** Absent when either reading is missing (a worker whose RSS could not be read). */
  ram?: MemoryChange;
  /** Absent without a GPU reading of this worker's own (no GPU, or device-wide attribution). */
  gpu?: MemoryChange;
}

export interface AdminCleanup {
  /** The old pids, in the order they were replaced (the answer's `recycled` as before). */
  recycled: number[];
  /** Totals over the workers with RAM figures; all zero when none has any. */
  ram: MemoryChange;
  /**
   * Totals over the workers with GPU figures; absent when none has any. Under device attribution each
   * GPU counts once: its use before the first replacement, after the last, and what the exits gave back.
   */
  gpu?: MemoryChange;
  workers: WorkerCleanup[];
}

/** One decimal, as printed: sums of readings must not print as 1024.3000000000002. */
function round(miB: number): number {
  return Math.round(miB * 10) / 10;
}

function ramOf(e: RecycleEvent): MemoryChange | undefined {
  if (e.rssBeforeMiB === undefined || e.rssAfterMiB === undefined) return undefined;
  const freedMiB = e.rssFreedMiB ?? e.rssBeforeMiB - e.rssAfterMiB;
  return { beforeMiB: e.rssBeforeMiB, afterMiB: e.rssAfterMiB, freedMiB };
}

/**
 * The old worker's GPU memory before the kill, its successor's baseline after, and what the exit gave
 * back (measured on the device, so not always before - after). Without a baseline reading the
 * successor is taken to hold what the old one held minus what it gave back.
 */
function gpuOf(e: RecycleEvent): MemoryChange | undefined {
  if (e.gpuBeforeMiB === undefined) return undefined;
  if (e.gpuFreedMiB === undefined && e.gpuBaselineMiB === undefined) return undefined;
  const freedMiB = e.gpuFreedMiB ?? e.gpuBeforeMiB - e.gpuBaselineMiB!;
  const afterMiB = e.gpuBaselineMiB ?? Math.max(0, e.gpuBeforeMiB - freedMiB);
  return { beforeMiB: e.gpuBeforeMiB, afterMiB, freedMiB };
}

function rounded(c: MemoryChange): MemoryChange {
  return { beforeMiB: round(c.beforeMiB), afterMiB: round(c.afterMiB), freedMiB: round(c.freedMiB) };
}

/** Totals add the readings as measured and round once, so they match the readings, not the rounding. */
function sum(changes: MemoryChange[]): MemoryChange {
  let beforeMiB = 0;
  let afterMiB = 0;
  let freedMiB = 0;
  for (const c of changes) {
    beforeMiB += c.beforeMiB;
    afterMiB += c.afterMiB;
    freedMiB += c.freedMiB;
  }
  return { beforeMiB: round(beforeMiB), afterMiB: round(afterMiB), freedMiB: round(freedMiB) };
}

/**
 * Worker threads share one process: each event's RSS is the whole process's, so adding them up would
 * count it once per worker. The process's change is then its RSS before the first replacement and
 * after the last.
 */
function processRam(changes: MemoryChange[]): MemoryChange {
  const first = changes[0]!;
  const last = changes[changes.length - 1]!;
  return rounded({
    beforeMiB: first.beforeMiB,
    afterMiB: last.afterMiB,
    freedMiB: first.beforeMiB - last.afterMiB,
  });
}

/**
 * Under device attribution every event's GPU figures are its whole device's (the worker's own are not
 * known): adding them up would count the device once per worker. Per device, in replacement order, the
 * change runs from the first one's "before" to the last one's "after"; what was freed is what each
 * exit gave back.
 */
function deviceGpu(
  changes: ReadonlyArray<{ e: { gpuIndex?: number | undefined }; gpu: MemoryChange }>,
): MemoryChange[] {
  const byDevice = new Map<number | undefined, MemoryChange>();
  for (const { e, gpu } of changes) {
    const seen = byDevice.get(e.gpuIndex);
    if (!seen) byDevice.set(e.gpuIndex, { ...gpu });
    else
      byDevice.set(e.gpuIndex, { ...seen, afterMiB: gpu.afterMiB, freedMiB: seen.freedMiB + gpu.freedMiB });
  }
  return [...byDevice.values()];
}

type GpuMeasured = {
  e: { attribution?: string | undefined; gpuIndex?: number | undefined };
  gpu?: MemoryChange | undefined;
};

/** The GPU changes to add up: each worker's own, and each device once where only devices are known. */
function gpuTotals(measured: readonly GpuMeasured[]): MemoryChange[] {
  const withGpu = measured.flatMap(({ e, gpu }) => (gpu ? [{ e, gpu }] : []));
  return [
    ...withGpu.filter(({ e }) => e.attribution !== 'device').map(({ gpu }) => gpu),
    ...deviceGpu(withGpu.filter(({ e }) => e.attribution === 'device')),
  ];
}

/** One worker's part of an answer: who it was and became, and its figures with their kind. */
interface Measured {
  oldPid: number;
  newPid: number | undefined;
  ram: MemoryChange | undefined;
  gpu: MemoryChange | undefined;
  e: { attribution?: string | undefined; gpuIndex?: number | undefined; memoryScope?: string | undefined };
}

/** The answer over the workers' parts: per worker, and totals (a device counted once, a shared RSS once). */
function summarize(measured: readonly Measured[], recycled: number[]): AdminCleanup {
  const workers = measured.map(({ oldPid, newPid, ram, gpu, e }): WorkerCleanup => ({
    oldPid,
    newPid,
    ...(ram ? { ram: rounded(ram) } : {}),
    ...(gpu && e.attribution !== 'device' ? { gpu: rounded(gpu) } : {}),
  }));
  const rams = measured.flatMap((m) => (m.ram ? [m.ram] : []));
  const gpus = gpuTotals(measured);
  const shared = measured.some(({ e }) => e.memoryScope === 'process');
  const ram = rams.length === 0 ? sum([]) : shared ? processRam(rams) : sum(rams);
  return { recycled, ram, ...(gpus.length > 0 ? { gpu: sum(gpus) } : {}), workers };
}

export function summarizeAdminCleanup(events: readonly RecycleEvent[]): AdminCleanup {
  const measured = events.map((e) => ({
    oldPid: e.oldPid,
    newPid: e.newPid,
    ram: ramOf(e),
    gpu: gpuOf(e),
    e,
  }));
  return summarize(
    measured,
    events.map((e) => e.oldPid),
  );
}

/** A worker that released a session in place (clear-cache { model, mode: 'light' }): it lives on. */
export type InPlaceFigures = Pick<
  SupervisorEventMap['release'],
  | 'pid'
  | 'rssBeforeMiB'
  | 'rssAfterMiB'
  | 'gpuBeforeMiB'
  | 'gpuAfterMiB'
  | 'attribution'
  | 'gpuIndex'
  | 'memoryScope'
>;

function changeOf(before: number | undefined, after: number | undefined): MemoryChange | undefined {
  if (before === undefined || after === undefined) return undefined;
  return { beforeMiB: before, afterMiB: after, freedMiB: before - after };
}

/**
 * The same answer for an in-place release: nothing recycled (`recycled: []`), each worker's RAM and
 * GPU before -> after the release (`oldPid` = `newPid`: the same process), and their totals.
 */
export function summarizeInPlace(releases: readonly InPlaceFigures[]): AdminCleanup {
  const measured = releases.map((e) => ({
    oldPid: e.pid,
    newPid: e.pid,
    ram: changeOf(e.rssBeforeMiB, e.rssAfterMiB),
    gpu: changeOf(e.gpuBeforeMiB, e.gpuAfterMiB),
    e,
  }));
  return summarize(measured, []);
}

function miB(value: number): string {
  return `${value.toFixed(1)}MB`;
}

function change(label: string, c: MemoryChange): string {
  return `${label}: ${miB(c.beforeMiB)} -> ${miB(c.afterMiB)} (freed ~${miB(c.freedMiB)})`;
}

/** "RAM: 2048.5MB -> 1024.2MB (freed ~1024.3MB); GPU: 4096.0MB -> 512.5MB (freed ~3583.5MB)". */
export function formatAdminCleanup(summary: Pick<AdminCleanup, 'ram' | 'gpu'>): string {
  const parts = [change('RAM', summary.ram)];
  if (summary.gpu) parts.push(change('GPU', summary.gpu));
  return parts.join('; ');
}

function isMemoryChange(value: unknown): value is MemoryChange {
  if (typeof value !== 'object' || value === null) return false;
  const c = value as Record<string, unknown>;
  return [c.beforeMiB, c.afterMiB, c.freedMiB].every((n) => typeof n === 'number' && Number.isFinite(n));
}

/** The figures of an admin answer read off the wire, or undefined when it carries none (older daemon). */
export function cleanupFiguresOf(answer: unknown): Pick<AdminCleanup, 'ram' | 'gpu'> | undefined {
  if (typeof answer !== 'object' || answer === null) return undefined;
  const { ram, gpu } = answer as Record<string, unknown>;
  if (!isMemoryChange(ram)) return undefined;
  return isMemoryChange(gpu) ? { ram, gpu } : { ram };
}
