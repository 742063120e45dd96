import { roundMiB } from '../probes/process-memory.js';
import type { SupervisorEventMap } from '../events.js';
import type { RecycleReason } from '../core/recycle-policy.js';
import type { WorkerHandle } from './worker-handle.js';

/**
 * A recycle event as the pool emits it: whose memory the RSS figures are (a thread's are the whole
 * process's), whether a warm spare took over, and the thread ids where pids say nothing.
 */
export type RecycleEvent = SupervisorEventMap['recycle'] & {
  memoryScope: 'worker' | 'process';
  spare?: true;
  oldThreadId?: number;
  newThreadId?: number | undefined;
};

/**
 * The recycle line's figures: the old worker's RSS before it was stopped, its successor's after it
 * started (none for an idle exit, which has no successor: all it held is freed).
 */
export function recycleEvent(
  old: WorkerHandle,
  fresh: WorkerHandle | undefined,
  facts: {
    reason: RecycleReason;
    detail: string;
    rssBeforeMiB: number | undefined;
    rssAfterMiB: number | undefined;
    started: number;
    handedOver: boolean;
  },
): RecycleEvent {
  const { rssBeforeMiB, rssAfterMiB } = facts;
  const rssFreedMiB = fresh
    ? rssBeforeMiB !== undefined && rssAfterMiB !== undefined
      ? roundMiB(rssBeforeMiB - rssAfterMiB)
      : undefined
    : old.memoryScope === 'worker'
      ? rssBeforeMiB
      : undefined;
  return {
    reason: facts.reason,
    detail: facts.detail,
    oldPid: old.pid,
    newPid: fresh?.pid,
    tasksDone: old.tasksDone,
    rssBeforeMiB,
    rssAfterMiB,
    rssFreedMiB,
    ms: Math.round(performance.now() - facts.started),
    memoryScope: old.memoryScope,
    ...(old.gpuIndex === undefined ? {} : { gpuIndex: old.gpuIndex }),
    ...(facts.handedOver ? { spare: true as const } : {}),
    ...(old.threadId === undefined ? {} : { oldThreadId: old.threadId, newThreadId: fresh?.threadId }),
  };
}
