import type { Logger } from '../logging/logger.js';
import { ErrorCode } from '../protocol/errors.js';
import type { SupervisorMessage } from '../protocol/messages.js';
import type { Supervisor } from '../service/facade.js';
import {
  ClientSession,
  containsBinary,
  forkTaskId,
  idAndKind,
  validateClientMessage,
  type Validated,
} from './session.js';

export type IpcSerialization = 'auto' | 'json' | 'advanced';

/**
 * The Node IPC channel to the process that forked the supervisor. Decodes and validates each message,
 * hands it to the supervisor, and sends exactly one answer per task or admin id. A message that cannot
 * be understood, or is larger than `maxMessageBytes`, gets an E_BAD_REQUEST answer (under its id when
 * it has one), never a crash.
 */
export class ForkChannel {
  private readonly session: ClientSession;
  /** Messages handed to the channel and not written yet, and who waits for none to be left. */
  private writing = 0;
  private readonly flushedWaiters: Array<() => void> = [];
  private readonly onMessage = (raw: unknown): void => this.receive(raw);
  private readonly onDisconnect = (): void => {
    this.log.info('parent disconnected: shutting down');
    void this.supervisor.shutdown();
  };

  constructor(
    private readonly supervisor: Supervisor,
    private readonly log: Logger,
    serialization: IpcSerialization,
  ) {
    this.session = new ClientSession(supervisor, log, {
      // Its ids reach the supervisor (and the history) unchanged, unless one could pass for another client's.
      taskId: forkTaskId,
      // A JSON channel cannot carry typed arrays back; in 'auto' mode we answer in the form we were asked.
      jsonOnly: (message) =>
        serialization === 'json' || (serialization === 'auto' && !containsBinary(message.payload)),
      send: (message) => this.send(message),
    });
    process.on('message', this.onMessage);
    process.on('disconnect', this.onDisconnect);
  }

  static available(): boolean {
    return typeof process.send === 'function';
  }

  ready(): void {
    this.send({ type: 'ready', pid: process.pid, workers: this.supervisor.workers });
  }

  close(): void {
    process.off('message', this.onMessage);
    process.off('disconnect', this.onDisconnect);
  }

  private receive(raw: unknown): void {
    const limit = this.supervisor.config.maxMessageBytes;
    this.session.handle(exceedsSize(raw, limit) ? oversized(raw, limit) : validateClientMessage(raw));
  }

  /**
   * Resolves once every answer sent has been written to the channel (or the parent is gone, or
   * `timeoutMs` passed): a large answer may still sit in the pipe when the supervisor is about to exit.
   */
  flushed(timeoutMs: number): Promise<void> {
    if (this.writing === 0 || !process.connected) return Promise.resolve();
    return new Promise((resolve) => {
      const timer = setTimeout(done, timeoutMs);
      function done(): void {
        clearTimeout(timer);
        process.off('disconnect', done);
        resolve();
      }
      this.flushedWaiters.push(done);
      process.once('disconnect', done);
    });
  }

  private send(message: SupervisorMessage): void {
    if (!process.connected || !process.send) return;
    this.writing++;
    // With a callback a failed write (EPIPE: the parent died, its disconnect not seen yet) is reported
    // here instead of as an 'error' event nobody listens to, which would end the process.
    process.send(message, (error: Error | null) => {
      if (error) this.log.debug({ err: error }, 'answer not written: the parent is gone');
      if (--this.writing === 0) for (const done of this.flushedWaiters.splice(0)) done();
    });
  }
}

/** Too large to handle: answered E_BAD_REQUEST under its id when it has a usable one. */
function oversized(raw: unknown, limit: number): Validated {
  return {
    ok: false,
    ...idAndKind(raw),
    code: ErrorCode.BAD_REQUEST,
    message: `message exceeds maxMessageBytes (${limit} bytes)`,
  };
}

/**
 * A cheap upper-bound-ish estimate of a decoded message's size, for `maxMessageBytes` on the fork channel
 * (Node has already parsed the message, so the wire length is gone). Binary data counts its byte length,
 * strings their length, other scalars 8 bytes (a double in V8 serialization), keys their length. The walk
 * stops as soon as the total passes `limit`, so a huge message costs no more than reaching the limit.
 */
function exceedsSize(value: unknown, limit: number): boolean {
  let total = 0;
  const stack: unknown[] = [value];
  // Advanced serialization carries shared and circular references: each object is counted once.
  const seen = new Set<object>();
  while (stack.length > 0) {
    const item = stack.pop();
    if (typeof item === 'string') total += item.length;
    else if (typeof item !== 'object' || item === null) total += 8;
    else if (seen.has(item)) total += 8;
    else {
      seen.add(item);
      if (item instanceof ArrayBuffer) total += item.byteLength;
      else if (ArrayBuffer.isView(item)) total += item.byteLength;
      else if (Array.isArray(item)) {
        total += 2 + item.length;
        for (const element of item as unknown[]) stack.push(element);
      } else if (item instanceof Map) {
        for (const [key, element] of item) stack.push(key, element);
      } else if (item instanceof Set) {
        for (const element of item) stack.push(element);
      } else {
        // An Error's message and stack are own properties, but not enumerable ones.
        if (item instanceof Error) stack.push(item.message, item.stack);
        for (const [key, element] of Object.entries(item)) {
          total += key.length + 2;
          stack.push(element);
        }
      }
    }
    if (total > limit) return true;
  }
  return false;
}
