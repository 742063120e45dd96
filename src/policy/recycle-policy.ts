/**
 * The one place that decides whether a worker should be recycled, as a pure function of facts the
 * pool gathered. Pure so it can be tested as a table and reasoned about without processes.
 */
export type RecycleReason = 'every-n' | 'gpu' | 'admin' | 'crash' | 'timeout' | 'cancel' | 'shutdown';

export interface RecyclePolicyOptions {
  /** 0 = never. */
  recycleEveryTasks: number;
  /** Recycle a worker whose own GPU memory exceeds this after a task; 0 = off. */
  gpuMiB?: number;
}

export interface WorkerFacts {
  tasksDone: number;
  /** The worker's own GPU memory (process attribution only: a device total says nothing of one worker). */
  gpuMiB?: number | undefined;
}

export type RecycleDecision = { recycle: false } | { recycle: true; reason: RecycleReason; detail: string };

const KEEP: RecycleDecision = { recycle: false };

export function decideAfterTask(facts: WorkerFacts, options: RecyclePolicyOptions): RecycleDecision {
  const every = options.recycleEveryTasks;
  if (every > 0 && facts.tasksDone >= every) {
    return {
      recycle: true,
      reason: 'every-n',
      detail: `${facts.tasksDone} tasks done (recycleEveryTasks ${every})`,
    };
  }
  const gpuLimit = options.gpuMiB ?? 0;
  if (gpuLimit > 0 && facts.gpuMiB !== undefined && facts.gpuMiB > gpuLimit) {
    return {
      recycle: true,
      reason: 'gpu',
      detail: `GPU memory ${facts.gpuMiB} MiB over recycle.gpuMiB ${gpuLimit}`,
    };
  }
  return KEEP;
}
