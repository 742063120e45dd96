import { ErrorCode, SupervisorError } from '../protocol/errors.js';
import type { AdminCommand, ClearCacheArgs, ClientMessage, SupervisorMessage } from '../protocol/messages.js';
import type { AdminCleanup } from '../service/admin-cleanup.js';
import type { SupervisorStats } from '../service/facade.js';
import { QueueClient, type QueueClientOptions } from '../queue/queue-client.js';
import type { Connection } from './connection.js';
import { ForkConnection, type ForkOptions } from './fork-connection.js';
import { SocketConnection, type ConnectOptions } from './socket-connection.js';

export type { ForkOptions } from './fork-connection.js';
export type { ConnectOptions } from './socket-connection.js';

export interface ClientRunOptions {
  timeoutMs?: number;
  priority?: number;
  signal?: AbortSignal;
}

export interface TaskAnswer {
  value: unknown;
  workerPid: number;
  ms: number;
}

/** clear-cache's answer: the admin cleanup figures, plus the model and mode when one was named. */
export type ClearCacheAnswer = AdminCleanup & { model?: string; mode?: 'recycle' | 'light' };

type Pending = (message: SupervisorMessage) => void;

/**
 * A typed client for a supervisor: turns the message contract into promises, whatever carries it.
 * `fork` starts a private supervisor as a child process (V8 serialization); `connect` reaches a running
 * one through its local socket (binary frames). Either way tensors travel as TypedArrays.
 */
export class SupervisorClient {
  readonly pid: number;
  readonly workers: number;
  private readonly pending = new Map<string, Pending>();
  private nextId = 0;

  private constructor(private readonly connection: Connection) {
    this.pid = connection.pid;
    this.workers = connection.workers;
    connection.onMessage((message) => {
      if (message.type !== 'result' && message.type !== 'admin-result') return;
      const pending = this.pending.get(message.id);
      if (!pending) return;
      this.pending.delete(message.id);
      pending(message);
    });
    connection.onClose((error) => {
      for (const [id, pending] of this.pending) pending({ type: 'result', id, ok: false, error });
      this.pending.clear();
    });
  }

  /** Forks a supervisor of its own; `close()` shuts it down. */
  static async fork(options: ForkOptions = {}): Promise<SupervisorClient> {
    return new SupervisorClient(await ForkConnection.open(options));
  }

  /**
   * Connects to a running supervisor's local socket (default: the 'auto' path). Rejects with
   * E_NOT_RUNNING when nothing listens there, E_UNAUTHORIZED for a wrong token. `close()` only hangs up.
   */
  static async connect(socketPath?: string, options: ConnectOptions = {}): Promise<SupervisorClient> {
    return new SupervisorClient(await SocketConnection.open(socketPath, options));
  }

  /**
   * A producer on a BullMQ queue that supervisors on many hosts consume: the same `run(payload, options)`
   * (see docs/scale-out.md).
   */
  static queue(options: QueueClientOptions): Promise<QueueClient> {
    return QueueClient.connect(options);
  }

  /** The supervisor's stdout (its JSON log lines) when forked with stdio 'pipe'. */
  get stdout(): NodeJS.ReadableStream | null {
    return this.connection.stdout;
  }

  /** Runs a task; resolves with its value, rejects with a SupervisorError carrying the code. */
  async run(payload: unknown, options: ClientRunOptions = {}): Promise<unknown> {
    return (await this.runDetailed(payload, options)).value;
  }

  /** Like run, with the worker pid and time it took. */
  async runDetailed(payload: unknown, options: ClientRunOptions = {}): Promise<TaskAnswer> {
    const { signal } = options;
    if (signal?.aborted) throw new SupervisorError(ErrorCode.CANCELLED, 'cancelled before it was sent');
    const id = `${this.connection.idPrefix}${++this.nextId}`;
    const message: ClientMessage = { type: 'task', id, payload };
    if (options.timeoutMs !== undefined) message.timeoutMs = options.timeoutMs;
    if (options.priority !== undefined) message.priority = options.priority;
    const onAbort = (): void => this.connection.post({ type: 'cancel', id });
    signal?.addEventListener('abort', onAbort, { once: true });
    try {
      const answer = await this.request(id, message);
      if (answer.type !== 'result') throw new SupervisorError(ErrorCode.TASK_FAILED, 'unexpected answer');
      if (!answer.ok) throw SupervisorError.fromShape(answer.error);
      return { value: answer.value, workerPid: answer.workerPid, ms: answer.ms };
    } finally {
      signal?.removeEventListener('abort', onAbort);
    }
  }

  async admin(command: AdminCommand, args?: Record<string, unknown>): Promise<unknown> {
    const id = `a${this.connection.idPrefix}${++this.nextId}`;
    const message: ClientMessage = { type: 'admin', id, command };
    if (args) message.args = args;
    const answer = await this.request(id, message);
    if (answer.type === 'result' && !answer.ok) throw SupervisorError.fromShape(answer.error);
    if (answer.type !== 'admin-result') throw new SupervisorError(ErrorCode.TASK_FAILED, 'unexpected answer');
    if (!answer.ok) throw SupervisorError.fromShape(answer.error);
    return answer.value;
  }

  stats(): Promise<SupervisorStats> {
    return this.admin('stats') as Promise<SupervisorStats>;
  }

  /** `clear-cache`, typed: what was recycled (or released in place) and freed (see ClearCacheArgs). */
  clearCache(args: ClearCacheArgs = {}): Promise<ClearCacheAnswer> {
    return this.admin('clear-cache', { ...args }) as Promise<ClearCacheAnswer>;
  }

  /**
   * A forked client asks its supervisor to drain and stop, and resolves when the process has exited.
   * A connected client hangs up: the supervisor keeps serving others (use admin('shutdown') to stop it).
   */
  close(): Promise<void> {
    return this.connection.close({ shutdown: () => this.admin('shutdown') });
  }

  private request(id: string, message: ClientMessage): Promise<SupervisorMessage> {
    if (this.connection.closed)
      return Promise.reject(new SupervisorError(ErrorCode.SHUTTING_DOWN, 'supervisor connection is closed'));
    return new Promise((resolve, reject) => {
      this.pending.set(id, resolve);
      try {
        this.connection.post(message);
      } catch (error) {
        this.pending.delete(id);
        reject(error as Error);
      }
    });
  }
}
