/**
 * The one place that decides whether a worker should be recycled, as a pure function of facts the
 * pool gathered. Pure so it can be tested as a table and reasoned about without processes.
 */
export type RecycleReason = 'every-n' | 'admin' | 'crash' | 'timeout' | 'cancel' | 'shutdown';

export interface RecyclePolicyOptions {
  /** 0 = never. */
  recycleEveryTasks: number;
}

export interface WorkerFacts {
  tasksDone: number;
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
  return KEEP;
}
