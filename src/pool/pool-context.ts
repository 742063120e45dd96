import type { SupervisorEvents } from '../events.js';
import type { WorkerHandle } from './worker-handle.js';
import type { GpuAccounting } from './gpu-accounting.js';
import type { PoolOptions } from './pool-options.js';

/** The pool's running totals, as `Pool.totals` reports them (freedMiB unrounded). */
export interface PoolTally {
  recycles: number;
  freedMiB: number;
}

/**
 * What every part of the pool shares (spawner, recycler, replacement, after-task): the options, the
 * event bus, the totals, and a few calls back into the pool. A narrow interface rather than the Pool
 * itself, so the parts import nothing of pool.ts and each can be read on its own.
 */
export interface PoolContext {
  readonly options: PoolOptions;
  readonly events: SupervisorEvents;
  readonly tally: PoolTally;
  /** The GPU side (replaced once, when the pool starts with a meter). */
  gpu(): GpuAccounting;
  closing(): boolean;
  /** A worker free for work: to a waiting task, idle, or recycled if that was asked for. */
  offer(handle: WorkerHandle): void;
}
