import { ErrorCode, SupervisorError, type ErrorShape } from '../protocol/errors.js';
import type { WorkerHandle } from '../pool/worker-handle.js';

/** `attempts` is present when retries ran the task more than once. */
export type TaskOutcome =
  | { ok: true; value: unknown; workerPid: number; ms: number; queueMs: number; attempts?: number }
  | { ok: false; error: ErrorShape; workerPid?: number; attempts?: number };

/**
 * One accepted task, from acceptance to its single answer. `settle` is the only way to answer it, and
 * it answers once: whoever comes second (a late worker result after a timeout, an abort racing a
 * result) is ignored.
 */
export class Task {
  readonly acceptedAt = performance.now();
  /** Made only if the task has to wait for a worker: most never do, and each costs listeners. */
  private controller: AbortController | undefined;
  /** Still in the supervisor's queue (accepted, not yet dispatched, not answered). */
  queued = true;
  startedAt: number | undefined;
  handle: WorkerHandle | undefined;
  timer: NodeJS.Timeout | undefined;
  /** Runs once the task is answered (releases listeners it holds). */
  onSettled: (() => void) | undefined;
  private answered = false;

  constructor(
    readonly id: string,
    /** Dropped once answered: an abandoned task may sit in the queue a while, its payload need not. */
    public payload: unknown,
    private readonly answer: (outcome: TaskOutcome) => void,
  ) {}

  /** Aborted when the task is answered: withdraws it from wherever it waits for a worker. */
  get signal(): AbortSignal {
    this.controller ??= new AbortController();
    if (this.answered) this.controller.abort();
    return this.controller.signal;
  }

  get settled(): boolean {
    return this.answered;
  }

  get model(): string | undefined {
    const model = (this.payload as { model?: unknown } | null)?.model;
    return typeof model === 'string' ? model : undefined;
  }

  /** Answers the task; returns false if it had already been answered. */
  settle(outcome: TaskOutcome): boolean {
    if (this.answered) return false;
    this.answered = true;
    clearTimeout(this.timer);
    this.onSettled?.();
    this.answer(outcome);
    this.payload = undefined;
    this.controller?.abort(new SupervisorError(ErrorCode.CANCELLED, `task ${this.id} was answered`));
    return true;
  }
}
