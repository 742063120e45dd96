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
 * Runs a worker's in-worker cleanup with its RSS read by the parent before and after. Resolves
 * undefined when not measured (measurement off, or the worker died under it).
 */
export async function measuredCleanup(
  handle: WorkerHandle,
  taskId: string | undefined,
  mode: CleanupMode,
  options: { measure: boolean; timeoutMs: number },
): Promise<CleanupEvent | undefined> {
  const before = options.measure ? await handle.rssMiB() : undefined;
  const ms = await handle.cleanup(mode !== 'light', options.timeoutMs);
  const after = options.measure && handle.alive ? await handle.rssMiB() : undefined;
  if (before === undefined || after === undefined) return undefined;
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
