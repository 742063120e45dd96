import { roundMiB } from '../probes/process-memory.js';
import type { SupervisorEventMap } from '../events.js';
import type { CleanupReport, WorkerHandle } from './worker-handle.js';

export type CleanupMode = 'light' | 'force' | 'idle';

/**
 * A cleanup event, plus whose memory the figures are: `worker` (a worker process's own RSS) or
 * `process` (the supervisor's whole RSS: threads have no RSS of their own).
 */
export type CleanupEvent = SupervisorEventMap['cleanup'] & {
  memoryScope: 'worker' | 'process';
  threadId?: number;
};

/**
 * A worker's cleanup with its RSS before and after, as the worker read it from the kernel (the same
 * counter pidusage reads from /proc, without two /proc reads and an IPC round trip per task).
 * Undefined when not measured.
 */
export function cleanupEvent(
  handle: WorkerHandle,
  report: CleanupReport,
  taskId: string | undefined,
  mode: CleanupMode,
): CleanupEvent | undefined {
  const { ms, rssBeforeMiB: before, rssAfterMiB: after, gpuBeforeMiB, gpuAfterMiB } = report;
  if (before === undefined || after === undefined) return undefined;
  // Read by the worker itself through NVML, its own pid: they bracket the cleanup exactly.
  const gpu =
    gpuBeforeMiB !== undefined && gpuAfterMiB !== undefined
      ? {
          gpuBeforeMiB,
          gpuAfterMiB,
          gpuFreedMiB: roundMiB(gpuBeforeMiB - gpuAfterMiB),
          attribution: 'process' as const,
        }
      : {};
  return {
    taskId,
    pid: handle.pid,
    mode,
    rssBeforeMiB: before,
    rssAfterMiB: after,
    freedMiB: roundMiB(before - after),
    ms: Math.round(ms * 100) / 100,
    ...(report.tasks === undefined ? {} : { tasks: report.tasks }),
    memoryScope: handle.memoryScope,
    ...gpu,
    ...(handle.threadId === undefined ? {} : { threadId: handle.threadId }),
  };
}
