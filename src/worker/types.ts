import type { Logger } from 'pino';
import type { WorkerConfig } from '../protocol/worker-messages.js';
import type { SessionStart } from '../protocol/start-phases.js';

export type { WorkerConfig, SessionStart };

/**
 * How a module tells where its `setup` went: the pool reports it with the start's other phases
 * (worker ready log line, stats, history). Reports after setup are ignored.
 */
export interface StartReporter {
  /** A native binding (onnxruntime-node) took `ms` to load. */
  binding(ms: number): void;
  /** A session was created during setup. */
  session(start: SessionStart): void;
  /** A named step of setup took `ms` (e.g. 'cuda context', 'weight upload'). */
  step(name: string, ms: number): void;
}

export interface WorkerContext {
  /** Stable index of the pool slot this worker fills (survives recycling). */
  workerId: number;
  config: WorkerConfig;
  log: Logger;
  /** Where setup went (optional: a context made by hand, in a test, may lack it). */
  start?: StartReporter;
}

export interface CleanupOptions {
  /** Aggressive cleanup: release everything cached (sessions), not only per-task garbage. */
  force: boolean;
}

/**
 * What a worker module exports. `run`'s return value becomes the task's `value`; throw a
 * `TaskError('E_BAD_REQUEST' | 'E_MODEL_NOT_FOUND', ...)` to reject input, anything else thrown is
 * reported to the caller as E_TASK_FAILED with its message.
 */
export interface WorkerModule {
  setup?(context: WorkerContext): unknown;
  run(payload: unknown, context: WorkerContext): unknown;
  cleanup?(context: WorkerContext, options: CleanupOptions): unknown;
  /**
   * The models whose session it holds now (loaded or loading). The pool uses it to find the workers
   * an admin `clear-cache { model }` concerns; without it, every worker counts as holding any model.
   */
  heldSessions?(context: WorkerContext): Iterable<string>;
  /** Releases `model`'s cached session in place (admin `clear-cache { model, mode: 'light' }`). */
  releaseSession?(model: string, context: WorkerContext): unknown;
}
