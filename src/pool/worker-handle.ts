import { ErrorCode, type ErrorShape } from '../protocol/errors.js';
import type { RecycleReason } from '../policy/recycle-policy.js';
import { LeakEstimator } from '../policy/leak-estimator.js';
import type { WorkerConfig } from '../worker/types.js';
import { assertTransition, type WorkerState } from './worker-state.js';
import type { CleanupRequest, FromWorker, ToWorker } from './worker-protocol.js';
import { ProcessRuntime } from './runtime/process-runtime.js';
import type { Backend, RuntimeExit, WorkerRuntime } from './runtime/types.js';

export interface WorkerSpawnOptions {
  backend: Backend;
  slot: number;
  /** The id the worker module sees (context.workerId): its slot, or a spare's own id. */
  workerId: number;
  modulePath: string;
  config: WorkerConfig;
  execArgv: readonly string[];
  logLevel: string;
  lightGcMinKiB: number;
  startTimeoutMs: number;
  /** The GPU this worker is pinned to (CUDA_VISIBLE_DEVICES), if any. */
  gpuIndex?: number | undefined;
  onTransition?: (handle: WorkerHandle, from: WorkerState, to: WorkerState) => void;
}

/** What a cleanup took in the worker and, when measured, the worker's RSS around it (MiB). */
export interface CleanupReport {
  ms: number;
  rssBeforeMiB?: number;
  rssAfterMiB?: number;
}

/** Cleanup the worker runs by itself right after answering a task (see `run`). */
export interface AfterTaskCleanup extends CleanupRequest {
  timeoutMs: number;
}

export type WorkerOutcome =
  | { ok: true; value: unknown; ms: number }
  /** `unsent`: the payload never reached the worker (it could not be serialized); the worker is idle. */
  | { ok: false; error: ErrorShape; unsent?: true; retryable?: false };

/** Why the parent ended a worker itself; decides the error its running task gets and the recycle reason. */
export interface KillCause {
  reason: RecycleReason;
  error: ErrorShape;
}

export interface WorkerExit {
  code: number | null;
  signal: NodeJS.Signals | null;
  cause: KillCause | undefined;
  /** V8 aborted the worker at its heap limit. */
  heapLimit?: true;
}

/**
 * The parent's view of one worker: its state, its one running task, and the only code that ends it.
 * Each handle ends only its own runtime (child process or thread), so a late SIGKILL meant for a
 * retired worker can never hit the replacement that took its slot.
 */
export class WorkerHandle {
  /** The slot it serves; a warm spare gets one when it takes over a slot. */
  slot: number;
  readonly workerId: number;
  readonly pid: number;
  readonly threadId: number | undefined;
  readonly backend: Backend;
  readonly startedAt = Date.now();
  readonly gpuIndex: number | undefined;
  readonly exited: Promise<WorkerExit>;
  /** The --max-old-space-size it runs with, named when it dies at that limit. */
  private readonly heapFlag: string | undefined;
  tasksDone = 0;
  /** This worker's own recycle-every-N (with its jitter draw), fixed at spawn. */
  recycleAfterTasks = 0;
  /** RSS after each cleanup, for the leak-rate estimate. */
  readonly leak = new LeakEstimator();
  /** Tasks sent, and when the latest was sent (ms since epoch): tells which GPU readings a task could affect. */
  runs = 0;
  /** Its sessions were released for idleness since its last task (release once per idle stretch). */
  idleReleased = false;
  /** When it last became idle (ms since epoch): the idle policy's clock. */
  idleSince = Date.now();
  /** Sum of this worker's task times (ms), for its average. */
  private busyMs = 0;
  lastRunAt = 0;
  lastRssMiB: number | undefined;
  private currentState: WorkerState = 'starting';
  /** What the worker was doing when it exited: a death mid-task is the task's doing, not a crash loop. */
  stateAtExit: WorkerState | undefined;
  private pending:
    | {
        taskId: string;
        started: number;
        resolve: (outcome: WorkerOutcome) => void;
        cleanup: AfterTaskCleanup | undefined;
      }
    | undefined;
  /** Cleanups asked for or started and not yet reported, oldest first ('cleaned' comes in order). */
  private readonly pendingCleanups: Array<(report: CleanupReport) => void> = [];
  /** The cleanup the worker started by itself after its last answer, until the pool collects it. */
  private cleanupUnderway: Promise<CleanupReport> | undefined;
  private killCause: KillCause | undefined;
  private readonly onTransition: WorkerSpawnOptions['onTransition'];

  private constructor(
    private readonly runtime: WorkerRuntime,
    options: WorkerSpawnOptions,
  ) {
    this.pid = runtime.pid;
    this.threadId = runtime.threadId;
    this.backend = runtime.backend;
    this.slot = options.slot;
    this.workerId = options.workerId;
    this.gpuIndex = options.gpuIndex;
    this.onTransition = options.onTransition;
    this.heapFlag = [...options.execArgv].reverse().find((a) => a.startsWith('--max-old-space-size'));
    this.exited = new Promise((resolve) => {
      runtime.onExit(({ code, signal, heapLimit }) => {
        this.stateAtExit = this.currentState;
        this.setState('exited');
        const exit: WorkerExit = { code, signal, cause: this.killCause, ...(heapLimit ? { heapLimit } : {}) };
        this.failPending(exit);
        resolve(exit);
      });
    });
    runtime.onMessage((message) => this.onMessage(message));
  }

  /** Starts a worker and resolves once its module's setup finished; rejects with the setup error. */
  static async spawn(options: WorkerSpawnOptions): Promise<WorkerHandle> {
    const runtime =
      options.backend === 'thread'
        ? // piscina is loaded only by pools that use threads.
          await (await import('./runtime/thread-runtime.js')).ThreadRuntime.start(options)
        : await ProcessRuntime.start(options);
    const handle = new WorkerHandle(runtime, options);
    const init: ToWorker = {
      kind: 'init',
      modulePath: options.modulePath,
      config: options.config,
      workerId: options.workerId,
      logLevel: options.logLevel,
      lightGcMinKiB: options.lightGcMinKiB,
    };
    const ready = handle.waitReady(options.startTimeoutMs);
    runtime.send(init);
    await ready;
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

  /** Whose memory `rssMiB` measures: this worker's own, or the whole process (threads). */
  get memoryScope(): 'worker' | 'process' {
    return this.runtime.memoryScope;
  }

  rssMiB(): Promise<number | undefined> {
    return this.currentState === 'exited' ? Promise.resolve(undefined) : this.runtime.rssMiB();
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
        reject(new Error(`worker ${this.describe()} did not become ready within ${timeoutMs} ms`));
      }, timeoutMs);
      const onMessage = (message: FromWorker): void => {
        if (message.kind === 'ready') {
          finish();
          this.setState('ready');
          resolve();
        } else if (message.kind === 'setup-failed') {
          finish();
          // A process ends itself after a failed setup; a thread is ended here.
          if (this.backend === 'thread') this.runtime.end('kill');
          reject(new Error(`worker setup failed: ${message.error.message}`));
        }
      };
      const onExit = ({ code, signal }: RuntimeExit): void => {
        finish();
        reject(new Error(`worker ${this.describe()} exited during start (code ${code}, signal ${signal})`));
      };
      const finish = (): void => {
        clearTimeout(timer);
        this.runtime.offMessage(onMessage);
        this.runtime.offExit(onExit);
      };
      this.runtime.onMessage(onMessage);
      this.runtime.onExit(onExit);
    });
  }

  /** "pid 123" for a process, "thread 4 (pid 123)" for a thread: for messages. */
  describe(): string {
    return this.threadId === undefined ? String(this.pid) : `thread ${this.threadId} (pid ${this.pid})`;
  }

  private onMessage(message: FromWorker): void {
    if (message.kind === 'result') {
      const pending = this.pending;
      if (!pending || pending.taskId !== message.taskId) return;
      this.pending = undefined;
      this.tasksDone++;
      this.busyMs += performance.now() - pending.started;
      // The worker cleans up as soon as it has answered: the cleanup is under way from now on.
      if (pending.cleanup) this.cleanupUnderway = this.awaitCleanup(pending.cleanup.timeoutMs);
      pending.resolve(
        message.ok
          ? { ok: true, value: message.value, ms: performance.now() - pending.started }
          : { ok: false, error: message.error },
      );
    } else if (message.kind === 'unsent') {
      this.unsent(message.taskId, message.message);
    } else if (message.kind === 'cleaned') {
      const { kind: _kind, ...report } = message;
      this.pendingCleanups.shift()?.(report);
    }
  }

  private failPending(exit: WorkerExit): void {
    const pending = this.pending;
    this.pending = undefined;
    for (const done of this.pendingCleanups.splice(0)) done({ ms: 0 });
    if (!pending) return;
    if (!exit.cause && exit.heapLimit) {
      // The task's own input exhausted the heap: another worker would die the same way, so no retry.
      const limit = this.heapFlag ? `, ${this.heapFlag}` : '';
      pending.resolve({
        ok: false,
        retryable: false,
        error: {
          code: ErrorCode.WORKER_CRASHED,
          message: `worker ${this.describe()} ran out of memory at its V8 heap limit${limit} while running task ${pending.taskId} (${describeExit(exit)}); not retried`,
        },
      });
      return;
    }
    const error: ErrorShape = exit.cause?.error ?? {
      code: ErrorCode.WORKER_CRASHED,
      message: `worker ${this.describe()} exited while running task ${pending.taskId} (${describeExit(exit)})`,
    };
    pending.resolve({ ok: false, error });
  }

  /** Marks the worker as handed out for a task, so nothing else (a recycle) can take it meanwhile. */
  reserve(): void {
    this.setState('busy');
  }

  /**
   * Marks the worker due for replacement: it may finish its task and cleanup, and never gets another
   * (the state machine has no way from `draining` back to `ready` or `busy`).
   */
  drain(): void {
    if (this.alive) this.setState('draining');
  }

  get draining(): boolean {
    return this.currentState === 'draining';
  }

  /**
   * Sends one task. The caller must have reserved the worker (it may be draining: its last task).
   * With `cleanup`, the worker cleans up right after answering, unasked; `cleanup()` then collects it.
   */
  run(taskId: string, payload: unknown, cleanup?: AfterTaskCleanup): Promise<WorkerOutcome> {
    if (this.currentState !== 'busy' && this.currentState !== 'draining') {
      return Promise.resolve({
        ok: false,
        error: {
          code: ErrorCode.WORKER_CRASHED,
          message: `worker ${this.describe()} is ${this.currentState}`,
        },
      });
    }
    this.runs++;
    this.idleReleased = false;
    this.lastRunAt = Date.now();
    return new Promise((resolve) => {
      this.pending = { taskId, started: performance.now(), resolve, cleanup };
      const message: ToWorker = { kind: 'run', taskId, payload };
      if (cleanup) message.cleanup = { force: cleanup.force, measure: cleanup.measure };
      try {
        this.runtime.send(message);
      } catch (error) {
        this.unsent(taskId, (error as Error).message);
      }
    });
  }

  /** The payload could not be serialized for the worker (e.g. too large): the worker never saw it. */
  private unsent(taskId: string, message: string): void {
    const pending = this.pending;
    if (!pending || pending.taskId !== taskId) return;
    this.pending = undefined;
    if (this.currentState === 'busy') this.setState('ready');
    pending.resolve({
      ok: false,
      unsent: true,
      error: { code: ErrorCode.BAD_REQUEST, message: `payload cannot be sent to a worker: ${message}` },
    });
  }

  /**
   * The worker's cleanup after its task: the one it started by itself (`run` with cleanup), or one it
   * is asked for now (idle release). Resolves with the in-worker duration and RSS figures; `{ ms: 0 }`
   * if the worker is no longer running a task (it died or is being stopped). A cleanup hook that hangs
   * past `timeoutMs` would hold the slot forever, so the worker is killed instead (and replaced).
   * A draining worker cleans up in place (its memory figure still counts) and stays draining.
   */
  cleanup(force: boolean, timeoutMs: number, measure = false): Promise<CleanupReport> {
    const underway = this.cleanupUnderway;
    this.cleanupUnderway = undefined;
    if (underway) return underway;
    if (this.currentState !== 'busy' && this.currentState !== 'draining') return Promise.resolve({ ms: 0 });
    const done = this.awaitCleanup(timeoutMs);
    this.runtime.send({ kind: 'cleanup', force, measure });
    return done;
  }

  private awaitCleanup(timeoutMs: number): Promise<CleanupReport> {
    if (this.currentState === 'busy') this.setState('cleaning');
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.kill({
          reason: 'crash',
          error: { code: ErrorCode.WORKER_CRASHED, message: `cleanup did not finish within ${timeoutMs} ms` },
        });
      }, timeoutMs);
      this.pendingCleanups.push((report) => {
        clearTimeout(timer);
        resolve(report);
      });
    });
  }

  /** Back to idle after a task (and its cleanup). */
  release(): void {
    this.idleSince = Date.now();
    this.setState('ready');
  }

  /** Ends the worker now (SIGKILL, or a thread's terminate): ORT's run blocks the worker, so nothing softer works. */
  kill(cause: KillCause): void {
    this.killCause ??= cause;
    if (this.currentState !== 'exited') {
      if (this.currentState !== 'stopping') this.setState('stopping');
      this.runtime.end('kill');
    }
  }

  /** Graceful stop: a stop message and SIGTERM, then SIGKILL after `killTimeoutMs`. */
  async stop(cause: KillCause, killTimeoutMs: number): Promise<WorkerExit> {
    this.killCause ??= cause;
    if (this.currentState === 'exited') return this.exited;
    if (this.currentState !== 'stopping') this.setState('stopping');
    this.runtime.send({ kind: 'stop' });
    this.runtime.end('term');
    const timer = setTimeout(() => this.runtime.end('kill'), killTimeoutMs);
    const exit = await this.exited;
    clearTimeout(timer);
    return exit;
  }
}

export function describeExit(exit: Pick<WorkerExit, 'code' | 'signal'>): string {
  return exit.signal ? `killed by ${exit.signal}` : `exit code ${exit.code}`;
}
