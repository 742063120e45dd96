/**
 * The one place that decides whether a worker should be recycled, as a pure function of facts the
 * pool gathered. Pure so it can be tested as a table and reasoned about without processes.
 */
export type RecycleReason =
  | 'every-n'
  | 'rss'
  | 'gpu'
  | 'leak'
  | 'max-age'
  | 'idle'
  | 'admin'
  | 'crash'
  | 'timeout'
  | 'cancel'
  /** A hard limit (limits.rssMiB, limits.gpuMiB) crossed while a task ran: the worker was killed. */
  | 'limit'
  | 'shutdown';

export interface RecyclePolicyOptions {
  /** 0 = never. */
  recycleEveryTasks: number;
  /** Recycle a worker whose RSS (parent-measured, after cleanup) exceeds this; 0 = off. */
  rssMiB?: number;
  /** Recycle a worker whose own GPU memory exceeds this after a task; 0 = off. */
  gpuMiB?: number;
  /** Recycle a worker older than this; 0 = off. */
  maxAgeMs?: number;
  /** Recycle before the RSS trend would cross rssMiB within this many tasks; 0 = off. */
  leakHorizonTasks?: number;
}

export interface WorkerFacts {
  tasksDone: number;
  /** This worker's own N (recycleEveryTasks plus its jitter draw); defaults to recycleEveryTasks. */
  recycleAfterTasks?: number;
  rssMiB?: number | undefined;
  /** The worker's own GPU memory (process attribution only: a device total says nothing of one worker). */
  gpuMiB?: number | undefined;
  ageMs?: number;
  /** Estimated RSS growth per task (MiB), from the leak estimator. */
  leakMiBPerTask?: number | undefined;
}

export type RecycleDecision = { recycle: false } | { recycle: true; reason: RecycleReason; detail: string };

const KEEP: RecycleDecision = { recycle: false };

function over(limit: number | undefined, value: number | undefined): value is number {
  return limit !== undefined && limit > 0 && value !== undefined && value > limit;
}

export function decideAfterTask(facts: WorkerFacts, options: RecyclePolicyOptions): RecycleDecision {
  const every = facts.recycleAfterTasks ?? options.recycleEveryTasks;
  if (options.recycleEveryTasks > 0 && facts.tasksDone >= every) {
    const jittered = every !== options.recycleEveryTasks ? `, ${every} with jitter` : '';
    const detail = `${facts.tasksDone} tasks done (recycleEveryTasks ${options.recycleEveryTasks}${jittered})`;
    return { recycle: true, reason: 'every-n', detail };
  }
  if (over(options.rssMiB, facts.rssMiB)) {
    return {
      recycle: true,
      reason: 'rss',
      detail: `RSS ${facts.rssMiB} MiB over recycle.rssMiB ${options.rssMiB}`,
    };
  }
  if (over(options.gpuMiB, facts.gpuMiB)) {
    return {
      recycle: true,
      reason: 'gpu',
      detail: `GPU memory ${facts.gpuMiB} MiB over recycle.gpuMiB ${options.gpuMiB}`,
    };
  }
  const horizon = options.leakHorizonTasks ?? 0;
  const rate = facts.leakMiBPerTask;
  if (
    horizon > 0 &&
    (options.rssMiB ?? 0) > 0 &&
    facts.rssMiB !== undefined &&
    rate !== undefined &&
    rate > 0
  ) {
    const projected = facts.rssMiB + rate * horizon;
    if (projected > options.rssMiB!) {
      const detail =
        `leaking ${rate.toFixed(2)} MiB/task: RSS ${facts.rssMiB} MiB would pass recycle.rssMiB ` +
        `${options.rssMiB} within ${horizon} tasks`;
      return { recycle: true, reason: 'leak', detail };
    }
  }
  if (over(options.maxAgeMs, facts.ageMs)) {
    return {
      recycle: true,
      reason: 'max-age',
      detail: `age ${facts.ageMs} ms over recycle.maxAgeMs ${options.maxAgeMs}`,
    };
  }
  return KEEP;
}

export interface IdleFacts {
  /** Since the worker started (ms). */
  ageMs: number;
  /** Since its last task ended, or since it started if it had none (ms). */
  idleMs: number;
  /** Live workers in the pool, this one included, and the pool's floor (minWorkers). */
  poolSize: number;
  minWorkers: number;
}

export interface IdlePolicyOptions {
  /** Recycle a worker older than this even if it gets no task; 0 = off. */
  maxAgeMs?: number;
  /** A worker above minWorkers idle this long exits (not replaced); 0 = never. */
  idleTimeoutMs?: number;
}

/**
 * The decision on a timer for an idle worker (one that gets no task, so `decideAfterTask` never runs
 * for it): `idle` (shrink the pool back toward minWorkers; the worker is not replaced) before
 * `max-age` (replaced), since a worker that is leaving anyway need not be restarted first.
 */
export function decideWhenIdle(facts: IdleFacts, options: IdlePolicyOptions): RecycleDecision {
  const idleTimeout = options.idleTimeoutMs ?? 0;
  if (idleTimeout > 0 && facts.poolSize > facts.minWorkers && facts.idleMs >= idleTimeout) {
    const detail =
      `idle ${facts.idleMs} ms (idleTimeoutMs ${idleTimeout}), ` +
      `pool ${facts.poolSize} above minWorkers ${facts.minWorkers}`;
    return { recycle: true, reason: 'idle', detail };
  }
  if (over(options.maxAgeMs, facts.ageMs)) {
    return {
      recycle: true,
      reason: 'max-age',
      detail: `idle worker's age ${facts.ageMs} ms over recycle.maxAgeMs ${options.maxAgeMs}`,
    };
  }
  return KEEP;
}

/**
 * When to look at an idle worker again (ms from now), or undefined if no idle rule can ever apply
 * to it: the nearer of its max-age and its idle timeout (this one only while the pool is above its
 * floor).
 */
export function nextIdleCheckMs(facts: IdleFacts, options: IdlePolicyOptions): number | undefined {
  const waits: number[] = [];
  const maxAge = options.maxAgeMs ?? 0;
  if (maxAge > 0) waits.push(maxAge - facts.ageMs + 1);
  const idleTimeout = options.idleTimeoutMs ?? 0;
  if (idleTimeout > 0 && facts.poolSize > facts.minWorkers) waits.push(idleTimeout - facts.idleMs);
  return waits.length > 0 ? Math.max(0, Math.min(...waits)) : undefined;
}

/** gunicorn's max_requests_jitter: each worker's N is drawn from [N, N + jitter]. */
export function drawRecycleAfter(
  recycleEveryTasks: number,
  jitter: number,
  random: () => number = Math.random,
): number {
  if (recycleEveryTasks <= 0 || jitter <= 0) return recycleEveryTasks;
  return recycleEveryTasks + Math.floor(random() * (jitter + 1));
}
