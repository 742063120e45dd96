import type { ModelConfig, SessionOptionsConfig } from '../config/schema.js';
import type { ErrorShape } from './errors.js';

/** The part of the supervisor's config a worker sees. */
export interface WorkerConfig {
  models: Record<string, ModelConfig>;
  executionProviders: string[];
  sessionOptions: SessionOptionsConfig;
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
  | { kind: 'stop' };

export type FromWorker =
  | { kind: 'ready'; setupMs: number }
  | { kind: 'setup-failed'; error: ErrorShape }
  | { kind: 'result'; taskId: string; ok: true; value: unknown }
  | { kind: 'result'; taskId: string; ok: false; error: ErrorShape }
  /**
   * RSS figures only when measuring was asked: read by the worker itself, from the kernel's counter.
   * GPU figures (its own, through NVML) only when init named a library and NVML listed this process.
   */
  | {
      kind: 'cleaned';
      ms: number;
      rssBeforeMiB?: number;
      rssAfterMiB?: number;
      gpuBeforeMiB?: number;
      gpuAfterMiB?: number;
    }
  /** From the runtime adapter, not the worker: the task could not be serialized and never left. */
  | { kind: 'unsent'; taskId: string; message: string }
  /** A task the worker will not start: it is over its RSS ceiling (see `rssCeilingMiB`). */
  | { kind: 'declined'; taskId: string; rssMiB: number };
