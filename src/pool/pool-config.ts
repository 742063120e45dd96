import type { SupervisorConfig } from '../config/schema.js';
import { effectivePipelineDepth, resolvePoolSize } from '../config/pool-size.js';
import type { RecyclePolicyOptions } from '../core/recycle-policy.js';

/** What the pool reads of the configuration, under the configuration's own key names. */
export type PoolConfig = Pick<
  SupervisorConfig,
  | 'backend'
  | 'workers'
  | 'minWorkers'
  | 'maxWorkers'
  | 'idleTimeoutMs'
  | 'spareWorkers'
  | 'pipelineDepth'
  | 'workerOptions'
  | 'workerExecArgv'
  | 'recycleEveryTasks'
  | 'startTimeoutMs'
  | 'killTimeoutMs'
  | 'minUptimeMs'
  | 'idleReleaseMs'
  | 'maxFailedStarts'
  | 'retries'
  | 'logLevel'
  | 'cleanup'
  | 'recycle'
  | 'limits'
  | 'gpus'
  | 'gpuProbe'
  | 'executionProviders'
  | 'sessionOptions'
  | 'sessionCache'
  | 'models'
> & {
  /** The worker module to run (the config's `worker`, or the default ONNX Runtime worker). */
  worker: string;
};

/** What follows from the configuration, worked out once for the pool's life. */
export interface PoolPlan {
  minWorkers: number;
  maxWorkers: number;
  /** Tasks one worker may hold at once (1 for threads). */
  pipelineDepth: number;
  policy: RecyclePolicyOptions;
  /**
   * Pre-spawn a count-due worker's successor (no use with warm spares, which take over at once); in
   * `auto` mode only when a core is idle, in either mode only within the memory budget.
   */
  prespawn: boolean;
}

export function planOf(config: PoolConfig): PoolPlan {
  const { recycle } = config;
  return {
    ...resolvePoolSize(config),
    pipelineDepth: effectivePipelineDepth(config),
    policy: {
      recycleEveryTasks: config.recycleEveryTasks,
      rssMiB: recycle.rssMiB,
      gpuMiB: recycle.gpuMiB,
      maxAgeMs: recycle.maxAgeMs,
      leakHorizonTasks: recycle.leakHorizonTasks,
    },
    prespawn: recycle.prespawn !== false && config.spareWorkers === 0,
  };
}
