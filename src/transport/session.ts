import type { Logger } from '../logging/logger.js';
import { ErrorCode, SupervisorError, describeValue, type ErrorShape } from '../protocol/errors.js';
import {
  ADMIN_COMMANDS,
  type AdminCommand,
  type AdminMessage,
  type ClientMessage,
  type SupervisorMessage,
  type TaskMessage,
} from '../protocol/messages.js';
import { MAX_TIMER_MS } from '../config/schema.js';
import type { Supervisor, TaskOutcome } from '../service/facade.js';

export interface SessionOptions {
  /** The id a task of this client's is held under (forkTaskId, socketTaskId): clients may reuse each other's ids. */
  taskId: (id: string) => string;
  /** Whether this task's value must be JSON-safe (a JSON IPC channel cannot carry typed arrays). */
  jsonOnly: (message: TaskMessage) => boolean;
  /** Refuses a message (returns the error) before it is carried out; e.g. a missing token. */
  authorize?: (message: ClientMessage) => ErrorShape | undefined;
  /** Sends one message to the client; may throw when the message cannot be serialized. */
  send: (message: SupervisorMessage) => void;
}

/**
 * One client's conversation with the supervisor, whatever carries it (fork channel, socket connection):
 * messages validated on the way in (`validateClientMessage`), exactly one answer out per task or admin
 * id, its value made fit for the client's channel (`toJsonSafe`). Tracks its in-flight tasks so a
 * client that goes away can have them cancelled.
 */
export class ClientSession {
  private readonly inflight = new Set<string>();

  constructor(
    private readonly supervisor: Supervisor,
    private readonly log: Logger,
    private readonly options: SessionOptions,
  ) {}

  get inflightTasks(): number {
    return this.inflight.size;
  }

  handle(validated: Validated): void {
    if (!validated.ok) {
      const error: ErrorShape = { code: validated.code, message: validated.message };
      this.log.warn({ id: validated.id, kind: validated.kind, error }, 'bad message');
      this.refuse(validated.id, validated.kind, error);
      return;
    }
    const message = validated.message;
    const refusal = this.options.authorize?.(message);
    if (refusal) {
      this.refuse(message.id, message.type, refusal);
      return;
    }
    if (message.type === 'task') this.task(message);
    else if (message.type === 'admin') this.admin(message);
    else this.supervisor.cancel(this.options.taskId(message.id));
  }

  /** Answers under the id when the message had one we can answer (task or admin), else a bare error. */
  refuse(id: string | undefined, kind: string | undefined, error: ErrorShape): void {
    if (id !== undefined && kind === 'task') this.deliver({ type: 'result', id, ok: false, error });
    else if (id !== undefined && kind === 'admin')
      this.deliver({ type: 'admin-result', id, ok: false, error });
    else this.deliver({ type: 'error', error });
  }

  /** The client is gone: its queued and running tasks would only waste worker time. */
  cancelAll(): number {
    const ids = [...this.inflight];
    for (const id of ids) this.supervisor.cancel(id);
    return ids.length;
  }

  private task(message: TaskMessage): void {
    const options: { timeoutMs?: number; priority?: number } = {};
    if (message.timeoutMs !== undefined) options.timeoutMs = message.timeoutMs;
    if (message.priority !== undefined) options.priority = message.priority;
    const jsonOnly = this.options.jsonOnly(message);
    const internalId = this.options.taskId(message.id);
    const duplicate = this.inflight.has(internalId);
    if (!duplicate) this.inflight.add(internalId);
    // Answered as the outcome is known (accept, not submit's promise): before the pool's bookkeeping.
    this.supervisor.accept(internalId, message.payload, options, (outcome) => {
      if (!duplicate) this.inflight.delete(internalId);
      this.deliver(resultMessage(message.id, outcome, jsonOnly));
    });
  }

  private admin(message: AdminMessage): void {
    this.supervisor.admin(message.command, message.args).then(
      (value) => this.deliver({ type: 'admin-result', id: message.id, ok: true, value: toJsonSafe(value) }),
      (error: unknown) => {
        const shape =
          error instanceof SupervisorError
            ? error.toJSON()
            : { code: ErrorCode.TASK_FAILED, message: String(error) };
        this.deliver({ type: 'admin-result', id: message.id, ok: false, error: shape });
      },
    );
  }

  /** Sends a message; if an answer cannot be serialized, its id still gets one (error) answer. */
  private deliver(message: SupervisorMessage): void {
    try {
      this.options.send(message);
    } catch (error) {
      const id = 'id' in message ? message.id : undefined;
      this.log.error({ err: error, id }, 'cannot send message to client');
      if (message.type !== 'result' && message.type !== 'admin-result') return;
      const shape = {
        code: ErrorCode.TASK_FAILED,
        message: `result cannot be serialized: ${(error as Error).message}`,
      };
      try {
        this.options.send({ type: message.type, id: message.id, ok: false, error: shape });
      } catch (again) {
        this.log.error({ err: again, id }, 'cannot send error answer to client');
      }
    }
  }
}

function resultMessage(id: string, outcome: TaskOutcome, jsonOnly: boolean): SupervisorMessage {
  const attempts = outcome.attempts === undefined ? {} : { attempts: outcome.attempts };
  if (!outcome.ok) return { type: 'result', id, ok: false, error: outcome.error, ...attempts };
  const value = jsonOnly ? toJsonSafe(outcome.value) : outcome.value;
  return { type: 'result', id, ok: true, value, workerPid: outcome.workerPid, ms: outcome.ms, ...attempts };
}

// ---- what comes in: client messages, validated -----------------------------------------------

/**
 * Validation of messages arriving from clients. Hand-written rather than a schema library because it
 * runs once per task on the hot path and the shapes are small. Never throws: returns what is wrong.
 */
export type Validated =
  | { ok: true; message: ClientMessage }
  | { ok: false; id: string | undefined; kind: string | undefined; code: ErrorCode; message: string };

const MAX_ID_LENGTH = 256;

function isPlainObject(value: unknown): value is Record<string, unknown> {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return false;
  const proto = Object.getPrototypeOf(value) as unknown;
  return proto === Object.prototype || proto === null;
}

function bad(id: string | undefined, kind: string | undefined, message: string): Validated {
  return { ok: false, id, kind, code: ErrorCode.BAD_REQUEST, message };
}

/** How much of an unknown message type is kept (logged, echoed). */
const MAX_KIND_LENGTH = 64;

/**
 * A message's id, when it is one an answer can go under, and its type as kept for the answer and the
 * log line (an unknown type may be megabytes long): for a message refused whole too (oversized).
 */
export function idAndKind(raw: unknown): { id: string | undefined; kind: string | undefined } {
  const { id, type } = (typeof raw === 'object' && raw !== null ? raw : {}) as Record<string, unknown>;
  return {
    id: typeof id === 'string' && id.length > 0 && id.length <= MAX_ID_LENGTH ? id : undefined,
    kind: typeof type === 'string' ? type.slice(0, MAX_KIND_LENGTH) : undefined,
  };
}

export function validateClientMessage(raw: unknown): Validated {
  if (!isPlainObject(raw)) return bad(undefined, undefined, 'message must be an object');
  const type = raw.type;
  const { id: goodId, kind } = idAndKind(raw);
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
    !(typeof timeoutMs === 'number' && timeoutMs > 0 && timeoutMs <= MAX_TIMER_MS)
  ) {
    return bad(goodId, kind, `"timeoutMs" must be a positive number of at most ${MAX_TIMER_MS} ms`);
  }
  if (priority !== undefined && !(typeof priority === 'number' && Number.isInteger(priority))) {
    return bad(goodId, kind, '"priority" must be an integer');
  }
  const message: ClientMessage = { type, id: goodId, payload: raw.payload };
  if (timeoutMs !== undefined) message.timeoutMs = timeoutMs;
  if (priority !== undefined) message.priority = priority;
  return { ok: true, message };
}

// ---- what goes out: values a JSON channel can carry ----------------------------------------------

/**
 * A client that forked the supervisor with `serialization: 'json'` cannot receive TypedArrays or BigInts
 * (JSON turns a Float32Array into {"0":..} and throws on BigInt). Values bound for such a client are
 * rewritten: typed arrays become number arrays, bigints become numbers.
 *
 * A worker's value arrives through V8 serialization, which carries cycles and any depth. Those parts are
 * returned as they are rather than followed (recursing would overflow the stack and take the supervisor
 * down): the JSON channel then refuses the value and the task is answered with an error instead.
 */
const MAX_DEPTH = 1000;

export function toJsonSafe(value: unknown): unknown {
  return rewrite(value, new Set(), 0);
}

function rewrite(value: unknown, path: Set<object>, depth: number): unknown {
  if (typeof value === 'bigint') return Number(value);
  if (typeof value !== 'object' || value === null) return value;
  if (value instanceof ArrayBuffer) return Array.from(new Uint8Array(value));
  if (ArrayBuffer.isView(value)) {
    if (value instanceof DataView)
      return Array.from(new Uint8Array(value.buffer, value.byteOffset, value.byteLength));
    const out: number[] = [];
    for (const item of value as unknown as Iterable<number | bigint>) out.push(Number(item));
    return out;
  }
  if (value instanceof Map || value instanceof Set || value instanceof Date) return value;
  if (path.has(value) || depth >= MAX_DEPTH) return value;
  path.add(value);
  try {
    if (Array.isArray(value)) return value.map((item: unknown) => rewrite(item, path, depth + 1));
    const out: Record<string, unknown> = {};
    for (const [key, item] of Object.entries(value)) {
      // A plain assignment to "__proto__" would set the copy's prototype and drop the field.
      Object.defineProperty(out, key, {
        value: rewrite(item, path, depth + 1),
        enumerable: true,
        writable: true,
        configurable: true,
      });
    }
    return out;
  } finally {
    path.delete(value);
  }
}

/** True when a value holds binary data anywhere: the sender's channel carries V8-serialized values. */
export function containsBinary(value: unknown, depth = 0): boolean {
  if (typeof value !== 'object' || value === null || depth > 8) return false;
  if (ArrayBuffer.isView(value) || value instanceof ArrayBuffer) return true;
  const items = Array.isArray(value) ? value : Object.values(value);
  return items.some((item) => containsBinary(item, depth + 1));
}

// ---- whose ids: how each client's task ids are held -------------------------------------------

/**
 * The supervisor holds every client's tasks in flight under one id each, so clients must not share
 * ids. A socket connection's ids are held as `s<connection>:<id>` and the BullMQ consumer's as
 * `bullmq:<job>:<attempt>`. The fork parent's go in as it sent them, so logs and the history show
 * them unchanged, except one that could pass for another client's (it starts with `s<digits>:` or
 * `bullmq:`), which is held as `f:<id>`; so is one that starts with `f:`, which keeps the mapping
 * one-to-one. A fork parent can then neither take an id another client holds nor cancel its task.
 */
export const BULLMQ_ID_PREFIX = 'bullmq:';
const SOCKET_ID_PREFIX = 's';
const FORK_ESCAPE = 'f:';
const SCOPED = new RegExp(`^(?:${SOCKET_ID_PREFIX}\\d+:|${BULLMQ_ID_PREFIX}|${FORK_ESCAPE})`);

export function forkTaskId(id: string): string {
  return SCOPED.test(id) ? `${FORK_ESCAPE}${id}` : id;
}

export function socketTaskId(connection: number, id: string): string {
  return `${SOCKET_ID_PREFIX}${connection}:${id}`;
}

/** A BullMQ job's attempt (`seq` tells apart two runs of one attempt held at once). */
export function bullmqTaskId(job: string | undefined, attempt: number, seq?: number): string {
  return `${BULLMQ_ID_PREFIX}${job}:${attempt}${seq === undefined ? '' : `.${seq}`}`;
}
