import type { ErrorShape } from '../protocol/errors.js';
import type { PoolOutcome, PoolTask } from '../pool/pool-task.js';
import type { WorkerHandle } from '../pool/worker-handle.js';

/** `attempts` is present when retries ran the task more than once. */
export type TaskOutcome =
  | { ok: true; value: unknown; workerPid: number; ms: number; queueMs: number; attempts?: number }
  | { ok: false; error: ErrorShape; workerPid?: number; attempts?: number };

/**
 * One accepted task, from acceptance to its single answer. `settle` is the only way to answer it, and
 * it answers once: whoever comes second (a late worker result after a timeout, a cancel racing a
 * result) is ignored.
 */
export class Task implements PoolTask {
  readonly acceptedAt = performance.now();
  seq = 0;
  attempts = 0;
  startedAt: number | undefined;
  holder: WorkerHandle | undefined;
  timer: NodeJS.Timeout | undefined;
  /** Runs once the task is answered (releases listeners it holds). */
  onSettled: (() => void) | undefined;
  private answered = false;

  constructor(
    readonly id: string,
    /** Dropped once answered: an abandoned task may sit in the queue a while, its payload need not. */
    public payload: unknown,
    readonly priority: number,
    private readonly answer: (outcome: TaskOutcome) => void,
  ) {}

  get settled(): boolean {
    return this.answered;
  }

  get model(): string | undefined {
    const model = (this.payload as { model?: unknown } | null)?.model;
    return typeof model === 'string' ? model : undefined;
  }

  /** The pool's answer, with the time it waited for a worker. */
  finish(outcome: PoolOutcome): void {
    if (!outcome.ok) {
      this.settle(outcome);
      return;
    }
    const queueMs = round((this.startedAt ?? performance.now()) - this.acceptedAt);
    const { value, workerPid, ms, attempts } = outcome;
    this.settle({ ok: true, value, workerPid, ms: round(ms), queueMs, ...(attempts ? { attempts } : {}) });
  }

  /** Answers the task; returns false if it had already been answered. */
  settle(outcome: TaskOutcome): boolean {
    if (this.answered) return false;
    this.answered = true;
    clearTimeout(this.timer);
    this.onSettled?.();
    this.answer(outcome);
    this.payload = undefined;
    return true;
  }
}

export function round(ms: number): number {
  return Math.round(ms * 100) / 100;
}
