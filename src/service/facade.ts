import { fileURLToPath } from 'node:url';
import { loadConfig } from '../config/load.js';
import { MAX_TIMER_MS, type SupervisorConfig, type SupervisorOptions } from '../config/schema.js';
import { SupervisorEvents } from '../events.js';
import { createLogger, type Logger } from '../logging/logger.js';
import { subscribeLog } from '../logging/event-log.js';
import { Scheduler, type GpuStats, type PoolSize, type WorkerStats } from '../pool/scheduler.js';
import type { GpuProbe } from '../probes/gpu-probe.js';
import { ErrorCode, SupervisorError, type ErrorShape } from '../protocol/errors.js';
import type { PoolOutcome, PoolTask } from '../pool/pool-task.js';
import type { WorkerHandle } from '../pool/worker-handle.js';
import type { AdminCommand } from '../protocol/messages.js';
import { ownMemoryMiB } from '../probes/process-memory.js';
import type { HistoryService } from '../history/service.js';
import { RecentTasks } from './recent-tasks.js';
import { runAdmin, type AdminParts } from './admin-commands.js';
import { startGpuMeter } from './gpu-start.js';

export const DEFAULT_WORKER_MODULE = fileURLToPath(new URL('../workers/onnx-worker.js', import.meta.url));

export interface RunOptions {
  /** Deadline for the whole task, queue time included (default: config taskTimeoutMs). */
  timeoutMs?: number;
  /** Higher runs first (default 0). */
  priority?: number;
  signal?: AbortSignal;
}

export interface SupervisorStats {
  supervisor: { pid: number; rssMiB: number; heapUsedMiB: number; uptimeMs: number };
  workers: WorkerStats[];
  /** null on a host without a usable GPU, or with cleanup.gpu off. */
  gpu: GpuStats | null;
  /** The pool's current size and bounds (minWorkers..maxWorkers), warm spares, and backend. */
  pool: PoolSize;
  queue: { size: number; pending: number };
  totals: { tasks: number; ok: number; failed: number; recycles: number; freedMiB: number };
}

export type SupervisorState = 'new' | 'starting' | 'running' | 'stopping' | 'stopped';
type Phase = SupervisorState;

function failure(code: ErrorCode, message: string): TaskOutcome {
  return { ok: false, error: { code, message } };
}

/**
 * The supervisor: a thin face over the scheduler. It accepts tasks under a deadline, answers each
 * exactly once, runs admin commands from their table, and composes the parts (config, logs, GPU
 * probe, history store, pool) in one place.
 */
export class Supervisor {
  readonly config: SupervisorConfig;
  readonly events = new SupervisorEvents();
  readonly log: Logger;
  private readonly pool: Scheduler;
  private readonly inflight = new Map<string, Task>();
  private readonly recent: RecentTasks;
  /** The SQLite store (history.path), when one is configured. */
  private historyService: HistoryService | undefined;
  private readonly startedAt = Date.now();
  private phase: Phase = 'new';
  private gpuProbe: GpuProbe | undefined;
  private stopped: Promise<void> | undefined;
  private markClosed: () => void = () => undefined;
  /** Settles once the supervisor has shut down, whoever asked for it (signal, admin, parent gone). */
  readonly closed = new Promise<void>((resolve) => (this.markClosed = resolve));
  /** Resolves when the last task in flight is answered (shutdown's drain). */
  private onDrained: (() => void) | undefined;
  private nextId = 0;
  private counts = { tasks: 0, ok: 0, failed: 0 };

  constructor(
    options: SupervisorOptions = {},
    private readonly deps: {
      logger?: Logger;
      /** history.path 'auto' means on: true for a standalone daemon, false in library mode. */
      autoHistory?: boolean;
    } = {},
  ) {
    // Library mode reads neither argv nor the environment: what the caller passes is what runs.
    this.config = loadConfig({ options, env: {}, argv: [] }).config;
    this.log = deps.logger ?? createLogger(this.config.logLevel, { role: 'supervisor' });
    subscribeLog(this.events, this.log);
    this.recent = new RecentTasks(this.config.historySize);
    this.pool = new Scheduler(
      { ...this.config, worker: this.config.worker ?? DEFAULT_WORKER_MODULE },
      this.events,
      {
        warn: (fields, message) => this.log.warn(fields, message),
      },
    );
  }

  /** True once shutdown() has been called (TypeScript cannot see a phase change across an await). */
  private get stopping(): boolean {
    return this.stopped !== undefined;
  }

  /** Where the supervisor is in its life; /readyz is 200 only while 'running'. */
  get state(): SupervisorState {
    return this.phase;
  }

  get workers(): number {
    return this.config.workers;
  }

  async start(): Promise<void> {
    if (this.phase !== 'new')
      throw new SupervisorError(ErrorCode.NOT_RUNNING, `cannot start: supervisor is ${this.phase}`);
    this.phase = 'starting';
    const started = performance.now();
    const historyPath = this.config.history.path;
    if (historyPath !== 'off' && (historyPath !== 'auto' || this.deps.autoHistory === true)) {
      // better-sqlite3 is loaded only when a history database is configured.
      const { HistoryService } = await import('../history/service.js');
      this.historyService = HistoryService.open(this.config.history, this.log, this.events);
      if (this.historyService) this.log.info({ path: this.historyService.path }, 'history store open');
    }
    const { meter: gpu, probe } = await startGpuMeter(
      this.config,
      this.log,
      this.events,
      () => this.pool.workerPids,
    );
    this.gpuProbe = probe;
    // Stopped while the probe started: it must not outlive the supervisor (NVML holds a thread).
    if (this.stopping) probe?.close();
    try {
      await this.pool.start(gpu);
    } catch (error) {
      if (this.stopping) throw new SupervisorError(ErrorCode.SHUTTING_DOWN, 'shut down while starting');
      this.phase = 'stopped';
      // Nothing will shut this supervisor down: what it opened (the NVML thread, the history) closes here.
      this.historyService?.close();
      this.gpuProbe?.close();
      throw new SupervisorError(
        ErrorCode.WORKERS_UNAVAILABLE,
        `workers failed to start: ${(error as Error).message}`,
        { cause: error },
      );
    }
    // shutdown() during start: it owns the phase now, and the pool has stopped the workers.
    if (this.stopping) throw new SupervisorError(ErrorCode.SHUTTING_DOWN, 'shut down while starting');
    this.phase = 'running';
    this.log.info(
      { workers: this.config.workers, ms: Math.round(performance.now() - started) },
      'supervisor ready',
    );
  }

  /** Runs a task and resolves with its value; rejects with a SupervisorError carrying the code. */
  async run(payload: unknown, options: RunOptions = {}): Promise<unknown> {
    const outcome = await this.submit(`lib-${++this.nextId}`, payload, options);
    if (outcome.ok) return outcome.value;
    throw SupervisorError.fromShape(outcome.error);
  }

  /** Runs a task under the caller's id. Never rejects: the outcome is the one answer for `id`. */
  submit(id: string, payload: unknown, options: RunOptions = {}): Promise<TaskOutcome> {
    return new Promise<TaskOutcome>((resolve) => this.accept(id, payload, options, resolve));
  }

  /**
   * `submit` for a front that answers a client itself: `answer` hears the outcome once, synchronously,
   * the moment it is known (possibly before `accept` returns), ahead of the bookkeeping that follows
   * it (the recent-tasks ring, the 'task' event, the pool's own). A promise would hold the answer back
   * until every line of that tick had run. The pool's state is whole when `answer` runs (the worker's
   * life already stepped), so it may call back in; its verdict and next dispatch come after.
   */
  accept(id: string, payload: unknown, options: RunOptions, answer: (outcome: TaskOutcome) => void): void {
    // Messages do not quote the id: the answer goes out under the client's own id, which a front may
    // hold under another (forkTaskId, socketTaskId in transport/session.ts).
    const refused = this.refusal(id, options);
    if (refused) return answer(refused);
    const task = new Task(id, payload, options.priority ?? 0, (outcome) =>
      this.finish(task, outcome, answer),
    );
    this.inflight.set(id, task);
    this.counts.tasks++;
    const timeoutMs = options.timeoutMs ?? this.config.taskTimeoutMs;
    task.timer = setTimeout(
      () => this.abandon(task, ErrorCode.TIMEOUT, `the task did not finish within ${timeoutMs} ms`),
      timeoutMs,
    );
    const { signal } = options;
    if (signal) {
      const onAbort = (): void => this.abandon(task, ErrorCode.CANCELLED, 'cancelled by the caller');
      signal.addEventListener('abort', onAbort, { once: true });
      // The caller's signal may outlive many tasks: do not let it hold this one (and its payload).
      task.onSettled = () => signal.removeEventListener('abort', onAbort);
    }
    this.pool.submit(task);
  }

  /** Why a task is refused at the door, or undefined if it is accepted. */
  private refusal(id: string, options: RunOptions): TaskOutcome | undefined {
    if (this.phase !== 'running') {
      const code =
        this.phase === 'stopping' || this.phase === 'stopped'
          ? ErrorCode.SHUTTING_DOWN
          : ErrorCode.NOT_RUNNING;
      return failure(code, `supervisor is not accepting tasks (${this.phase})`);
    }
    if (this.inflight.has(id)) {
      return failure(ErrorCode.DUPLICATE_ID, 'a task with this id is already in flight');
    }
    if (this.pool.queued >= this.config.maxQueue) {
      return failure(ErrorCode.QUEUE_FULL, `queue is full (maxQueue ${this.config.maxQueue})`);
    }
    if (options.signal?.aborted) return failure(ErrorCode.CANCELLED, 'cancelled before it was queued');
    if (options.timeoutMs !== undefined && !(options.timeoutMs > 0 && options.timeoutMs <= MAX_TIMER_MS)) {
      return failure(ErrorCode.BAD_REQUEST, `timeoutMs must be in (0, ${MAX_TIMER_MS}] ms`);
    }
    return undefined;
  }

  /** Cancels a queued or running task; it is answered with E_CANCELLED. Returns false if unknown. */
  cancel(id: string): boolean {
    const task = this.inflight.get(id);
    if (!task) return false;
    this.abandon(task, ErrorCode.CANCELLED, 'cancelled by the caller');
    return true;
  }

  /** Answers a task that will not complete (timeout, cancel, shutdown) and frees whatever it held. */
  private abandon(task: Task, code: ErrorCode, message: string): void {
    if (!task.settle(failure(code, message))) return;
    const reason =
      code === ErrorCode.TIMEOUT ? 'timeout' : code === ErrorCode.CANCELLED ? 'cancel' : 'shutdown';
    this.pool.abandon(task, { reason, error: { code, message } });
  }

  private finish(task: Task, outcome: TaskOutcome, answer: (outcome: TaskOutcome) => void): void {
    const now = performance.now();
    this.inflight.delete(task.id);
    // The answer first: what follows is bookkeeping the client need not wait for.
    answer(outcome);
    if (outcome.ok) this.counts.ok++;
    else this.counts.failed++;
    const record = {
      id: task.id,
      model: task.model,
      workerPid: outcome.workerPid,
      ok: outcome.ok,
      code: outcome.ok ? undefined : outcome.error.code,
      queueMs: round((task.startedAt ?? now) - task.acceptedAt),
      runMs: task.startedAt === undefined ? undefined : round(now - task.startedAt),
    };
    this.recent.add({ ...record, at: Date.now() });
    this.events.emit('task', record);
    if (this.inflight.size === 0) this.onDrained?.();
  }

  admin(command: AdminCommand, args: Record<string, unknown> = {}): Promise<unknown> {
    const parts: AdminParts = {
      stats: () => this.stats(),
      recycle: (reason, onlyPid) => this.pool.recycle(reason, onlyPid),
      events: this.events,
      logCleanup: (fields, message) => this.log.info(fields, message),
      workerPids: async () => (await this.pool.stats()).map((w) => w.pid),
      models: Object.keys(this.config.models),
      workerSessions: async () =>
        (await this.pool.stats()).map((w) => ({ pid: w.pid, slot: w.slot, sessions: w.sessions })),
      releaseSession: (slot, model) => this.pool.releaseSession(slot, model),
      recent: this.recent,
      historySize: this.config.historySize,
      history: this.historyService,
      shutdown: () => void this.shutdown(),
      assertRunning: () => {
        if (this.phase !== 'running')
          throw new SupervisorError(ErrorCode.SHUTTING_DOWN, `supervisor is ${this.phase}`);
      },
    };
    return runAdmin(parts, command, args);
  }

  /** The seed's get_memory_usage: the supervisor's and each worker's memory as the parent measures it. */
  async stats(): Promise<SupervisorStats> {
    const { recycles, freedMiB } = this.pool.totals;
    const size = this.pool.queued;
    return {
      supervisor: { pid: process.pid, ...ownMemoryMiB(), uptimeMs: Date.now() - this.startedAt },
      workers: await this.pool.stats(),
      gpu: this.pool.gpuStats(),
      pool: this.pool.size,
      queue: { size, pending: this.inflight.size - size },
      totals: { ...this.counts, recycles, freedMiB },
    };
  }

  recentTasks(limit?: number): ReturnType<RecentTasks['list']> {
    return this.recent.list(limit);
  }

  /**
   * Stops taking tasks (E_SHUTTING_DOWN), lets queued and running ones finish within
   * shutdownTimeoutMs, answers whatever is left with E_SHUTTING_DOWN, then stops the workers.
   */
  shutdown(): Promise<void> {
    this.stopped ??= this.drainAndStop();
    return this.stopped;
  }

  private async drainAndStop(): Promise<void> {
    const wasRunning = this.phase === 'running';
    this.phase = 'stopping';
    if (wasRunning && this.inflight.size > 0) {
      this.log.info(
        { queued: this.pool.queued, running: this.inflight.size - this.pool.queued },
        'shutting down: draining tasks',
      );
      let timer: NodeJS.Timeout | undefined;
      await new Promise<void>((resolve) => {
        this.onDrained = resolve;
        timer = setTimeout(resolve, this.config.shutdownTimeoutMs);
      });
      clearTimeout(timer);
    }
    for (const task of [...this.inflight.values()]) {
      this.abandon(task, ErrorCode.SHUTTING_DOWN, 'the supervisor shut down before the task finished');
    }
    await this.pool.close();
    // After the pool: the last recycle and cleanup rows are recorded too.
    this.historyService?.close();
    this.gpuProbe?.close();
    this.phase = 'stopped';
    this.log.info({ tasks: this.counts.tasks }, 'supervisor stopped');
    this.markClosed();
  }
}

/** `attempts` is present when retries ran the task more than once. */
export type TaskOutcome =
  | { ok: true; value: unknown; workerPid: number; ms: number; queueMs: number; attempts?: number }
  | { ok: false; error: ErrorShape; workerPid?: number; attempts?: number };

/**
 * One accepted task, from acceptance to its single answer. `settle` is the only way to answer it, and
 * it answers once: whoever comes second (a late worker result after a timeout, a cancel racing a
 * result) is ignored.
 */
export class Task implements PoolTask {
  readonly acceptedAt = performance.now();
  seq = 0;
  attempts = 0;
  startedAt: number | undefined;
  holder: WorkerHandle | undefined;
  timer: NodeJS.Timeout | undefined;
  /** Runs once the task is answered (releases listeners it holds). */
  onSettled: (() => void) | undefined;
  private answered = false;

  constructor(
    readonly id: string,
    /** Dropped once answered: an abandoned task may sit in the queue a while, its payload need not. */
    public payload: unknown,
    readonly priority: number,
    private readonly answer: (outcome: TaskOutcome) => void,
  ) {}

  get settled(): boolean {
    return this.answered;
  }

  get model(): string | undefined {
    const model = (this.payload as { model?: unknown } | null)?.model;
    return typeof model === 'string' ? model : undefined;
  }

  /** The pool's answer, with the time it waited for a worker. */
  finish(outcome: PoolOutcome): void {
    if (!outcome.ok) {
      this.settle(outcome);
      return;
    }
    const queueMs = round((this.startedAt ?? performance.now()) - this.acceptedAt);
    const { value, workerPid, ms, attempts } = outcome;
    this.settle({ ok: true, value, workerPid, ms: round(ms), queueMs, ...(attempts ? { attempts } : {}) });
  }

  /** Answers the task; returns false if it had already been answered. */
  settle(outcome: TaskOutcome): boolean {
    if (this.answered) return false;
    this.answered = true;
    clearTimeout(this.timer);
    this.onSettled?.();
    this.answer(outcome);
    this.payload = undefined;
    return true;
  }
}

export function round(ms: number): number {
  return Math.round(ms * 100) / 100;
}
