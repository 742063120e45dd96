import { ErrorCode } from '../protocol/errors.js';
import type { CleanupRequest, FromWorker, ToWorker, WorkerConfig } from '../protocol/worker-messages.js';
import { killedByKernelOom } from '../core/kernel-oom.js';
import { LeakEstimator } from '../core/leak-estimator.js';
import type { Life, WorkerState } from '../core/life.js';
import { ProcessRuntime } from './runtime/process-runtime.js';
import type { Backend, WorkerRuntime } from './runtime/types.js';
import {
  exitOutcome,
  heapFlagOf,
  type KillCause,
  type WorkerExit,
  type WorkerOutcome,
} from './worker-exit.js';
import { startWorker, type ReadyMessage } from './worker-ready.js';
import type { StartPhases } from '../protocol/start-phases.js';
import { SkippedTasks } from './skipped-tasks.js';

export { describeExit, type KillCause, type WorkerExit, type WorkerOutcome } from './worker-exit.js';

/** A worker's answer to releaseSession: had it that session, and its RSS around the release (MiB). */
export type SessionRelease = Omit<Extract<FromWorker, { kind: 'released' }>, 'kind' | 'id' | 'sessions'>;

/** What a cleanup took in the worker and, when measured, the worker's RSS around it (MiB). */
export interface CleanupReport {
  ms: number;
  rssBeforeMiB?: number;
  rssAfterMiB?: number;
  /** Tasks the worker ran since its previous cleanup (cleanup.everyTasks), as it counted them. */
  tasks?: number;
  /** The worker's own GPU memory around the cleanup, when it reads it itself (NVML). */
  gpuBeforeMiB?: number;
  gpuAfterMiB?: number;
}

/** Cleanup the worker runs by itself right after answering a task (see `WorkerHandle.run`). */
export interface AfterTaskCleanup extends CleanupRequest {
  timeoutMs: number;
}

/** What the worker holds of a task: its id, and whatever the pool tracks it by. */
export interface HeldTask {
  readonly id: string;
}

/** What a worker reports back to whoever owns it (the scheduler). */
export interface WorkerReports {
  /** A task it held ended: answered, never sent, or lost with the worker. Once per task. */
  ended(handle: WorkerHandle, task: HeldTask, outcome: WorkerOutcome): void;
  /** A cleanup was reported (`taskId`: the task it followed; undefined for one asked for idle). */
  cleaned(handle: WorkerHandle, report: CleanupReport, taskId: string | undefined): void;
  /** The worker is gone (after `ended` for every task it held). */
  exited(handle: WorkerHandle, exit: WorkerExit): void;
}

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
  /** recycle.rssMiB for a worker process (0: none): past it, the worker starts nothing more. */
  rssCeilingMiB?: number;
  /** The parent's NVML library, for a worker process to read its own GPU memory around cleanups. */
  nvmlLibrary?: string | undefined;
  startTimeoutMs: number;
  /** The GPU this worker is pinned to (CUDA_VISIBLE_DEVICES), if any. */
  gpuIndex?: number | undefined;
  /** The supervisor's cgroup `oom_kill` count now (undefined: unreadable): names a kernel OOM kill. */
  oomKills?: (() => number | undefined) | undefined;
}

/** What a worker is for: serving a slot, a warm spare, or the pre-spawned successor of a slot's worker. */
export type WorkerRole = 'slot' | 'spare' | 'successor';

/**
 * How old the oom_kill reading taken before a task may be. A reading costs ~4 us, as much as a
 * tenth of a no-op task's whole dispatch, so back-to-back tasks share one; a kill elsewhere in the
 * cgroup this close before an outside SIGKILL of this worker is what could be misnamed.
 */
const OOM_BASELINE_MAX_AGE_MS = 250;

/**
 * One worker as the scheduler sees it: its measured facts and its life (both written by the scheduler
 * alone), and the only code that talks to it or ends it. It decides nothing. Each handle ends only its
 * own runtime, so a late SIGKILL meant for a retired worker can never hit the one that took its slot.
 */
export class WorkerHandle {
  /** The slot it serves (or will serve); -1 for a warm spare until it takes one over. */
  slot: number;
  role: WorkerRole;
  life: Life = { state: 'starting' };
  /** The pool is ending it on purpose (recycle, retire, shutdown): its exit is expected. */
  ending = false;
  readonly workerId: number;
  readonly pid: number;
  readonly threadId: number | undefined;
  readonly backend: Backend;
  readonly startedAt = Date.now();
  readonly gpuIndex: number | undefined;
  readonly exited: Promise<WorkerExit>;
  /** Tasks sent (what recycleEveryTasks caps) and answered. */
  sent = 0;
  tasksDone = 0;
  /** This worker's own recycle-every-N (with its jitter draw), fixed at spawn. */
  recycleAfterTasks = 0;
  /** RSS after each cleanup, for the leak-rate estimate; its GPU memory as last read. */
  readonly leak = new LeakEstimator();
  lastRssMiB: number | undefined;
  lastGpuMiB: number | undefined;
  /** RSS when it reported ready: what a successor holds at least, before any cleanup has measured it. */
  readyRssMiB: number | undefined;
  /** When it reported ready (ms since epoch): a GPU reading older than this does not show its memory. */
  readyAt = 0;
  /** Its sessions were released for idleness since its last task (release once per idle stretch). */
  idleReleased = false;
  /** When the latest task was sent (ms since epoch): which GPU readings a task could affect. */
  lastRunAt = 0;
  /** When it last held nothing (ms since epoch): the idle rules' clock, and who is idle longest. */
  idleSince = Date.now();
  /** Its start: the fork call (ms), the worker's ready message, and the phases the pool made of them. */
  spawnMs = 0;
  readyReport: ReadyMessage | undefined;
  start: StartPhases | undefined;
  /** Tasks it may be sent now, as the scheduler's last verdict on it said. */
  room = 0;
  /**
   * The models whose session it holds, as it last said (undefined: its module cannot tell, so it may
   * hold any). Sent after its setup and whenever a task or a cleanup changed them.
   */
  sessions: readonly string[] | undefined;
  /** Tasks sent since the last one that carried a cleanup (cleanup.everyTasks). */
  sentSinceCleanup = 0;
  /** The next task sent carries the pool's cleanup: the scheduler's decision, made ahead of the send. */
  cleanupNext = false;
  private busyMs = 0;
  private readonly tasks: RunningTasks<HeldTask>;
  private readonly cleanups: WorkerCleanups;
  private killCause: KillCause | undefined;
  private readonly skipped: SkippedTasks;
  /**
   * When its exit was seen (ms since epoch): its uptime, however late the scheduler looks at it. Once
   * set, outcomes reported are those of the tasks it took with it.
   */
  private exited_: number | undefined;
  /** Session releases asked for and not answered yet, by id (releaseSession). */
  private readonly releases = new Map<number, (report: SessionRelease | undefined) => void>();
  private nextReleaseId = 0;
  private readonly oomKills: (() => number | undefined) | undefined;
  /** The cgroup's oom_kill count at spawn and before its tasks (see OOM_BASELINE_MAX_AGE_MS), and when. */
  private oomKillsBefore: number | undefined;
  private oomReadAt = Date.now();

  private constructor(
    private readonly runtime: WorkerRuntime,
    options: WorkerSpawnOptions,
    role: WorkerRole,
    reports: WorkerReports,
  ) {
    this.pid = runtime.pid;
    this.threadId = runtime.threadId;
    this.backend = runtime.backend;
    this.slot = options.slot;
    this.role = role;
    this.workerId = options.workerId;
    this.gpuIndex = options.gpuIndex;
    this.oomKills = options.oomKills;
    this.oomKillsBefore = this.oomKills?.();
    this.tasks = new RunningTasks<HeldTask>(this.describe(), heapFlagOf(options.execArgv), (task, outcome) =>
      reports.ended(this, task, outcome),
    );
    this.cleanups = new WorkerCleanups(
      (timeoutMs) =>
        this.kill({
          reason: 'crash',
          error: { code: ErrorCode.WORKER_CRASHED, message: `cleanup did not finish within ${timeoutMs} ms` },
        }),
      (report, taskId) => reports.cleaned(this, report, taskId),
    );
    this.skipped = new SkippedTasks(
      () => this.tasks.taskId,
      (cause) => this.kill(cause),
    );
    this.exited = new Promise((resolve) => {
      runtime.onExit(({ code, signal, heapLimit }) => {
        const oomKill = killedByKernelOom({
          signal,
          sentByUs: this.killCause !== undefined,
          oomKillsBefore: this.oomKillsBefore,
          oomKillsNow: this.oomKillsBefore === undefined ? undefined : this.oomKills?.(),
        });
        const exit: WorkerExit = {
          code,
          signal,
          cause: this.killCause,
          ...(heapLimit ? { heapLimit } : {}),
          ...(oomKill ? { oomKill } : {}),
        };
        // A cleanup still to be reported means the worker died before it read its next task.
        const headStarted = this.cleanups.outstanding === 0;
        this.exited_ = Date.now();
        this.cleanups.abandon();
        this.skipped.clear();
        this.tasks.fail(exit, headStarted);
        reports.exited(this, exit);
        resolve(exit);
      });
    });
    runtime.onMessage((message) => this.onMessage(message));
  }

  /** Starts a worker and resolves once its module's setup finished; rejects with the setup error. */
  static async spawn(
    options: WorkerSpawnOptions,
    role: WorkerRole,
    reports: WorkerReports,
    startRuntime?: (options: WorkerSpawnOptions) => Promise<WorkerRuntime>,
    /** Hears the handle before it is ready (so a shutdown can end a worker still starting). */
    created?: (handle: WorkerHandle) => void,
  ): Promise<WorkerHandle> {
    const forking = performance.now();
    const runtime = startRuntime
      ? await startRuntime(options)
      : options.backend === 'thread'
        ? // piscina is loaded only by pools that use threads.
          await (await import('./runtime/thread-runtime.js')).ThreadRuntime.start(options)
        : await ProcessRuntime.start(options);
    const handle = new WorkerHandle(runtime, options, role, reports);
    handle.spawnMs = performance.now() - forking;
    created?.(handle);
    handle.readyReport = await startWorker(runtime, options, {
      worker: handle.describe(),
      onReady: () => undefined,
      onTimeout: () =>
        handle.kill({ reason: 'crash', error: { code: ErrorCode.WORKER_CRASHED, message: 'start timeout' } }),
    });
    return handle;
  }

  get state(): WorkerState {
    return this.life.state;
  }

  /** What it was doing when it exited (its state then), or undefined while it lives. */
  get stateAtExit(): WorkerState | undefined {
    return this.life.state === 'exited' ? this.life.last : undefined;
  }

  /** The process (or thread) is gone, whether or not the scheduler has been told yet. */
  get exitedAt(): number | undefined {
    return this.exited_;
  }

  get gone(): boolean {
    return this.exited_ !== undefined;
  }

  get alive(): boolean {
    return this.life.state !== 'exited' && this.life.state !== 'stopping';
  }

  /** Mean time of this worker's tasks so far (ms), undefined before its first. */
  get averageTaskMs(): number | undefined {
    return this.tasksDone > 0 ? this.busyMs / this.tasksDone : undefined;
  }

  /** Whose memory `rssMiB` measures: this worker's own, or the whole process (threads). */
  get memoryScope(): 'worker' | 'process' {
    return this.runtime.memoryScope;
  }

  rssMiB(): Promise<number | undefined> {
    return this.life.state === 'exited' ? Promise.resolve(undefined) : this.runtime.rssMiB();
  }

  /** The task the worker runs now (the oldest it holds): killing the worker ends this one. */
  get runningTaskId(): string | undefined {
    return this.tasks.taskId;
  }

  /** Does the worker hold `taskId` (running it, or queued behind the one it runs)? */
  holds(taskId: string): boolean {
    return this.tasks.holds(taskId);
  }

  /** Tasks it holds: the one it runs plus those sent ahead. */
  get load(): number {
    return this.tasks.size;
  }

  /** "pid 123" for a process, "thread 4 (pid 123)" for a thread: for messages. */
  describe(): string {
    return this.threadId === undefined ? String(this.pid) : `thread ${this.threadId} (pid ${this.pid})`;
  }

  private onMessage(message: FromWorker): void {
    if ('sessions' in message && message.sessions) this.sessions = message.sessions;
    if (message.kind === 'result') {
      this.tasks.answer(message, (ms, cleanup) => {
        this.tasksDone++;
        this.busyMs += ms;
        // The worker cleans up as soon as it has answered: its report follows. Owed before the answer
        // is out, so that a cleanup asked for by code the answer runs is owed after this one.
        if (cleanup) this.cleanups.expect(message.taskId, cleanup.timeoutMs);
      });
      this.skipped.answered(message.taskId);
    } else if (message.kind === 'unsent') {
      this.tasks.unsent(message.taskId, message.message, () => undefined);
    } else if (message.kind === 'declined') {
      this.tasks.declined(message.taskId, message.rssMiB);
    } else if (message.kind === 'cleaned') {
      const { kind: _kind, sessions: _sessions, ...report } = message;
      this.cleanups.reported(report);
    } else if (message.kind === 'released') {
      const { kind: _kind, sessions: _sessions, id, ...report } = message;
      this.releases.get(id)?.(report);
      this.releases.delete(id);
    }
  }

  /**
   * Asks the worker to release `model`'s session in place and collect; resolves with its report, or
   * undefined if it exits first. It comes after the tasks the worker holds (they run in order).
   */
  releaseSession(model: string, measure: boolean): Promise<SessionRelease | undefined> {
    if (!this.alive) return Promise.resolve(undefined);
    const id = ++this.nextReleaseId;
    const answered = new Promise<SessionRelease | undefined>((resolve) => this.releases.set(id, resolve));
    void this.exited.then(() => {
      this.releases.get(id)?.(undefined);
      this.releases.delete(id);
    });
    this.runtime.send({ kind: 'release', id, model, measure });
    return answered;
  }

  /**
   * Sends one task. With `cleanup`, the worker cleans up right after answering, unasked, and its
   * report follows the answer.
   */
  run(task: HeldTask, payload: unknown, cleanup?: AfterTaskCleanup): void {
    this.sent++;
    this.idleReleased = false;
    this.lastRunAt = Date.now();
    const first = this.tasks.size === 0;
    this.tasks.start(task, cleanup);
    const message: ToWorker = { kind: 'run', taskId: task.id, payload };
    if (cleanup) message.cleanup = { force: cleanup.force, measure: cleanup.measure };
    try {
      this.runtime.send(message);
    } catch (error) {
      this.tasks.unsent(task.id, (error as Error).message, () => undefined);
      return;
    }
    // Read once the task is on its way, not ahead of it: the worker has not woken to it yet, so a
    // kill it suffers is still counted after this reading (all but certainly: a few microseconds).
    if (this.oomKills && first && this.lastRunAt - this.oomReadAt >= OOM_BASELINE_MAX_AGE_MS) {
      this.oomKillsBefore = this.oomKills();
      this.oomReadAt = this.lastRunAt;
    }
  }

  /** Asks for a cleanup without a task (idle release); its report comes through `cleaned`. */
  cleanup(force: boolean, timeoutMs: number, measure: boolean): void {
    this.cleanups.expect(undefined, timeoutMs);
    this.runtime.send({ kind: 'cleanup', force, measure });
  }

  /**
   * A task this worker holds will not be waited for (timeout, cancel). The one it runs ends with the
   * worker (SIGKILL); one sent ahead is skipped: the worker answers it without running it.
   */
  abandon(taskId: string, cause: KillCause): void {
    if (this.tasks.taskId === taskId) return this.kill({ ...cause, taskId });
    if (!this.tasks.holds(taskId) || !this.alive) return;
    this.skipped.add(taskId);
    this.runtime.send({ kind: 'skip', taskId });
  }

  /** Ends the worker now (SIGKILL, or a thread's terminate): ORT's run blocks the worker, so nothing softer works. */
  kill(cause: KillCause): void {
    this.killCause ??= cause;
    if (this.life.state !== 'exited') this.runtime.end('kill');
  }

  /** Graceful stop: a stop message and SIGTERM, then SIGKILL after `killTimeoutMs`. */
  async stop(cause: KillCause, killTimeoutMs: number): Promise<WorkerExit> {
    this.killCause ??= cause;
    if (this.life.state === 'exited') return this.exited;
    this.runtime.send({ kind: 'stop' });
    this.runtime.end('term');
    const timer = setTimeout(() => this.runtime.end('kill'), killTimeoutMs);
    const exit = await this.exited;
    clearTimeout(timer);
    return exit;
  }

  /** Why the pool ended it, if it did. */
  get cause(): KillCause | undefined {
    return this.killCause;
  }
}

type TaskResult = Extract<FromWorker, { kind: 'result' }>;

interface Pending<T extends HeldTask> {
  task: T;
  sentAt: number;
  cleanup: AfterTaskCleanup | undefined;
}

/**
 * The tasks a worker holds, oldest first: the one it runs and those sent ahead (pipelineDepth), which
 * it runs in the order sent. Every way a task can end (answer, unsent payload, worker exit) goes
 * through here, so each task gets exactly one outcome.
 */
class RunningTasks<T extends HeldTask> {
  private readonly queue: Array<Pending<T>> = [];
  /** When the latest answer arrived: the next task started no earlier (the worker runs them in order). */
  private lastAnswerAt = 0;

  /**
   * @param worker how messages name the worker ("123", "thread 4 (pid 123)")
   * @param heapFlag the --max-old-space-size the worker runs with, if any
   * @param end hears every task's one outcome
   */
  constructor(
    private readonly worker: string,
    private readonly heapFlag: string | undefined,
    private readonly end: (task: T, outcome: WorkerOutcome) => void,
  ) {}

  /** The task the worker runs now (or runs next): the oldest unanswered. */
  get taskId(): string | undefined {
    return this.queue[0]?.task.id;
  }

  /** Tasks sent and not answered. */
  get size(): number {
    return this.queue.length;
  }

  /** Is `taskId` held (running or queued) by this worker? */
  holds(taskId: string): boolean {
    return this.queue.some((p) => p.task.id === taskId);
  }

  /** Records `task` as sent; `end` hears its outcome when it ends in any way. */
  start(task: T, cleanup: AfterTaskCleanup | undefined): void {
    this.queue.push({ task, sentAt: performance.now(), cleanup });
  }

  /**
   * Ends a task with the worker's answer (an answer for a task not held is ignored). `onAnswered`
   * gets the task's time in the worker and its after-task cleanup before the caller hears the outcome.
   */
  answer(message: TaskResult, onAnswered: (ms: number, cleanup: AfterTaskCleanup | undefined) => void): void {
    const pending = this.take(message.taskId);
    if (!pending) return;
    const now = performance.now();
    // A task sent ahead started when the worker finished the one before it, not when it was sent.
    const ms = now - Math.max(pending.sentAt, this.lastAnswerAt);
    this.lastAnswerAt = now;
    onAnswered(ms, pending.cleanup);
    this.end(
      pending.task,
      message.ok ? { ok: true, value: message.value, ms } : { ok: false, error: message.error },
    );
  }

  /**
   * The payload could not be serialized for the worker (e.g. too large): the worker never saw it.
   * `onUnsent` runs (only if `taskId` was held) before the caller hears the outcome.
   */
  unsent(taskId: string, message: string, onUnsent: () => void): void {
    const pending = this.take(taskId);
    if (!pending) return;
    onUnsent();
    this.end(pending.task, {
      ok: false,
      unsent: true,
      error: { code: ErrorCode.BAD_REQUEST, message: `payload cannot be sent to a worker: ${message}` },
    });
  }

  /** The worker declined a task it held (over its RSS ceiling): it never started; requeue it. */
  declined(taskId: string, rssMiB: number): void {
    const pending = this.take(taskId);
    if (!pending) return;
    this.end(pending.task, {
      ok: false,
      requeue: true,
      error: {
        code: ErrorCode.WORKER_CRASHED,
        message: `worker ${this.worker} declined task ${taskId}: RSS ${rssMiB} MiB is over recycle.rssMiB`,
      },
    });
  }

  /**
   * The worker exited. The oldest task, if `headStarted`, fails with the kill cause's error or the
   * exit's; every task it had not started yet is handed back for requeueing.
   */
  fail(exit: WorkerExit, headStarted: boolean): void {
    const held = this.queue.splice(0);
    const head = headStarted ? held.shift() : undefined;
    for (const pending of held) {
      this.end(pending.task, {
        ok: false,
        requeue: true,
        error: {
          code: ErrorCode.WORKER_CRASHED,
          message: `worker ${this.worker} exited before it started task ${pending.task.id}`,
        },
      });
    }
    if (head) this.end(head.task, exitOutcome(this.worker, head.task.id, exit, this.heapFlag));
  }

  private take(taskId: string): Pending<T> | undefined {
    // Answers come in order, so this is almost always the head.
    const index = this.queue[0]?.task.id === taskId ? 0 : this.queue.findIndex((p) => p.task.id === taskId);
    if (index < 0) return undefined;
    return this.queue.splice(index, 1)[0];
  }
}

/**
 * One worker's cleanups that were asked for or started and not yet reported. The worker reports them
 * in order ('cleaned' carries no id), so each report belongs to the oldest one owed.
 */
class WorkerCleanups {
  private readonly owed: Array<{ taskId: string | undefined; timer: NodeJS.Timeout }> = [];

  /**
   * @param onTimeout a cleanup not reported within its `timeoutMs`: a cleanup hook that hangs would
   * hold the worker forever, so the handle kills it
   * @param onReport a report, with the task it followed (undefined: an idle release)
   */
  constructor(
    private readonly onTimeout: (timeoutMs: number) => void,
    private readonly onReport: (report: CleanupReport, taskId: string | undefined) => void,
  ) {}

  /** Reports still to come: while any is, the worker has not started the task it holds next. */
  get outstanding(): number {
    return this.owed.length;
  }

  /** A report will come for the cleanup after `taskId` (undefined: one asked for, with no task). */
  expect(taskId: string | undefined, timeoutMs: number): void {
    this.owed.push({ taskId, timer: setTimeout(() => this.onTimeout(timeoutMs), timeoutMs) });
  }

  reported(report: CleanupReport): void {
    const owed = this.owed.shift();
    if (!owed) return;
    clearTimeout(owed.timer);
    this.onReport(report, owed.taskId);
  }

  /** The worker is gone: nothing more will be reported. */
  abandon(): void {
    for (const owed of this.owed.splice(0)) clearTimeout(owed.timer);
  }
}
