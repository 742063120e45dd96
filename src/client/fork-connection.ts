import { fork, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { ErrorCode, SupervisorError, type ErrorShape } from '../protocol/errors.js';
import type { ClientMessage, SupervisorMessage } from '../protocol/messages.js';
import type { Connection } from './connection.js';

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

/** A supervisor this process forked, spoken to over the Node IPC channel with V8 serialization. */
export class ForkConnection implements Connection {
  readonly idPrefix: string;
  private exited = false;
  private readonly exit: Promise<void>;

  private constructor(
    private readonly child: ChildProcess,
    readonly pid: number,
    readonly workers: number,
  ) {
    this.idPrefix = `c${pid}-`;
    this.exit = new Promise((resolve) =>
      child.once('exit', () => {
        this.exited = true;
        resolve();
      }),
    );
  }

  static async open(options: ForkOptions = {}): Promise<ForkConnection> {
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
    return new ForkConnection(child, ready.pid, ready.workers);
  }

  get closed(): boolean {
    return this.exited;
  }

  get stdout(): NodeJS.ReadableStream | null {
    return this.child.stdout;
  }

  post(message: ClientMessage): void {
    if (!this.child.connected) return;
    try {
      // A write that fails later (EPIPE: the supervisor died, its exit not seen yet) comes to this
      // callback rather than as an 'error' event that would end the caller's process; the exit
      // listener answers what was in flight.
      this.child.send(message, (error: Error | null) => void error);
    } catch (error) {
      throw new SupervisorError(ErrorCode.BAD_REQUEST, `cannot send: ${(error as Error).message}`);
    }
  }

  onMessage(handler: (message: SupervisorMessage) => void): void {
    this.child.on('message', handler);
  }

  onClose(handler: (error: ErrorShape) => void): void {
    this.child.once('exit', (code, signal) =>
      handler({
        code: ErrorCode.SHUTTING_DOWN,
        message: `supervisor exited (code ${code}, signal ${signal})`,
      }),
    );
  }

  /** Asks the supervisor it started to drain and stop; resolves when its process has exited. */
  async close(client: { shutdown(): Promise<unknown> }): Promise<void> {
    if (this.exited) return;
    await client.shutdown().catch(() => undefined);
    await this.exit;
  }
}
