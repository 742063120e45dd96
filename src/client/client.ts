import { fork, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { ErrorCode, SupervisorError } from '../protocol/errors.js';
import type { AdminCommand, ClientMessage, SupervisorMessage } from '../protocol/messages.js';
import type { SupervisorStats } from '../supervisor/supervisor.js';

const SUPERVISOR_ENTRY = fileURLToPath(new URL('../supervisor.js', import.meta.url));

export interface ForkOptions {
  /** Extra command-line flags for the supervisor, e.g. ['--recycle-every', '50']. */
  args?: string[];
  /** Config file (--config). */
  config?: string;
  workers?: number;
  recycleEvery?: number;
  /** Custom worker module (--worker). */
  worker?: string;
  logLevel?: string;
  env?: NodeJS.ProcessEnv;
  /** Where the supervisor's stdout/stderr (its JSON logs) go; default: inherited. */
  stdio?: 'inherit' | 'ignore' | 'pipe';
  /** How long to wait for the 'ready' message (default 60 s). */
  readyTimeoutMs?: number;
}

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

type Pending = { resolve: (message: SupervisorMessage) => void };

/**
 * A typed client for a supervisor running as a child process: forks it with V8 ('advanced')
 * serialization, so tensors travel as TypedArrays, and turns the message contract into promises.
 */
export class SupervisorClient {
  readonly pid: number;
  readonly workers: number;
  private readonly pending = new Map<string, Pending>();
  private nextId = 0;
  private exited = false;

  private constructor(
    private readonly child: ChildProcess,
    ready: { pid: number; workers: number },
  ) {
    this.pid = ready.pid;
    this.workers = ready.workers;
    child.on('message', (message: SupervisorMessage) => {
      if (message.type !== 'result' && message.type !== 'admin-result') return;
      const pending = this.pending.get(message.id);
      if (!pending) return;
      this.pending.delete(message.id);
      pending.resolve(message);
    });
    child.once('exit', (code, signal) => {
      this.exited = true;
      const error = {
        code: ErrorCode.SHUTTING_DOWN,
        message: `supervisor exited (code ${code}, signal ${signal})`,
      };
      for (const [id, pending] of this.pending) pending.resolve({ type: 'result', id, ok: false, error });
      this.pending.clear();
    });
  }

  static async fork(options: ForkOptions = {}): Promise<SupervisorClient> {
    const args = [...(options.args ?? [])];
    if (options.config) args.push('--config', options.config);
    if (options.workers !== undefined) args.push('--workers', String(options.workers));
    if (options.recycleEvery !== undefined) args.push('--recycle-every', String(options.recycleEvery));
    if (options.worker) args.push('--worker', options.worker);
    if (options.logLevel) args.push('--log-level', options.logLevel);
    const child = fork(SUPERVISOR_ENTRY, args, {
      serialization: 'advanced',
      env: { ...process.env, ...options.env, GPU_SUPERVISOR_IPC_SERIALIZATION: 'advanced' },
      stdio:
        options.stdio === 'pipe'
          ? ['ignore', 'pipe', 'pipe', 'ipc']
          : options.stdio === 'ignore'
            ? ['ignore', 'ignore', 'ignore', 'ipc']
            : ['ignore', 'inherit', 'inherit', 'ipc'],
    });
    const ready = await new Promise<{ pid: number; workers: number }>((resolve, reject) => {
      const timer = setTimeout(() => {
        child.kill('SIGKILL');
        reject(new SupervisorError(ErrorCode.WORKERS_UNAVAILABLE, 'supervisor did not become ready in time'));
      }, options.readyTimeoutMs ?? 60_000);
      const onMessage = (message: SupervisorMessage): void => {
        if (message.type === 'ready') {
          finish();
          resolve({ pid: message.pid, workers: message.workers });
        } else if (message.type === 'error') {
          finish();
          reject(SupervisorError.fromShape(message.error));
        }
      };
      const onExit = (code: number | null): void => {
        finish();
        reject(
          new SupervisorError(
            ErrorCode.WORKERS_UNAVAILABLE,
            `supervisor exited before it was ready (code ${code})`,
          ),
        );
      };
      const finish = (): void => {
        clearTimeout(timer);
        child.off('message', onMessage);
        child.off('exit', onExit);
      };
      child.on('message', onMessage);
      child.once('exit', onExit);
    });
    return new SupervisorClient(child, ready);
  }

  /** The supervisor's stdout (its JSON log lines) when forked with stdio 'pipe'. */
  get stdout(): NodeJS.ReadableStream | null {
    return this.child.stdout;
  }

  /** Runs a task; resolves with its value, rejects with a SupervisorError carrying the code. */
  async run(payload: unknown, options: ClientRunOptions = {}): Promise<unknown> {
    return (await this.runDetailed(payload, options)).value;
  }

  /** Like run, with the worker pid and time it took. */
  async runDetailed(payload: unknown, options: ClientRunOptions = {}): Promise<TaskAnswer> {
    const id = `c${this.pid}-${++this.nextId}`;
    const message: ClientMessage = { type: 'task', id, payload };
    if (options.timeoutMs !== undefined) message.timeoutMs = options.timeoutMs;
    if (options.priority !== undefined) message.priority = options.priority;
    const { signal } = options;
    const onAbort = (): void => this.post({ type: 'cancel', id });
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
    const id = `a${this.pid}-${++this.nextId}`;
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

  /** Asks the supervisor to drain and stop; resolves when its process has exited. */
  async close(): Promise<void> {
    if (this.exited) return;
    const exited = new Promise<void>((resolve) => this.child.once('exit', () => resolve()));
    await this.admin('shutdown').catch(() => undefined);
    await exited;
  }

  private request(id: string, message: ClientMessage): Promise<SupervisorMessage> {
    if (this.exited)
      return Promise.reject(new SupervisorError(ErrorCode.SHUTTING_DOWN, 'supervisor has exited'));
    return new Promise((resolve) => {
      this.pending.set(id, { resolve });
      this.post(message);
    });
  }

  private post(message: ClientMessage): void {
    if (this.child.connected) this.child.send(message);
  }
}
