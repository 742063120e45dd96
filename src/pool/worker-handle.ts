import { fork, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { ErrorCode, type ErrorShape } from '../protocol/errors.js';
import type { RecycleReason } from '../policy/recycle-policy.js';
import { LeakEstimator } from '../policy/leak-estimator.js';
import type { WorkerConfig } from '../worker/types.js';
import { assertTransition, type WorkerState } from './worker-state.js';
import type { FromWorker, ToWorker } from './worker-protocol.js';

const RUNTIME_PATH = fileURLToPath(new URL('../worker/runtime.js', import.meta.url));

export interface WorkerSpawnOptions {
  slot: number;
  modulePath: string;
  config: WorkerConfig;
  execArgv: readonly string[];
  logLevel: string;
  startTimeoutMs: number;
  /** The GPU this worker is pinned to (CUDA_VISIBLE_DEVICES), if any. */
  gpuIndex?: number | undefined;
  onTransition?: (handle: WorkerHandle, from: WorkerState, to: WorkerState) => void;
}

export type WorkerOutcome =
  | { ok: true; value: unknown; ms: number }
  /** `unsent`: the payload never reached the worker (it could not be serialized); the worker is idle. */
  | { ok: false; error: ErrorShape; unsent?: true };

/** Why the parent ended a worker itself; decides the error its running task gets and the recycle reason. */
export interface KillCause {
  reason: RecycleReason;
  error: ErrorShape;
}

export interface WorkerExit {
  code: number | null;
  signal: NodeJS.Signals | null;
  cause: KillCause | undefined;
}

/**
 * The parent's view of one worker process: its state, its one running task, and the only code that
 * signals it. Each handle signals only its own ChildProcess, so a late SIGKILL meant for a retired
 * worker can never hit the replacement that took its slot.
 */
export class WorkerHandle {
  readonly slot: number;
  readonly pid: number;
  readonly startedAt = Date.now();
  readonly gpuIndex: number | undefined;
  readonly exited: Promise<WorkerExit>;
  tasksDone = 0;
  /** This worker's own recycle-every-N (with its jitter draw), fixed at spawn. */
  recycleAfterTasks = 0;
  /** RSS after each cleanup, for the leak-rate estimate. */
  readonly leak = new LeakEstimator();
  /** Tasks sent, and when the latest was sent (ms since epoch): tells which GPU readings a task could affect. */
  runs = 0;
  /** Its sessions were released for idleness since its last task (release once per idle stretch). */
  idleReleased = false;
  /** Sum of this worker's task times (ms), for its average. */
  private busyMs = 0;
  lastRunAt = 0;
  lastRssMiB: number | undefined;
  private currentState: WorkerState = 'starting';
  /** What the worker was doing when it exited: a death mid-task is the task's doing, not a crash loop. */
  stateAtExit: WorkerState | undefined;
  private pending: { taskId: string; started: number; resolve: (outcome: WorkerOutcome) => void } | undefined;
  private pendingCleanup: ((ms: number) => void) | undefined;
  private killCause: KillCause | undefined;
  private readonly child: ChildProcess;
  private readonly onTransition: WorkerSpawnOptions['onTransition'];

  private constructor(child: ChildProcess, options: WorkerSpawnOptions) {
    if (child.pid === undefined) throw new Error('worker process did not start');
    this.child = child;
    this.pid = child.pid;
    this.slot = options.slot;
    this.gpuIndex = options.gpuIndex;
    this.onTransition = options.onTransition;
    this.exited = new Promise((resolve) => {
      child.once('exit', (code, signal) => {
        this.stateAtExit = this.currentState;
        this.setState('exited');
        const exit: WorkerExit = { code, signal, cause: this.killCause };
        this.failPending(exit);
        resolve(exit);
      });
    });
    child.on('message', (message: FromWorker) => this.onMessage(message));
    // An IPC write to a dying child fails asynchronously; the 'exit' handler answers for it.
    child.on('error', () => undefined);
  }

  /** Forks a worker and resolves once its module's setup finished; rejects with the setup error. */
  static async spawn(options: WorkerSpawnOptions): Promise<WorkerHandle> {
    const child = fork(RUNTIME_PATH, [], {
      serialization: 'advanced',
      execArgv: ['--expose-gc', ...options.execArgv],
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
      // One GPU per worker: inside the worker it is device 0, which is what the ORT CUDA provider uses.
      env:
        options.gpuIndex === undefined
          ? process.env
          : { ...process.env, CUDA_VISIBLE_DEVICES: String(options.gpuIndex) },
    });
    if (child.pid === undefined) {
      // fork failed (EMFILE, EAGAIN...): the error arrives as an event; turn it into a rejection.
      const error = await new Promise<Error>((resolve) => child.once('error', resolve));
      throw new Error(`cannot fork a worker: ${error.message}`);
    }
    const handle = new WorkerHandle(child, options);
    const init: ToWorker = {
      kind: 'init',
      modulePath: options.modulePath,
      config: options.config,
      workerId: options.slot,
      logLevel: options.logLevel,
    };
    child.send(init);
    await handle.waitReady(options.startTimeoutMs);
    return handle;
  }

  /** Mean time of this worker's tasks so far (ms), undefined before its first. */
  get averageTaskMs(): number | undefined {
    return this.tasksDone > 0 ? this.busyMs / this.tasksDone : undefined;
  }

  get state(): WorkerState {
    return this.currentState;
  }

  get alive(): boolean {
    return this.currentState !== 'exited' && this.currentState !== 'stopping';
  }

  get runningTaskId(): string | undefined {
    return this.pending?.taskId;
  }

  private setState(next: WorkerState): void {
    const from = this.currentState;
    if (from === next) return;
    assertTransition(from, next);
    this.currentState = next;
    this.onTransition?.(this, from, next);
  }

  private waitReady(timeoutMs: number): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.kill({ reason: 'crash', error: { code: ErrorCode.WORKER_CRASHED, message: 'start timeout' } });
        reject(new Error(`worker ${this.pid} did not become ready within ${timeoutMs} ms`));
      }, timeoutMs);
      const onMessage = (message: FromWorker): void => {
        if (message.kind === 'ready') {
          finish();
          this.setState('ready');
          resolve();
        } else if (message.kind === 'setup-failed') {
          finish();
          reject(new Error(`worker setup failed: ${message.error.message}`));
        }
      };
      const onExit = (code: number | null, signal: NodeJS.Signals | null): void => {
        finish();
        reject(new Error(`worker ${this.pid} exited during start (code ${code}, signal ${signal})`));
      };
      const finish = (): void => {
        clearTimeout(timer);
        this.child.off('message', onMessage);
        this.child.off('exit', onExit);
      };
      this.child.on('message', onMessage);
      this.child.once('exit', onExit);
    });
  }

  private onMessage(message: FromWorker): void {
    if (message.kind === 'result') {
      const pending = this.pending;
      if (!pending || pending.taskId !== message.taskId) return;
      this.pending = undefined;
      this.tasksDone++;
      this.busyMs += performance.now() - pending.started;
      pending.resolve(
        message.ok
          ? { ok: true, value: message.value, ms: performance.now() - pending.started }
          : { ok: false, error: message.error },
      );
    } else if (message.kind === 'cleaned') {
      const done = this.pendingCleanup;
      this.pendingCleanup = undefined;
      done?.(message.ms);
    }
  }

  private failPending(exit: WorkerExit): void {
    const pending = this.pending;
    this.pending = undefined;
    this.pendingCleanup?.(0);
    this.pendingCleanup = undefined;
    if (!pending) return;
    const error: ErrorShape = exit.cause?.error ?? {
      code: ErrorCode.WORKER_CRASHED,
      message: `worker ${this.pid} exited while running task ${pending.taskId} (${describeExit(exit)})`,
    };
    pending.resolve({ ok: false, error });
  }

  /** Marks the worker as handed out for a task, so nothing else (a recycle) can take it meanwhile. */
  reserve(): void {
    this.setState('busy');
  }

  /** Sends one task. The caller must have reserved the worker. */
  run(taskId: string, payload: unknown): Promise<WorkerOutcome> {
    if (this.currentState !== 'busy') {
      return Promise.resolve({
        ok: false,
        error: { code: ErrorCode.WORKER_CRASHED, message: `worker ${this.pid} is ${this.currentState}` },
      });
    }
    this.runs++;
    this.idleReleased = false;
    this.lastRunAt = Date.now();
    return new Promise((resolve) => {
      this.pending = { taskId, started: performance.now(), resolve };
      try {
        this.send({ kind: 'run', taskId, payload });
      } catch (error) {
        // The payload could not be serialized for the worker (e.g. too large): the worker never saw it.
        this.pending = undefined;
        this.setState('ready');
        resolve({
          ok: false,
          unsent: true,
          error: {
            code: ErrorCode.BAD_REQUEST,
            message: `payload cannot be sent to a worker: ${(error as Error).message}`,
          },
        });
      }
    });
  }

  /** Asks the worker to clean up after its task; resolves with the in-worker duration (0 if it died). */
  /**
   * Asks the worker to clean up after its task; resolves with the in-worker duration, 0 if the worker
   * is no longer busy (it died or is being stopped). A cleanup hook that hangs past `timeoutMs` would
   * hold the slot forever, so the worker is killed instead (and replaced by the pool).
   */
  cleanup(force: boolean, timeoutMs: number): Promise<number> {
    if (this.currentState !== 'busy') return Promise.resolve(0);
    this.setState('cleaning');
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.kill({
          reason: 'crash',
          error: { code: ErrorCode.WORKER_CRASHED, message: `cleanup did not finish within ${timeoutMs} ms` },
        });
      }, timeoutMs);
      this.pendingCleanup = (ms) => {
        clearTimeout(timer);
        resolve(ms);
      };
      this.send({ kind: 'cleanup', force });
    });
  }

  /** Back to idle after a task (and its cleanup). */
  release(): void {
    this.setState('ready');
  }

  /** Ends the worker now (SIGKILL): ORT's run blocks the worker's event loop, so nothing softer works. */
  kill(cause: KillCause): void {
    this.killCause ??= cause;
    if (this.currentState !== 'exited') {
      if (this.currentState !== 'stopping') this.setState('stopping');
      this.signal('SIGKILL');
    }
  }

  /** Graceful stop: a stop message and SIGTERM, then SIGKILL after `killTimeoutMs`. */
  async stop(cause: KillCause, killTimeoutMs: number): Promise<WorkerExit> {
    this.killCause ??= cause;
    if (this.currentState === 'exited') return this.exited;
    if (this.currentState !== 'stopping') this.setState('stopping');
    this.send({ kind: 'stop' });
    this.signal('SIGTERM');
    const timer = setTimeout(() => this.signal('SIGKILL'), killTimeoutMs);
    const exit = await this.exited;
    clearTimeout(timer);
    return exit;
  }

  private send(message: ToWorker): void {
    if (this.child.connected) this.child.send(message);
  }

  private signal(signal: NodeJS.Signals): void {
    if (this.child.exitCode === null && this.child.signalCode === null) this.child.kill(signal);
  }
}

export function describeExit(exit: Pick<WorkerExit, 'code' | 'signal'>): string {
  return exit.signal ? `killed by ${exit.signal}` : `exit code ${exit.code}`;
}
