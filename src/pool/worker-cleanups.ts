import type { CleanupRequest } from '../protocol/worker-messages.js';

/** What a cleanup took in the worker and, when measured, the worker's RSS around it (MiB). */
export interface CleanupReport {
  ms: number;
  rssBeforeMiB?: number;
  rssAfterMiB?: number;
  /** Tasks the worker ran since its previous cleanup (cleanup.everyTasks), as it counted them. */
  tasks?: number;
  /** The worker's own GPU memory around the cleanup, when it reads it itself (NVML). */
  gpuBeforeMiB?: number;
  gpuAfterMiB?: number;
}

/** Cleanup the worker runs by itself right after answering a task (see `WorkerHandle.run`). */
export interface AfterTaskCleanup extends CleanupRequest {
  timeoutMs: number;
}

/**
 * One worker's cleanups that were asked for or started and not yet reported. The worker reports them
 * in order ('cleaned' carries no id), so each report belongs to the oldest one owed.
 */
export class WorkerCleanups {
  private readonly owed: Array<{ taskId: string | undefined; timer: NodeJS.Timeout }> = [];

  /**
   * @param onTimeout a cleanup not reported within its `timeoutMs`: a cleanup hook that hangs would
   * hold the worker forever, so the handle kills it
   * @param onReport a report, with the task it followed (undefined: an idle release)
   */
  constructor(
    private readonly onTimeout: (timeoutMs: number) => void,
    private readonly onReport: (report: CleanupReport, taskId: string | undefined) => void,
  ) {}

  /** Reports still to come: while any is, the worker has not started the task it holds next. */
  get outstanding(): number {
    return this.owed.length;
  }

  /** A report will come for the cleanup after `taskId` (undefined: one asked for, with no task). */
  expect(taskId: string | undefined, timeoutMs: number): void {
    this.owed.push({ taskId, timer: setTimeout(() => this.onTimeout(timeoutMs), timeoutMs) });
  }

  reported(report: CleanupReport): void {
    const owed = this.owed.shift();
    if (!owed) return;
    clearTimeout(owed.timer);
    this.onReport(report, owed.taskId);
  }

  /** The worker is gone: nothing more will be reported. */
  abandon(): void {
    for (const owed of this.owed.splice(0)) clearTimeout(owed.timer);
  }
}
