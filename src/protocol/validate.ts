import { ErrorCode } from './errors.js';
import { ADMIN_COMMANDS, type AdminCommand, type ClientMessage } from './messages.js';

/**
 * Validation of messages arriving from clients. Hand-written rather than a schema library because it
 * runs once per task on the hot path and the shapes are small. Never throws: returns what is wrong.
 */
export type Validated =
  | { ok: true; message: ClientMessage }
  | { ok: false; id: string | undefined; kind: string | undefined; code: ErrorCode; message: string };

const MAX_ID_LENGTH = 256;
/** Node timers overflow past 2^31-1 ms and would fire at once. */
export const MAX_TIMEOUT_MS = 2 ** 31 - 1;

function isPlainObject(value: unknown): value is Record<string, unknown> {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return false;
  const proto = Object.getPrototypeOf(value) as unknown;
  return proto === Object.prototype || proto === null;
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

function bad(id: string | undefined, kind: string | undefined, message: string): Validated {
  return { ok: false, id, kind, code: ErrorCode.BAD_REQUEST, message };
}

/** How much of an unknown message type is kept (logged, echoed). */
const MAX_KIND_LENGTH = 64;

export function validateClientMessage(raw: unknown): Validated {
  if (!isPlainObject(raw)) return bad(undefined, undefined, 'message must be an object');
  const type = raw.type;
  const id = raw.id;
  // Kept for the answer and the log line: an unknown type may be megabytes long.
  const kind = typeof type === 'string' ? type.slice(0, MAX_KIND_LENGTH) : undefined;
  const goodId = typeof id === 'string' && id.length > 0 && id.length <= MAX_ID_LENGTH ? id : undefined;
  if (type !== 'task' && type !== 'admin' && type !== 'cancel') {
    return bad(
      goodId,
      kind,
      `unknown message type ${describeValue(type)}; expected "task", "admin" or "cancel"`,
    );
  }
  if (goodId === undefined) {
    return bad(undefined, kind, `"id" must be a non-empty string of at most ${MAX_ID_LENGTH} characters`);
  }
  if (type === 'cancel') return { ok: true, message: { type, id: goodId } };
  if (type === 'admin') {
    const command = raw.command;
    if (typeof command !== 'string' || !ADMIN_COMMANDS.includes(command as AdminCommand)) {
      return bad(
        goodId,
        kind,
        `unknown admin command ${describeValue(command)}; expected one of ${ADMIN_COMMANDS.join(', ')}`,
      );
    }
    if (raw.args !== undefined && !isPlainObject(raw.args))
      return bad(goodId, kind, '"args" must be an object');
    const message: ClientMessage = { type, id: goodId, command: command as AdminCommand };
    if (raw.args !== undefined) message.args = raw.args as Record<string, unknown>;
    return { ok: true, message };
  }
  if (!('payload' in raw)) return bad(goodId, kind, 'a task needs a "payload"');
  const { timeoutMs, priority } = raw;
  if (
    timeoutMs !== undefined &&
    !(typeof timeoutMs === 'number' && timeoutMs > 0 && timeoutMs <= MAX_TIMEOUT_MS)
  ) {
    return bad(goodId, kind, `"timeoutMs" must be a positive number of at most ${MAX_TIMEOUT_MS} ms`);
  }
  if (priority !== undefined && !(typeof priority === 'number' && Number.isInteger(priority))) {
    return bad(goodId, kind, '"priority" must be an integer');
  }
  const message: ClientMessage = { type, id: goodId, payload: raw.payload };
  if (timeoutMs !== undefined) message.timeoutMs = timeoutMs;
  if (priority !== undefined) message.priority = priority;
  return { ok: true, message };
}
