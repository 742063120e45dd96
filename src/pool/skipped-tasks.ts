import { ErrorCode } from '../protocol/errors.js';
import type { KillCause } from './worker-exit.js';

/**
 * How long a skipped task's answer may take once the worker has finished the task before it: its
 * cleanup, then the skip. Past that, the skip arrived after the task had started.
 */
const SKIP_GRACE_MS = 2000;

/**
 * Tasks sent ahead to a worker and then abandoned (timeout, cancel): the worker was told to skip
 * them, and answers each at once without running it. The worker reads a skip before it starts the
 * task it names, except in a race (the skip still in the pipe as the task starts): a skipped task
 * that becomes the worker's next and is not answered within the grace period ends the worker, as a
 * running task abandoned the same way would.
 */
export class SkippedTasks {
  private readonly skipped = new Set<string>();
  private guard: NodeJS.Timeout | undefined;

  /**
   * @param nextTaskId the task the worker runs next (its oldest unanswered)
   * @param kill ends the worker for a skipped task it started anyway
   */
  constructor(
    private readonly nextTaskId: () => string | undefined,
    private readonly kill: (cause: KillCause) => void,
  ) {}

  add(taskId: string): void {
    this.skipped.add(taskId);
  }

  /** After each answer: forget the answered task, and watch the next one if it was skipped. */
  answered(taskId: string): void {
    if (this.skipped.size === 0) return;
    this.skipped.delete(taskId);
    clearTimeout(this.guard);
    const next = this.nextTaskId();
    if (next === undefined || !this.skipped.has(next)) return;
    this.guard = setTimeout(() => {
      if (this.nextTaskId() !== next) return;
      this.kill({
        reason: 'cancel',
        taskId: next,
        error: {
          code: ErrorCode.CANCELLED,
          message: `task ${next} was abandoned while queued in its worker`,
        },
      });
    }, SKIP_GRACE_MS);
  }

  /** The worker is gone. */
  clear(): void {
    clearTimeout(this.guard);
    this.skipped.clear();
  }
}
