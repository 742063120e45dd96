import type { ErrorShape } from '../protocol/errors.js';
import type { WorkerConfig } from '../worker/types.js';

/** Messages between the pool (parent) and a worker process. Private to gpu-supervisor. */
export type ToWorker =
  | { kind: 'init'; modulePath: string; config: WorkerConfig; workerId: number; logLevel: string }
  | { kind: 'run'; taskId: string; payload: unknown }
  | { kind: 'cleanup'; force: boolean }
  | { kind: 'stop' };

export type FromWorker =
  | { kind: 'ready'; setupMs: number }
  | { kind: 'setup-failed'; error: ErrorShape }
  | { kind: 'result'; taskId: string; ok: true; value: unknown }
  | { kind: 'result'; taskId: string; ok: false; error: ErrorShape }
  | { kind: 'cleaned'; ms: number }
  /** From the runtime adapter, not the worker: the task could not be serialized and never left. */
  | { kind: 'unsent'; taskId: string; message: string };
