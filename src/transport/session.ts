import type { Logger } from '../logging/logger.js';
import { ErrorCode, SupervisorError, type ErrorShape } from '../protocol/errors.js';
import { toJsonSafe } from '../protocol/json-safe.js';
import type { AdminMessage, ClientMessage, SupervisorMessage, TaskMessage } from '../protocol/messages.js';
import type { Validated } from '../protocol/validate.js';
import type { Supervisor } from '../service/facade.js';
import type { TaskOutcome } from '../service/task.js';

export interface SessionOptions {
  /** Prepended to task ids handed to the supervisor: clients on different connections may reuse ids. */
  idPrefix: string;
  /** Whether this task's value must be JSON-safe (a JSON IPC channel cannot carry typed arrays). */
  jsonOnly: (message: TaskMessage) => boolean;
  /** Refuses a message (returns the error) before it is carried out; e.g. a missing token. */
  authorize?: (message: ClientMessage) => ErrorShape | undefined;
  /** Sends one message to the client; may throw when the message cannot be serialized. */
  send: (message: SupervisorMessage) => void;
}

/**
 * One client's conversation with the supervisor, whatever carries it (fork channel, socket connection):
 * validated messages in, exactly one answer out per task or admin id. Tracks its in-flight tasks so a
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
    else this.supervisor.cancel(this.options.idPrefix + message.id);
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
    const internalId = this.options.idPrefix + message.id;
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
