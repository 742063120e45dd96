import type { ErrorShape } from '../protocol/errors.js';
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
export function heapLimitMessage(
  worker: string,
  taskId: string,
  exit: WorkerExit,
  heapFlag: string | undefined,
): string {
  const limit = heapFlag ? `, ${heapFlag}` : '';
  return `worker ${worker} ran out of memory at its V8 heap limit${limit} while running task ${taskId} (${describeExit(exit)}); not retried`;
}

/** The running task's error when its worker exited for any other reason nobody gave. */
export function exitedMessage(worker: string, taskId: string, exit: WorkerExit): string {
  return `worker ${worker} exited while running task ${taskId} (${describeExit(exit)})`;
}
