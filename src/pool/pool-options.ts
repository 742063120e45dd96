import type { RecyclePolicyOptions } from '../policy/recycle-policy.js';
import type { WorkerConfig } from '../worker/types.js';
import type { Backend } from './runtime/types.js';

export interface PoolOptions {
  /** 'process' (a child process per worker) or 'thread' (a piscina worker thread per worker). */
  backend: Backend;
  /** Workers the pool starts with and shrinks back to (`minWorkers ?? workers`). */
  minWorkers: number;
  /** Workers the pool grows to while tasks wait (`maxWorkers ?? workers`). */
  maxWorkers: number;
  /** A worker above minWorkers with no task for this long exits (not replaced); 0 = never. */
  idleTimeoutMs: number;
  /** Started-and-ready workers kept aside to take over a slot at once on any recycle. */
  spareWorkers: number;
  /**
   * Tasks a worker may hold at once: the one it runs and those sent ahead, which it runs in order
   * (its cleanup between them), so it never waits a round trip for its next task. Always 1 for
   * threads (`effectivePipelineDepth`).
   */
  pipelineDepth: number;
  modulePath: string;
  workerConfig: WorkerConfig;
  execArgv: readonly string[];
  logLevel: string;
  startTimeoutMs: number;
  killTimeoutMs: number;
  /** What the RecyclePolicy checks after each task (recycleEveryTasks, rssMiB, gpuMiB, maxAgeMs, leak). */
  policy: RecyclePolicyOptions;
  /** Each worker's N is drawn from [N, N + jitter], so workers started together do not recycle together. */
  jitter: number;
  /** Policy recycles (not crashes or timeouts) under way at once, at most. */
  maxConcurrentRecycles: number;
  /** Start a worker's replacement while it runs its last task (every-n), so no task waits for a cold start. */
  prespawn: boolean;
  /** Release an idle worker's cached sessions after this long without a task; 0 = off. */
  idleReleaseMs: number;
  /** Crash-loop protection: a worker dying sooner than this after starting is a failed start. */
  minUptimeMs: number;
  /** Failed starts in a row after which the pool is degraded (new tasks: E_WORKERS_UNAVAILABLE). */
  maxFailedStarts: number;
  cleanup: { afterTask: boolean; force: boolean; measure: boolean; timeoutMs: number; lightGcMinKiB: number };
  /** GPU indexes workers are pinned to, round-robin by slot; empty = not pinned. */
  gpus: readonly number[];
  gpuReclaimTimeoutMs: number;
  /** Where the pool's start-up warnings go (the supervisor's logger). */
  warn?: (fields: Record<string, unknown>, message: string) => void;
}
