import type { ModelConfig, SessionOptionsConfig } from '../config/schema.js';
import type { ErrorShape } from './errors.js';
import type { WorkerStartPhases } from './start-phases.js';

/** The part of the supervisor's config a worker sees. */
export interface WorkerConfig {
  models: Record<string, ModelConfig>;
  executionProviders: string[];
  sessionOptions: SessionOptionsConfig;
  /**
   * Where the default worker keeps optimized models (`sessionCache.dir`, resolved to an absolute path);
   * null or absent: no cache.
   */
  sessionCacheDir?: string | null;
  /** Free-form options for custom worker modules (`workerOptions` in the config). */
  options: Record<string, unknown>;
}

/** Messages between the pool (parent) and a worker process. Private to gpu-supervisor. */

export interface CleanupRequest {
  force: boolean;
  /** Report RSS before and after (the pool's per-cleanup memory figures). */
  measure: boolean;
}
export type ToWorker =
  | {
      kind: 'init';
      modulePath: string;
      config: WorkerConfig;
      workerId: number;
      logLevel: string;
      /** Light cleanup collects the young generation only when the heap grew this much since the last. */
      lightGcMinKiB: number;
      /**
       * recycle.rssMiB, for the worker's own check: once a cleanup finds its RSS above it, it declines
       * every task it holds without starting it (the pool requeues them), so the ceiling is crossed by
       * the one task that crossed it, tasks sent ahead included. 0 = none.
       */
      rssCeilingMiB?: number;
      /**
       * The parent reads GPU memory through NVML (this library): the worker then reads its own around
       * each measured cleanup, the only readings that bracket it when tasks are sent ahead.
       */
      nvmlLibrary?: string;
    }
  /** `cleanup`: clean up right after answering, without waiting to be asked (saves a round trip). */
  | { kind: 'run'; taskId: string; payload: unknown; cleanup?: CleanupRequest }
  | { kind: 'cleanup'; force: boolean; measure?: boolean }
  /** A task sent ahead was abandoned (timeout, cancel): answer it E_CANCELLED without running it. */
  | { kind: 'skip'; taskId: string }
  /** Tasks dispatched to one worker in the same tick, in order: one IPC write instead of one each. */
  | { kind: 'batch'; runs: Array<Extract<ToWorker, { kind: 'run' }>> }
  /**
   * Release one model's cached session in place and collect (admin `clear-cache --mode light`): the
   * worker lives on. Answered by `released` with the same `id`, in order with the tasks before it.
   */
  | { kind: 'release'; id: number; model: string; measure: boolean }
  | { kind: 'stop' };

/**
 * `sessions`: the models whose session the worker module holds now (its `heldSessions` hook), sent only
 * when the list changed since the worker last said it (a session created by a task, released by a
 * cleanup): the parent keeps the last list it heard. Absent from a module without the hook.
 */
interface Sessions {
  sessions?: string[];
}

export type FromWorker =
  /** `phases`: where the start went, as the worker measured it (absent from older workers). */
  | ({ kind: 'ready'; setupMs: number; phases?: WorkerStartPhases } & Sessions)
  | { kind: 'setup-failed'; error: ErrorShape }
  | ({ kind: 'result'; taskId: string; ok: true; value: unknown } & Sessions)
  | ({ kind: 'result'; taskId: string; ok: false; error: ErrorShape } & Sessions)
  /**
   * RSS figures only when measuring was asked: read by the worker itself, from the kernel's counter.
   * GPU figures (its own, through NVML) only when init named a library and NVML listed this process.
   * `tasks`: how many tasks ran since the worker's previous cleanup (cleanup.everyTasks), when any did.
   */
  | ({
      kind: 'cleaned';
      ms: number;
      rssBeforeMiB?: number;
      rssAfterMiB?: number;
      gpuBeforeMiB?: number;
      gpuAfterMiB?: number;
      tasks?: number;
    } & Sessions)
  /** The answer to `release`: whether the module had that session, RSS around the release and collection. */
  | ({
      kind: 'released';
      id: number;
      model: string;
      held?: boolean;
      ms: number;
      rssBeforeMiB?: number;
      rssAfterMiB?: number;
    } & Sessions)
  /** From the runtime adapter, not the worker: the task could not be serialized and never left. */
  | { kind: 'unsent'; taskId: string; message: string }
  /** A task the worker will not start: it is over its RSS ceiling (see `rssCeilingMiB`). */
  | { kind: 'declined'; taskId: string; rssMiB: number };
