import { ErrorCode } from '../protocol/errors.js';
import { LeakEstimator } from '../policy/leak-estimator.js';
import type { WorkerConfig } from '../worker/types.js';
import { assertTransition, type WorkerState } from './worker-state.js';
import type { FromWorker, ToWorker } from './worker-protocol.js';
import { ProcessRuntime } from './runtime/process-runtime.js';
import type { Backend, WorkerRuntime } from './runtime/types.js';
import { heapFlagOf, type KillCause, type WorkerExit } from './worker-exit.js';
import { RunningTasks, type WorkerOutcome } from './running-task.js';
import { WorkerCleanups, type AfterTaskCleanup, type CleanupReport } from './worker-cleanups.js';
import { startWorker } from './worker-ready.js';
import { SkippedTasks } from './skipped-tasks.js';

// Importers know these from here; they live with the part of the handle they belong to.
export { describeExit, type KillCause, type WorkerExit } from './worker-exit.js';
export type { WorkerOutcome } from './running-task.js';
export type { AfterTaskCleanup, CleanupReport } from './worker-cleanups.js';

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

/**
 * The parent's view of one worker: its state, the tasks it holds (the one it runs, and with
 * pipelineDepth > 1 those sent ahead), and the only code that ends it.
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
  private readonly task: RunningTasks;
  /** Tasks reserved for this worker and not yet released by the pool (sent, or about to be). */
  private lanes = 0;
  private readonly cleanups = new WorkerCleanups((timeoutMs) =>
    this.kill({
      reason: 'crash',
      error: { code: ErrorCode.WORKER_CRASHED, message: `cleanup did not finish within ${timeoutMs} ms` },
    }),
  );
  private killCause: KillCause | undefined;
  private readonly skipped = new SkippedTasks(
    () => this.task.taskId,
    (cause) => this.kill(cause),
  );
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
    // The heap flag is named in the task's error when the worker dies at that limit.
    this.task = new RunningTasks(this.describe(), heapFlagOf(options.execArgv));
    this.exited = new Promise((resolve) => {
      runtime.onExit(({ code, signal, heapLimit }) => {
        this.stateAtExit = this.currentState;
        this.setState('exited');
        const exit: WorkerExit = { code, signal, cause: this.killCause, ...(heapLimit ? { heapLimit } : {}) };
        // A cleanup still to be reported means the worker died before it read its next task.
        const headStarted = this.cleanups.outstanding === 0;
        this.cleanups.abandon();
        this.skipped.clear();
        this.task.fail(exit, headStarted);
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
    await startWorker(runtime, options, {
      worker: handle.describe(),
      onReady: () => handle.setState('ready'),
      onTimeout: () =>
        handle.kill({ reason: 'crash', error: { code: ErrorCode.WORKER_CRASHED, message: 'start timeout' } }),
    });
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

  /** The task the worker runs now (the oldest it holds): killing the worker ends this one. */
  get runningTaskId(): string | undefined {
    return this.task.taskId;
  }

  /** Does the worker hold `taskId` (running it, or queued behind the one it runs)? */
  holds(taskId: string): boolean {
    return this.task.holds(taskId);
  }

  /** Tasks reserved for this worker and not yet released: the one it runs plus those sent ahead. */
  get load(): number {
    return this.lanes;
  }

  private setState(next: WorkerState): void {
    const from = this.currentState;
    if (from === next) return;
    assertTransition(from, next);
    this.currentState = next;
    this.onTransition?.(this, from, next);
  }

  /** "pid 123" for a process, "thread 4 (pid 123)" for a thread: for messages. */
  describe(): string {
    return this.threadId === undefined ? String(this.pid) : `thread ${this.threadId} (pid ${this.pid})`;
  }

  private onMessage(message: FromWorker): void {
    if (message.kind === 'result') {
      this.task.answer(message, (ms, cleanup) => {
        this.tasksDone++;
        this.busyMs += ms;
        // The worker cleans up as soon as it has answered: the cleanup is under way from now on.
        if (cleanup) this.cleanups.setUnderway(message.taskId, this.awaitCleanup(cleanup.timeoutMs));
      });
      this.skipped.answered(message.taskId);
    } else if (message.kind === 'unsent') {
      this.unsent(message.taskId, message.message);
    } else if (message.kind === 'cleaned') {
      const { kind: _kind, ...report } = message;
      this.cleanups.reported(report);
    }
  }

  /**
   * Marks the worker as handed out for one more task, so nothing else (a recycle) can take it
   * meanwhile. A worker cleaning up after its last answer takes the task next, after the cleanup.
   */
  reserve(): void {
    this.lanes++;
    if (this.currentState === 'ready' || this.currentState === 'cleaning') this.setState('busy');
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
    const outcome = this.task.start(taskId, cleanup);
    const message: ToWorker = { kind: 'run', taskId, payload };
    if (cleanup) message.cleanup = { force: cleanup.force, measure: cleanup.measure };
    try {
      this.runtime.send(message);
    } catch (error) {
      this.unsent(taskId, (error as Error).message);
    }
    return outcome;
  }

  /** The payload never reached the worker: its reservation ends (idle again if it held nothing else). */
  private unsent(taskId: string, message: string): void {
    this.task.unsent(taskId, message, () => this.release());
  }

  /**
   * The worker's cleanup after its task: the one it started by itself (`run` with cleanup), or one it
   * is asked for now (idle release). Resolves with the in-worker duration and RSS figures; `{ ms: 0 }`
   * if the worker is no longer running a task (it died or is being stopped). A cleanup hook that hangs
   * past `timeoutMs` would hold the slot forever, so the worker is killed instead (and replaced).
   * A draining worker cleans up in place (its memory figure still counts) and stays draining.
   */
  cleanup(force: boolean, timeoutMs: number, measure = false, taskId?: string): Promise<CleanupReport> {
    const underway = this.cleanups.takeUnderway(taskId);
    if (underway) return underway;
    if (this.currentState !== 'busy' && this.currentState !== 'draining') return Promise.resolve({ ms: 0 });
    const done = this.awaitCleanup(timeoutMs);
    this.runtime.send({ kind: 'cleanup', force, measure });
    return done;
  }

  private awaitCleanup(timeoutMs: number): Promise<CleanupReport> {
    // Only its own task's lane left: the worker is cleaning up. With another task held, it stays busy.
    if (this.currentState === 'busy' && this.lanes <= 1) this.setState('cleaning');
    return this.cleanups.wait(timeoutMs);
  }

  /**
   * Ends one reservation (its task is answered and dealt with, or was never sent). The last one makes
   * the worker idle; a draining worker stays draining (the pool replaces it once it holds nothing).
   */
  release(): void {
    if (this.lanes > 0) this.lanes--;
    if (this.lanes > 0 || (this.currentState !== 'busy' && this.currentState !== 'cleaning')) return;
    this.idleSince = Date.now();
    this.setState('ready');
  }

  /**
   * A task this worker holds will not be waited for (timeout, cancel). The one it runs ends with the
   * worker (SIGKILL); one sent ahead is skipped: the worker answers it without running it.
   */
  abandon(taskId: string, cause: KillCause): void {
    if (this.task.taskId === taskId) return this.kill({ ...cause, taskId });
    if (!this.task.holds(taskId) || !this.alive) return;
    this.skipped.add(taskId);
    this.runtime.send({ kind: 'skip', taskId });
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
