import { createHash, timingSafeEqual } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import { ErrorCode, SupervisorError, type ErrorShape } from '../protocol/errors.js';
import type { AdminCommand } from '../protocol/messages.js';

/** Admin commands reachable over HTTP. `shutdown` is not: stopping the daemon stays with its owner. */
export const HTTP_ADMIN_COMMANDS: ReadonlySet<AdminCommand> = new Set<AdminCommand>([
  'stats',
  'recycle',
  'clear-cache',
  'clear-history',
  'history',
  'report',
]);

export function isHttpAdminCommand(name: string): name is AdminCommand {
  return HTTP_ADMIN_COMMANDS.has(name as AdminCommand);
}

const DRAIN_FACTOR = 4;

/** An answer that is not a 200: status plus the same `{ error: { code, message } }` body as elsewhere. */
export class HttpError extends Error {
  constructor(
    readonly status: number,
    readonly shape: ErrorShape,
    readonly headers: Record<string, string> = {},
  ) {
    super(shape.message);
  }
}

const STATUS_BY_CODE: Record<string, number> = {
  [ErrorCode.BAD_REQUEST]: 400,
  [ErrorCode.UNAUTHORIZED]: 401,
  [ErrorCode.MODEL_NOT_FOUND]: 404,
  [ErrorCode.DUPLICATE_ID]: 409,
  [ErrorCode.CANCELLED]: 409,
  [ErrorCode.QUEUE_FULL]: 429,
  [ErrorCode.SHUTTING_DOWN]: 503,
  [ErrorCode.NOT_RUNNING]: 503,
  [ErrorCode.WORKERS_UNAVAILABLE]: 503,
  [ErrorCode.TIMEOUT]: 504,
};

/** What an admin() failure becomes on the wire; anything not a SupervisorError is a 500. */
export function httpErrorOf(error: unknown): HttpError {
  if (error instanceof HttpError) return error;
  if (error instanceof SupervisorError)
    return new HttpError(STATUS_BY_CODE[error.code] ?? 500, error.toJSON());
  const message = error instanceof Error ? error.message : String(error);
  return new HttpError(500, { code: ErrorCode.TASK_FAILED, message });
}

/**
 * Checks `Authorization: Bearer <token>` in constant time. Both sides are hashed first, so the
 * comparison neither leaks the token's length nor needs equal-length inputs. Returns why it failed.
 */
export function checkBearer(header: string | undefined, token: string): 'ok' | 'missing' | 'wrong' {
  // The whole value after the scheme: a token may hold spaces (HTTP trims only its ends).
  const match = /^Bearer[ ]+(.+?)\s*$/i.exec(header ?? '');
  if (!match) return header === undefined ? 'missing' : 'wrong';
  const given = createHash('sha256').update(match[1]!).digest();
  const expected = createHash('sha256').update(token).digest();
  return timingSafeEqual(given, expected) ? 'ok' : 'wrong';
}

/**
 * Reads a JSON object body of at most `limit` bytes: empty means `{}`. An oversized body is still
 * read (and dropped) up to DRAIN_FACTOR x limit before the 413: closing a connection with unread
 * data makes the kernel send a reset, and the client may then lose the 413 itself. Beyond that,
 * or when the declared length is beyond it, the 413 goes out at once and the connection closes.
 */
export async function readArgs(req: IncomingMessage, limit: number): Promise<Record<string, unknown>> {
  const tooLarge = (): HttpError =>
    new HttpError(
      413,
      { code: ErrorCode.BAD_REQUEST, message: `request body is over ${limit} bytes` },
      { connection: 'close' },
    );
  const drainLimit = limit * DRAIN_FACTOR;
  if (Number(req.headers['content-length'] ?? 0) > drainLimit) throw tooLarge();
  const body = await new Promise<Buffer>((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const onData = (chunk: Buffer): void => {
      size += chunk.length;
      if (size <= limit) chunks.push(chunk);
      else if (size > drainLimit) {
        req.off('data', onData);
        reject(tooLarge());
      }
    };
    req.on('data', onData);
    req.on('end', () => (size > limit ? reject(tooLarge()) : resolve(Buffer.concat(chunks))));
    req.on('error', reject);
    // A client gone mid-body: nobody is left to answer, but the promise must not wait forever.
    req.on('close', () =>
      reject(new HttpError(400, { code: ErrorCode.BAD_REQUEST, message: 'request aborted' })),
    );
  });
  const text = body.toString('utf8').trim();
  if (text === '') return {};
  let args: unknown;
  try {
    args = JSON.parse(text);
  } catch (error) {
    throw new HttpError(400, {
      code: ErrorCode.BAD_REQUEST,
      message: `request body is not JSON: ${(error as Error).message}`,
    });
  }
  if (typeof args !== 'object' || args === null || Array.isArray(args)) {
    throw new HttpError(400, {
      code: ErrorCode.BAD_REQUEST,
      message: 'request body must be a JSON object (the command arguments)',
    });
  }
  return args as Record<string, unknown>;
}
