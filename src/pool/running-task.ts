import { ErrorCode, type ErrorShape } from '../protocol/errors.js';
import type { FromWorker } from './worker-protocol.js';
import type { AfterTaskCleanup } from './worker-cleanups.js';
import { exitedMessage, heapLimitMessage, type WorkerExit } from './worker-exit.js';

export type WorkerOutcome =
  | { ok: true; value: unknown; ms: number }
  /**
   * `unsent`: the payload never reached the worker (it could not be serialized); the worker is idle.
   * `requeue`: the worker died before it started this task (it was queued behind another): the task
   * is as good as new and goes back to the queue, without counting as an attempt.
   */
  | { ok: false; error: ErrorShape; unsent?: true; retryable?: false; requeue?: true };

type TaskResult = Extract<FromWorker, { kind: 'result' }>;

interface Pending {
  taskId: string;
  sentAt: number;
  resolve: (outcome: WorkerOutcome) => void;
  cleanup: AfterTaskCleanup | undefined;
}

/**
 * The tasks a worker holds, oldest first: the one it runs and those sent ahead (pipelineDepth), which
 * it runs in the order sent. Every way a task can end (answer, unsent payload, worker exit) goes
 * through here, so each task gets exactly one outcome.
 */
export class RunningTasks {
  private readonly queue: Pending[] = [];
  /** When the latest answer arrived: the next task started no earlier (the worker runs them in order). */
  private lastAnswerAt = 0;

  /**
   * @param worker how messages name the worker ("123", "thread 4 (pid 123)")
   * @param heapFlag the --max-old-space-size the worker runs with, if any
   */
  constructor(
    private readonly worker: string,
    private readonly heapFlag: string | undefined,
  ) {}

  /** The task the worker runs now (or runs next): the oldest unanswered. */
  get taskId(): string | undefined {
    return this.queue[0]?.taskId;
  }

  /** Tasks sent and not answered. */
  get size(): number {
    return this.queue.length;
  }

  /** Is `taskId` held (running or queued) by this worker? */
  holds(taskId: string): boolean {
    return this.queue.some((p) => p.taskId === taskId);
  }

  /** Records `taskId` as sent; the promise settles when the task ends in any way. */
  start(taskId: string, cleanup: AfterTaskCleanup | undefined): Promise<WorkerOutcome> {
    return new Promise((resolve) => {
      this.queue.push({ taskId, sentAt: performance.now(), resolve, cleanup });
    });
  }

  /**
   * Ends a task with the worker's answer (an answer for a task not held is ignored). `onAnswered`
   * gets the task's time in the worker and its after-task cleanup before the caller hears the outcome.
   */
  answer(message: TaskResult, onAnswered: (ms: number, cleanup: AfterTaskCleanup | undefined) => void): void {
    const pending = this.take(message.taskId);
    if (!pending) return;
    const now = performance.now();
    // A task sent ahead started when the worker finished the one before it, not when it was sent.
    const ms = now - Math.max(pending.sentAt, this.lastAnswerAt);
    this.lastAnswerAt = now;
    onAnswered(ms, pending.cleanup);
    pending.resolve(
      message.ok ? { ok: true, value: message.value, ms } : { ok: false, error: message.error },
    );
  }

  /**
   * The payload could not be serialized for the worker (e.g. too large): the worker never saw it.
   * `onUnsent` runs (only if `taskId` was held) before the caller hears the outcome.
   */
  unsent(taskId: string, message: string, onUnsent: () => void): void {
    const pending = this.take(taskId);
    if (!pending) return;
    onUnsent();
    pending.resolve({
      ok: false,
      unsent: true,
      error: { code: ErrorCode.BAD_REQUEST, message: `payload cannot be sent to a worker: ${message}` },
    });
  }

  /**
   * The worker exited. The oldest task, if `headStarted`, fails with the kill cause's error or the
   * exit's; every task it had not started yet is handed back for requeueing.
   */
  fail(exit: WorkerExit, headStarted: boolean): void {
    const held = this.queue.splice(0);
    const head = headStarted ? held.shift() : undefined;
    for (const pending of held) {
      pending.resolve({
        ok: false,
        requeue: true,
        error: {
          code: ErrorCode.WORKER_CRASHED,
          message: `worker ${this.worker} exited before it started task ${pending.taskId}`,
        },
      });
    }
    if (head) head.resolve(this.exitOutcome(head.taskId, exit));
  }

  private exitOutcome(taskId: string, exit: WorkerExit): WorkerOutcome {
    if (exit.cause?.taskId !== undefined && exit.cause.taskId !== taskId) {
      // Killed to end the task before it, which had finished meanwhile: this one is not to blame.
      return {
        ok: false,
        requeue: true,
        error: {
          code: ErrorCode.WORKER_CRASHED,
          message: `worker ${this.worker} was ended while it ran task ${taskId}`,
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
          message: heapLimitMessage(this.worker, taskId, exit, this.heapFlag),
        },
      };
    }
    const error: ErrorShape = exit.cause?.error ?? {
      code: ErrorCode.WORKER_CRASHED,
      message: exitedMessage(this.worker, taskId, exit),
    };
    return { ok: false, error };
  }

  private take(taskId: string): Pending | undefined {
    // Answers come in order, so this is almost always the head.
    const index = this.queue[0]?.taskId === taskId ? 0 : this.queue.findIndex((p) => p.taskId === taskId);
    if (index < 0) return undefined;
    return this.queue.splice(index, 1)[0];
  }
}
