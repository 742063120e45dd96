import type { RecycleReason } from './recycle-policy.js';

/**
 * Pre-spawn timing: how many tasks before it is due a worker's replacement must start to be ready in
 * time: a cold start (as last measured) over this worker's average task time, capped at half its N.
 */
export function tasksAhead(
  lastStartMs: number,
  worker: { averageTaskMs: number | undefined; recycleAfterTasks: number },
): number {
  const taskMs = worker.averageTaskMs;
  if (taskMs === undefined || lastStartMs === 0) return 0;
  return Math.min(Math.ceil(lastStartMs / Math.max(taskMs, 0.1)), Math.floor(worker.recycleAfterTasks / 2));
}

/**
 * `recycle.prespawn`: `false` never starts a replacement early; `true` always may (within the memory
 * budget); `'auto'` also waits for an idle core, because on a CPU-bound host the early start competes
 * with the working workers for the cores and costs more throughput than the wait it hides.
 */
export type PrespawnMode = boolean | 'auto';

/** Why a replacement that could have started early waits until the old worker is gone. */
export type PrespawnDeferral = 'gpu-budget' | 'ram-budget' | 'cpu-busy';

/**
 * What an early start would add to the host while the old worker still lives, as measured now. A
 * half that cannot be measured is absent and not judged: no GPU (or a thread, which has no GPU memory
 * of its own), a device that reports no total, a worker without an RSS reading.
 */
export interface PrespawnFacts {
  /** The old worker's device: its free memory, and the old worker's own GPU memory (its successor's need). */
  gpu?: { freeMiB: number; footprintMiB: number };
  /** The host's MemAvailable, and the old worker's RSS. */
  ram?: { availableMiB: number; rssMiB: number };
  /** Idle cores over the last sampled interval (idle + iowait time of all CPUs); absent: not measured. */
  idleCores?: number;
}

export interface PrespawnRules {
  mode: PrespawnMode;
  /** recycle.prespawnMarginMiB: device memory left over once both workers hold theirs. */
  marginMiB: number;
}

/**
 * A cold start keeps about one thread busy (the runtime's imports, the model's session creation);
 * 0.1 of a core is left to the sampling noise of 10 ms clock ticks over a short interval.
 */
export const IDLE_CORES_FOR_A_START = 0.9;

export type PrespawnVerdict = { start: true } | { start: false; reason: PrespawnDeferral };

/**
 * May the replacement start now, while the worker it replaces still holds its memory and runs tasks?
 * Memory first (running out of it fails the start, or worse, the old worker), then, in `auto` mode,
 * an idle core. Not measured is not judged: CPU idleness unknown (no /proc/stat) allows the start.
 */
export function prespawnVerdict(facts: PrespawnFacts, rules: PrespawnRules): PrespawnVerdict {
  const { gpu, ram } = facts;
  if (gpu && gpu.freeMiB < gpu.footprintMiB + rules.marginMiB) return { start: false, reason: 'gpu-budget' };
  if (ram && ram.availableMiB < ram.rssMiB) return { start: false, reason: 'ram-budget' };
  if (rules.mode === 'auto' && facts.idleCores !== undefined && facts.idleCores < IDLE_CORES_FOR_A_START)
    return { start: false, reason: 'cpu-busy' };
  return { start: true };
}

/**
 * A worker already due (draining) that still holds tasks: may its successor start now, beside it? For
 * a count-based or admin recycle with pre-spawn on, yes: its turn (recycle.maxConcurrent) may come only
 * after it was due, and waiting on top until it has finished what it holds would leave its slot short
 * for those tasks and a cold start instead of a cold start alone (guarantee 7).
 */
export function successorWhileDraining(reason: RecycleReason, held: number, prespawn: boolean): boolean {
  return prespawn && held > 0 && (reason === 'every-n' || reason === 'admin');
}
