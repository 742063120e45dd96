import { ErrorCode, type ErrorShape } from '../protocol/errors.js';
import type { RecycleReason } from '../core/recycle-policy.js';

/** Why the parent ended a worker itself; decides the error its running task gets and the recycle reason. */
export interface KillCause {
  reason: RecycleReason;
  error: ErrorShape;
  /**
   * The task the kill was meant to end (timeout, cancel). If the worker had meanwhile moved on to a
   * task sent ahead, that task is requeued instead of getting this error.
   */
  taskId?: string;
}

export interface WorkerExit {
  code: number | null;
  signal: NodeJS.Signals | null;
  cause: KillCause | undefined;
  /** V8 aborted the worker at its heap limit. */
  heapLimit?: true;
  /** The kernel's OOM killer ended it (a SIGKILL nobody here sent, and the cgroup's oom_kill grew). */
  oomKill?: true;
}

export const KERNEL_OOM = 'killed by the kernel OOM killer';

export function describeExit(exit: Pick<WorkerExit, 'code' | 'signal' | 'oomKill'>): string {
  if (exit.oomKill) return `${KERNEL_OOM} (${exit.signal ?? 'SIGKILL'})`;
  return exit.signal ? `killed by ${exit.signal}` : `exit code ${exit.code}`;
}

/** The --max-old-space-size a worker runs with (the last one given), named when it dies at that limit. */
export function heapFlagOf(execArgv: readonly string[]): string | undefined {
  return [...execArgv].reverse().find((a) => a.startsWith('--max-old-space-size'));
}

/** The running task's error when its worker died at its V8 heap limit. */
function heapLimitMessage(
  worker: string,
  taskId: string,
  exit: WorkerExit,
  heapFlag: string | undefined,
): string {
  const limit = heapFlag ? `, ${heapFlag}` : '';
  return `worker ${worker} ran out of memory at its V8 heap limit${limit} while running task ${taskId} (${describeExit(exit)}); not retried`;
}

/** The running task's error when its worker exited for any other reason nobody gave. */
function exitedMessage(worker: string, taskId: string, exit: WorkerExit): string {
  return `worker ${worker} exited while running task ${taskId} (${describeExit(exit)})`;
}

/** How a task a worker held ended, as the worker (or its exit) tells it. */
export type WorkerOutcome =
  | { ok: true; value: unknown; ms: number }
  /**
   * `unsent`: the payload never reached the worker (it could not be serialized); the worker is idle.
   * `requeue`: the worker died before it started this task (it was queued behind another): the task
   * is as good as new and goes back to the queue, without counting as an attempt.
   */
  | { ok: false; error: ErrorShape; unsent?: true; retryable?: false; requeue?: true };

/**
 * The outcome of the task a worker was running when it exited: the kill cause's error, the heap limit
 * (never retried), or the exit itself.
 */
export function exitOutcome(
  worker: string,
  taskId: string,
  exit: WorkerExit,
  heapFlag: string | undefined,
): WorkerOutcome {
  if (exit.cause?.taskId !== undefined && exit.cause.taskId !== taskId) {
    // Killed to end the task before it, which had finished meanwhile: this one is not to blame.
    return {
      ok: false,
      requeue: true,
      error: {
        code: ErrorCode.WORKER_CRASHED,
        message: `worker ${worker} was ended while it ran task ${taskId}`,
      },
    };
  }
  if (!exit.cause && exit.heapLimit) {
    // The task's own input exhausted the heap: another worker would die the same way, so no retry.
    return {
      ok: false,
      retryable: false,
      error: {
        code: ErrorCode.WORKER_CRASHED,
        message: heapLimitMessage(worker, taskId, exit, heapFlag),
      },
    };
  }
  const error: ErrorShape = exit.cause?.error ?? {
    code: ErrorCode.WORKER_CRASHED,
    message: exitedMessage(worker, taskId, exit),
  };
  return { ok: false, error };
}
