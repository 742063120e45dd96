/**
 * Error codes are a public contract: clients switch on them, external checks rely on the names.
 * Add new codes; never rename one.
 */
export const ErrorCode = {
  BAD_REQUEST: 'E_BAD_REQUEST',
  MODEL_NOT_FOUND: 'E_MODEL_NOT_FOUND',
  TASK_FAILED: 'E_TASK_FAILED',
  TIMEOUT: 'E_TIMEOUT',
  WORKER_CRASHED: 'E_WORKER_CRASHED',
  QUEUE_FULL: 'E_QUEUE_FULL',
  SHUTTING_DOWN: 'E_SHUTTING_DOWN',
  DUPLICATE_ID: 'E_DUPLICATE_ID',
  CANCELLED: 'E_CANCELLED',
  WORKERS_UNAVAILABLE: 'E_WORKERS_UNAVAILABLE',
  NOT_RUNNING: 'E_NOT_RUNNING',
  UNAUTHORIZED: 'E_UNAUTHORIZED',
  OUT_OF_MEMORY: 'E_OUT_OF_MEMORY',
} as const;

export type ErrorCode = (typeof ErrorCode)[keyof typeof ErrorCode];

const KNOWN_CODES: ReadonlySet<string> = new Set(Object.values(ErrorCode));

/** Codes a worker module may raise itself; anything else it throws is reported as E_TASK_FAILED. */
const WORKER_RAISABLE: ReadonlySet<string> = new Set([ErrorCode.BAD_REQUEST, ErrorCode.MODEL_NOT_FOUND]);

export interface ErrorShape {
  code: string;
  message: string;
}

/** The one error type callers of the library and the client see. */
export class SupervisorError extends Error {
  readonly code: ErrorCode;

  constructor(code: ErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'SupervisorError';
    this.code = code;
  }

  toJSON(): ErrorShape {
    return { code: this.code, message: this.message };
  }

  static fromShape(shape: ErrorShape): SupervisorError {
    const code = KNOWN_CODES.has(shape.code) ? (shape.code as ErrorCode) : ErrorCode.TASK_FAILED;
    return new SupervisorError(code, shape.message);
  }
}

export function isErrorCode(value: unknown): value is ErrorCode {
  return typeof value === 'string' && KNOWN_CODES.has(value);
}

/** Maps whatever a worker module threw to the shape sent back to the caller. */
export function workerErrorShape(error: unknown): ErrorShape {
  if (error instanceof Error) {
    const code = (error as { code?: unknown }).code;
    if (typeof code === 'string' && WORKER_RAISABLE.has(code)) return { code, message: error.message };
    return { code: ErrorCode.TASK_FAILED, message: error.message || error.name };
  }
  return { code: ErrorCode.TASK_FAILED, message: describeThrown(error) };
}

/** String(x) throws for objects without a prototype; a worker must never crash while reporting an error. */
function describeThrown(value: unknown): string {
  try {
    return String(value);
  } catch {
    return Object.prototype.toString.call(value);
  }
}

/**
 * A client's value quoted in an error message: bounded (a 10 MiB "type" must not become a 10 MiB log
 * line) and total (JSON.stringify throws on BigInts and cycles, which 'advanced' serialization carries).
 */
export function describeValue(value: unknown, max = 60): string {
  let text: string;
  try {
    text = typeof value === 'bigint' ? `${value}n` : (JSON.stringify(value) ?? String(value));
  } catch {
    text = Object.prototype.toString.call(value);
  }
  return text.length > max ? `${text.slice(0, max - 1)}…` : text;
}
