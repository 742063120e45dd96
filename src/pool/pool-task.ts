import type { ErrorShape } from '../protocol/errors.js';
import type { Queued } from '../core/task-queue.js';
import type { HeldTask } from './worker-handle.js';
import type { WorkerHandle } from './worker-handle.js';

/** The pool's one answer for a task. `attempts` is set when retries ran it more than once. */
export type PoolOutcome =
  | { ok: true; value: unknown; ms: number; workerPid: number; attempts?: number }
  | { ok: false; error: ErrorShape; workerPid?: number; attempts?: number };

/**
 * A task as the scheduler handles it: where it waits, who holds it, how often it ran. The caller
 * (the supervisor) owns its deadline and its single answer: `finish` answers it once, and `settled`
 * says it has been answered (by the pool, a deadline or a cancel), after which the pool drops it.
 */
export interface PoolTask extends Queued, HeldTask {
  readonly id: string;
  readonly priority: number;
  payload: unknown;
  /** Runs started on a worker (a task requeued before it started does not count). */
  attempts: number;
  /** When it was first sent to a worker (performance.now()). */
  startedAt: number | undefined;
  /** The worker holding it now (undefined while it waits). */
  holder: WorkerHandle | undefined;
  readonly settled: boolean;
  finish(outcome: PoolOutcome): void;
}
