import { ErrorCode, type ErrorShape } from '../protocol/errors.js';
import type { FromWorker } from '../protocol/worker-messages.js';
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

/** What the worker holds of a task: its id, and whatever the pool tracks it by. */
export interface HeldTask {
  readonly id: string;
}

interface Pending<T extends HeldTask> {
  task: T;
  sentAt: number;
  cleanup: AfterTaskCleanup | undefined;
}

/**
 * The tasks a worker holds, oldest first: the one it runs and those sent ahead (pipelineDepth), which
 * it runs in the order sent. Every way a task can end (answer, unsent payload, worker exit) goes
 * through here, so each task gets exactly one outcome.
 */
export class RunningTasks<T extends HeldTask> {
  private readonly queue: Array<Pending<T>> = [];
  /** When the latest answer arrived: the next task started no earlier (the worker runs them in order). */
  private lastAnswerAt = 0;

  /**
   * @param worker how messages name the worker ("123", "thread 4 (pid 123)")
   * @param heapFlag the --max-old-space-size the worker runs with, if any
   * @param end hears every task's one outcome
   */
  constructor(
    private readonly worker: string,
    private readonly heapFlag: string | undefined,
    private readonly end: (task: T, outcome: WorkerOutcome) => void,
  ) {}

  /** The task the worker runs now (or runs next): the oldest unanswered. */
  get taskId(): string | undefined {
    return this.queue[0]?.task.id;
  }

  /** Tasks sent and not answered. */
  get size(): number {
    return this.queue.length;
  }

  /** Is `taskId` held (running or queued) by this worker? */
  holds(taskId: string): boolean {
    return this.queue.some((p) => p.task.id === taskId);
  }

  /** Records `task` as sent; `end` hears its outcome when it ends in any way. */
  start(task: T, cleanup: AfterTaskCleanup | undefined): void {
    this.queue.push({ task, sentAt: performance.now(), cleanup });
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
    this.end(
      pending.task,
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
    this.end(pending.task, {
      ok: false,
      unsent: true,
      error: { code: ErrorCode.BAD_REQUEST, message: `payload cannot be sent to a worker: ${message}` },
    });
  }

  /** The worker declined a task it held (over its RSS ceiling): it never started; requeue it. */
  declined(taskId: string, rssMiB: number): void {
    const pending = this.take(taskId);
    if (!pending) return;
    this.end(pending.task, {
      ok: false,
      requeue: true,
      error: {
        code: ErrorCode.WORKER_CRASHED,
        message: `worker ${this.worker} declined task ${taskId}: RSS ${rssMiB} MiB is over recycle.rssMiB`,
      },
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
      this.end(pending.task, {
        ok: false,
        requeue: true,
        error: {
          code: ErrorCode.WORKER_CRASHED,
          message: `worker ${this.worker} exited before it started task ${pending.task.id}`,
        },
      });
    }
    if (head) this.end(head.task, this.exitOutcome(head.task.id, exit));
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

  private take(taskId: string): Pending<T> | undefined {
    // Answers come in order, so this is almost always the head.
    const index = this.queue[0]?.task.id === taskId ? 0 : this.queue.findIndex((p) => p.task.id === taskId);
    if (index < 0) return undefined;
    return this.queue.splice(index, 1)[0];
  }
}
