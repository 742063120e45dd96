/**
 * The hard limits (`limits.rssMiB`, `limits.gpuMiB`), judged while a task runs, apart from the soft
 * ceilings (`recycle.rssMiB`, `recycle.gpuMiB`) that are judged after it: a worker over a hard limit is
 * killed at once, since waiting for the task to end is what lets a ballooning task take the host or
 * the GPU down. Pure: the scheduler reads, asks here, and carries out the answer.
 */
export interface HardLimits {
  /** MiB; 0 = off. */
  rssMiB: number;
  gpuMiB: number;
}

export type LimitKind = 'rss' | 'gpu';

/** A worker's memory as last read while it held a task; undefined where there is no reading. */
export interface LimitReading {
  rssMiB?: number | undefined;
  gpuMiB?: number | undefined;
}

export interface LimitBreach {
  kind: LimitKind;
  limitMiB: number;
  readingMiB: number;
}

/** Is the watch needed at all (any limit set)? */
export function limitsOn(limits: HardLimits): boolean {
  return limits.rssMiB > 0 || limits.gpuMiB > 0;
}

/** The first limit the reading is over (RSS before GPU), if any. A reading at the limit is not over it. */
export function overLimit(limits: HardLimits, reading: LimitReading): LimitBreach | undefined {
  if (limits.rssMiB > 0 && reading.rssMiB !== undefined && reading.rssMiB > limits.rssMiB) {
    return { kind: 'rss', limitMiB: limits.rssMiB, readingMiB: reading.rssMiB };
  }
  if (limits.gpuMiB > 0 && reading.gpuMiB !== undefined && reading.gpuMiB > limits.gpuMiB) {
    return { kind: 'gpu', limitMiB: limits.gpuMiB, readingMiB: reading.gpuMiB };
  }
  return undefined;
}

const KEY: Record<LimitKind, string> = { rss: 'limits.rssMiB', gpu: 'limits.gpuMiB' };
const WHAT: Record<LimitKind, string> = { rss: 'RSS', gpu: 'GPU memory' };

/** The E_OUT_OF_MEMORY message: the limit, the last reading, the task, the worker. */
export function limitMessage(breach: LimitBreach, taskId: string, worker: string): string {
  return (
    `task ${taskId} passed ${KEY[breach.kind]} ${breach.limitMiB} MiB: worker ${worker} ` +
    `${WHAT[breach.kind]} read ${breach.readingMiB} MiB; the worker was killed; not retried`
  );
}
