import type { CleanupRequest } from './worker-protocol.js';

/** What a cleanup took in the worker and, when measured, the worker's RSS around it (MiB). */
export interface CleanupReport {
  ms: number;
  rssBeforeMiB?: number;
  rssAfterMiB?: number;
}

/** Cleanup the worker runs by itself right after answering a task (see `WorkerHandle.run`). */
export interface AfterTaskCleanup extends CleanupRequest {
  timeoutMs: number;
}

/**
 * One worker's cleanups that were asked for or started and not yet reported. The worker reports them
 * in order ('cleaned' carries no id), so the oldest waiter gets each report.
 */
export class WorkerCleanups {
  private readonly waiting: Array<(report: CleanupReport) => void> = [];
  /** Cleanups the worker started by itself after answering, by task, until the pool collects them. */
  private readonly underway = new Map<string, Promise<CleanupReport>>();

  /**
   * @param onTimeout called when a cleanup is not reported within its `timeoutMs`: a cleanup hook that
   * hangs would hold the slot forever, so the handle kills the worker (which then answers the waiter).
   */
  constructor(private readonly onTimeout: (timeoutMs: number) => void) {}

  /** Reports still to come: while any is, the worker has not started the task it holds next. */
  get outstanding(): number {
    return this.waiting.length;
  }

  /** Waits for the next cleanup report. */
  wait(timeoutMs: number): Promise<CleanupReport> {
    return new Promise((resolve) => {
      const timer = setTimeout(() => this.onTimeout(timeoutMs), timeoutMs);
      this.waiting.push((report) => {
        clearTimeout(timer);
        resolve(report);
      });
    });
  }

  /** The worker reported its oldest outstanding cleanup. */
  reported(report: CleanupReport): void {
    this.waiting.shift()?.(report);
  }

  /** The worker is gone: nothing more will be reported, so every waiter gets an empty report. */
  abandon(): void {
    for (const done of this.waiting.splice(0)) done({ ms: 0 });
    this.underway.clear();
  }

  /** Remembers the cleanup the worker started by itself after answering `taskId`, for `takeUnderway`. */
  setUnderway(taskId: string, done: Promise<CleanupReport>): void {
    this.underway.set(taskId, done);
  }

  /**
   * The self-started cleanup after `taskId`, handed out once. Keyed by task: with tasks sent ahead,
   * the next answer (and its cleanup) can arrive before the pool collects this one.
   */
  takeUnderway(taskId: string | undefined): Promise<CleanupReport> | undefined {
    if (taskId === undefined) return undefined;
    const underway = this.underway.get(taskId);
    this.underway.delete(taskId);
    return underway;
  }
}
