/** The face for worker-module authors: `import { TaskError } from 'gpu-supervisor/worker'`. */
import { ErrorCode } from '../protocol/errors.js';

export type {
  WorkerContext,
  WorkerConfig,
  WorkerModule,
  CleanupOptions,
  StartReporter,
  SessionStart,
} from './types.js';
export type { SessionCacheOutcome } from '../protocol/start-phases.js';

/** Codes a worker may raise; the caller receives exactly this code and message. */
export type TaskErrorCode = typeof ErrorCode.BAD_REQUEST | typeof ErrorCode.MODEL_NOT_FOUND;

export class TaskError extends Error {
  readonly code: TaskErrorCode;
  constructor(code: TaskErrorCode, message: string) {
    super(message);
    this.name = 'TaskError';
    this.code = code;
  }
}

export { ErrorCode };
