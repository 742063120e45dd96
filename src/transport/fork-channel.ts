import type { Logger } from '../logging/logger.js';
import { ErrorCode } from '../protocol/errors.js';
import { containsBinary } from '../protocol/json-safe.js';
import type { SupervisorMessage } from '../protocol/messages.js';
import { validateClientMessage, type Validated } from '../protocol/validate.js';
import type { Supervisor } from '../service/facade.js';
import { ClientSession } from './session.js';

export type IpcSerialization = 'auto' | 'json' | 'advanced';

/**
 * The Node IPC channel to the process that forked the supervisor. Decodes and validates each message,
 * hands it to the supervisor, and sends exactly one answer per task or admin id. A message that cannot
 * be understood, or is larger than `maxMessageBytes`, gets an E_BAD_REQUEST answer (under its id when
 * it has one), never a crash.
 */
export class ForkChannel {
  private readonly session: ClientSession;
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
      // The parent owns this channel alone: its ids reach the supervisor (and the history) unchanged.
      idPrefix: '',
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

  private send(message: SupervisorMessage): void {
    if (!process.connected || !process.send) return;
    process.send(message);
  }
}

/** Too large to handle: answered E_BAD_REQUEST under its id when it has a usable one. */
function oversized(raw: unknown, limit: number): Validated {
  const { id, type } = (typeof raw === 'object' && raw !== null ? raw : {}) as Record<string, unknown>;
  return {
    ok: false,
    id: typeof id === 'string' && id.length > 0 && id.length <= 256 ? id : undefined,
    kind: typeof type === 'string' ? type : undefined,
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
  while (stack.length > 0) {
    const item = stack.pop();
    if (typeof item === 'string') total += item.length;
    else if (typeof item !== 'object' || item === null) total += 8;
    else if (item instanceof ArrayBuffer) total += item.byteLength;
    else if (ArrayBuffer.isView(item)) total += item.byteLength;
    else if (Array.isArray(item)) {
      total += 2 + item.length;
      for (const element of item as unknown[]) stack.push(element);
    } else {
      for (const [key, element] of Object.entries(item)) {
        total += key.length + 2;
        stack.push(element);
      }
    }
    if (total > limit) return true;
  }
  return false;
}
