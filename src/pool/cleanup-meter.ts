import { roundMiB } from '../probes/process-memory.js';
import type { SupervisorEventMap } from '../events.js';
import type { WorkerHandle } from './worker-handle.js';

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
 * counter pidusage reads from /proc, without two /proc reads and an IPC round trip per task). Resolves
 * undefined when not measured (measurement off, or the worker died under it).
 */
export async function measuredCleanup(
  handle: WorkerHandle,
  taskId: string | undefined,
  mode: CleanupMode,
  options: { measure: boolean; timeoutMs: number },
): Promise<CleanupEvent | undefined> {
  const {
    ms,
    rssBeforeMiB: before,
    rssAfterMiB: after,
  } = await handle.cleanup(mode !== 'light', options.timeoutMs, options.measure, taskId);
  if (before === undefined || after === undefined || !handle.alive) return undefined;
  handle.lastRssMiB = after;
  return {
    taskId,
    pid: handle.pid,
    mode,
    rssBeforeMiB: before,
    rssAfterMiB: after,
    freedMiB: roundMiB(before - after),
    ms: Math.round(ms * 100) / 100,
    memoryScope: handle.memoryScope,
    ...(handle.threadId === undefined ? {} : { threadId: handle.threadId }),
  };
}
