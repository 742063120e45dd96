import type { Logger } from '../logging/logger.js';
import { ErrorCode, SupervisorError, type ErrorShape } from '../protocol/errors.js';
import { containsBinary, toJsonSafe } from '../protocol/json-safe.js';
import type { AdminMessage, SupervisorMessage, TaskMessage } from '../protocol/messages.js';
import { validateClientMessage } from '../protocol/validate.js';
import type { Supervisor } from '../supervisor/supervisor.js';
import type { TaskOutcome } from '../supervisor/task.js';

export type IpcSerialization = 'auto' | 'json' | 'advanced';

/**
 * The Node IPC channel to the process that forked the supervisor. Decodes and validates each message,
 * hands it to the supervisor, and sends exactly one answer per task or admin id. A message that cannot
 * be understood gets an E_BAD_REQUEST answer (under its id when it has one), never a crash.
 */
export class ForkChannel {
  private readonly onMessage = (raw: unknown): void => this.receive(raw);
  private readonly onDisconnect = (): void => {
    this.log.info('parent disconnected: shutting down');
    void this.supervisor.shutdown();
  };

  constructor(
    private readonly supervisor: Supervisor,
    private readonly log: Logger,
    private readonly serialization: IpcSerialization,
  ) {
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
    const validated = validateClientMessage(raw);
    if (!validated.ok) {
      const error: ErrorShape = { code: validated.code, message: validated.message };
      this.log.warn({ id: validated.id, kind: validated.kind, error }, 'bad message');
      if (validated.id !== undefined && validated.kind === 'task') {
        this.send({ type: 'result', id: validated.id, ok: false, error });
      } else if (validated.id !== undefined && validated.kind === 'admin') {
        this.send({ type: 'admin-result', id: validated.id, ok: false, error });
      } else {
        this.send({ type: 'error', error });
      }
      return;
    }
    const message = validated.message;
    if (message.type === 'task') this.task(message);
    else if (message.type === 'admin') this.admin(message);
    else this.supervisor.cancel(message.id);
  }

  private task(message: TaskMessage): void {
    const options: { timeoutMs?: number; priority?: number } = {};
    if (message.timeoutMs !== undefined) options.timeoutMs = message.timeoutMs;
    if (message.priority !== undefined) options.priority = message.priority;
    // A JSON channel cannot carry typed arrays back; in 'auto' mode we answer in the form we were asked.
    const jsonOnly =
      this.serialization === 'json' || (this.serialization === 'auto' && !containsBinary(message.payload));
    void this.supervisor.submit(message.id, message.payload, options).then((outcome) => {
      this.send(resultMessage(message.id, outcome, jsonOnly), message.id);
    });
  }

  private admin(message: AdminMessage): void {
    this.supervisor.admin(message.command, message.args).then(
      (value) => this.send({ type: 'admin-result', id: message.id, ok: true, value: toJsonSafe(value) }),
      (error: unknown) => {
        const shape =
          error instanceof SupervisorError
            ? error.toJSON()
            : { code: ErrorCode.TASK_FAILED, message: String(error) };
        this.send({ type: 'admin-result', id: message.id, ok: false, error: shape });
      },
    );
  }

  /** Sends a message; if a result cannot be serialized, its id still gets one (error) answer. */
  private send(message: SupervisorMessage, taskId?: string): void {
    if (!process.connected || !process.send) return;
    try {
      process.send(message);
    } catch (error) {
      this.log.error({ err: error, id: taskId }, 'cannot send message to parent');
      if (taskId !== undefined) {
        const shape = {
          code: ErrorCode.TASK_FAILED,
          message: `result cannot be serialized: ${(error as Error).message}`,
        };
        process.send({ type: 'result', id: taskId, ok: false, error: shape });
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
