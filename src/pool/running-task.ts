import { ErrorCode, type ErrorShape } from '../protocol/errors.js';
import type { FromWorker } from './worker-protocol.js';
import type { AfterTaskCleanup } from './worker-cleanups.js';
import { exitedMessage, heapLimitMessage, type WorkerExit } from './worker-exit.js';

export type WorkerOutcome =
  | { ok: true; value: unknown; ms: number }
  /** `unsent`: the payload never reached the worker (it could not be serialized); the worker is idle. */
  | { ok: false; error: ErrorShape; unsent?: true; retryable?: false };

type TaskResult = Extract<FromWorker, { kind: 'result' }>;

interface Pending {
  taskId: string;
  started: number;
  resolve: (outcome: WorkerOutcome) => void;
  cleanup: AfterTaskCleanup | undefined;
}

/**
 * The one task a worker is running, and the promise its caller waits on. Every way the task can end
 * (answer, unsent payload, worker exit) goes through here, so each task gets exactly one outcome.
 */
export class RunningTask {
  private pending: Pending | undefined;

  /**
   * @param worker how messages name the worker ("123", "thread 4 (pid 123)")
   * @param heapFlag the --max-old-space-size the worker runs with, if any
   */
  constructor(
    private readonly worker: string,
    private readonly heapFlag: string | undefined,
  ) {}

  get taskId(): string | undefined {
    return this.pending?.taskId;
  }

  /** Records `taskId` as running; the promise settles when the task ends in any way. */
  start(taskId: string, cleanup: AfterTaskCleanup | undefined): Promise<WorkerOutcome> {
    return new Promise((resolve) => {
      this.pending = { taskId, started: performance.now(), resolve, cleanup };
    });
  }

  /**
   * Ends the running task with the worker's answer (an answer for another task is ignored).
   * `onAnswered` gets the task's time and after-task cleanup before the caller hears the outcome.
   */
  answer(message: TaskResult, onAnswered: (ms: number, cleanup: AfterTaskCleanup | undefined) => void): void {
    const pending = this.take(message.taskId);
    if (!pending) return;
    onAnswered(performance.now() - pending.started, pending.cleanup);
    pending.resolve(
      message.ok
        ? { ok: true, value: message.value, ms: performance.now() - pending.started }
        : { ok: false, error: message.error },
    );
  }

  /**
   * The payload could not be serialized for the worker (e.g. too large): the worker never saw it.
   * `onUnsent` runs (only if `taskId` was the running task) before the caller hears the outcome.
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

  /** The worker exited: the running task, if any, fails with the kill cause's error or the exit's. */
  fail(exit: WorkerExit): void {
    const pending = this.pending;
    this.pending = undefined;
    if (!pending) return;
    if (!exit.cause && exit.heapLimit) {
      // The task's own input exhausted the heap: another worker would die the same way, so no retry.
      pending.resolve({
        ok: false,
        retryable: false,
        error: {
          code: ErrorCode.WORKER_CRASHED,
          message: heapLimitMessage(this.worker, pending.taskId, exit, this.heapFlag),
        },
      });
      return;
    }
    const error: ErrorShape = exit.cause?.error ?? {
      code: ErrorCode.WORKER_CRASHED,
      message: exitedMessage(this.worker, pending.taskId, exit),
    };
    pending.resolve({ ok: false, error });
  }

  private take(taskId: string): Pending | undefined {
    const pending = this.pending;
    if (!pending || pending.taskId !== taskId) return undefined;
    this.pending = undefined;
    return pending;
  }
}
