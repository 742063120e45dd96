import { fileURLToPath } from 'node:url';
import PQueue from 'p-queue';
import { loadConfig } from '../config/load.js';
import type { SupervisorConfig, SupervisorOptions } from '../config/schema.js';
import { SupervisorEvents } from '../events.js';
import { createLogger, type Logger } from '../logging/logger.js';
import { subscribeLog } from '../logging/event-log.js';
import { Pool, resolvePoolSize, type GpuStats, type PoolSize, type WorkerStats } from '../pool/pool.js';
import { effectivePipelineDepth } from '../config/pool-size.js';
import { GpuMeter } from '../probes/gpu-meter.js';
import { GpuProbe } from '../probes/gpu-probe.js';
import { ErrorCode, SupervisorError, type ErrorShape } from '../protocol/errors.js';
import type { AdminCommand } from '../protocol/messages.js';
import { MAX_TIMEOUT_MS } from '../protocol/validate.js';
import { ownMemoryMiB } from '../probes/process-memory.js';
import type { HistoryService } from '../history/service.js';
import { TaskHistory } from './history.js';
import { Task, type TaskOutcome } from './task.js';

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

function errorShape(error: unknown): ErrorShape {
  if (error instanceof SupervisorError) return error.toJSON();
  return { code: ErrorCode.TASK_FAILED, message: error instanceof Error ? error.message : String(error) };
}

/**
 * The supervisor: accepts tasks, queues them (p-queue: priority, bounded size), runs each on a pool
 * worker under a deadline, answers each exactly once, and carries out admin commands.
 */
export class Supervisor {
  readonly config: SupervisorConfig;
  readonly events = new SupervisorEvents();
  readonly log: Logger;
  private readonly pool: Pool;
  private readonly queue: PQueue;
  private readonly inflight = new Map<string, Task>();
  private readonly history: TaskHistory;
  /** The SQLite store (history.path), when one is configured. */
  private historyService: HistoryService | undefined;
  private readonly startedAt = Date.now();
  private phase: Phase = 'new';
  private gpuProbe: GpuProbe | undefined;
  private stopped: Promise<void> | undefined;
  private markClosed: () => void = () => undefined;
  /** Settles once the supervisor has shut down, whoever asked for it (signal, admin, parent gone). */
  readonly closed = new Promise<void>((resolve) => (this.markClosed = resolve));
  private nextId = 0;
  private counts = { tasks: 0, ok: 0, failed: 0 };
  /**
   * Tasks accepted and not yet dispatched nor answered: what maxQueue and stats count. An answered
   * task leaves the p-queue only when its turn comes (it then returns at once): withdrawing each
   * one eagerly would cost every task an AbortSignal and its listeners.
   */
  private queued = 0;

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
    this.history = new TaskHistory(this.config.historySize);
    // Each worker's running task and those sent ahead of it, at the pool's largest size (it grows to
    // maxWorkers under load).
    const pipelineDepth = effectivePipelineDepth(this.config);
    this.queue = new PQueue({ concurrency: (this.config.maxWorkers ?? this.config.workers) * pipelineDepth });
    this.pool = new Pool(
      {
        backend: this.config.backend,
        ...resolvePoolSize(this.config),
        idleTimeoutMs: this.config.idleTimeoutMs,
        spareWorkers: this.config.spareWorkers,
        pipelineDepth,
        warn: (fields, message) => this.log.warn(fields, message),
        modulePath: this.config.worker ?? DEFAULT_WORKER_MODULE,
        workerConfig: {
          models: this.config.models,
          executionProviders: this.config.executionProviders,
          sessionOptions: this.config.sessionOptions,
          options: this.config.workerOptions,
        },
        execArgv: this.config.workerExecArgv,
        logLevel: this.config.logLevel,
        startTimeoutMs: this.config.startTimeoutMs,
        killTimeoutMs: this.config.killTimeoutMs,
        policy: {
          recycleEveryTasks: this.config.recycleEveryTasks,
          rssMiB: this.config.recycle.rssMiB,
          gpuMiB: this.config.recycle.gpuMiB,
          maxAgeMs: this.config.recycle.maxAgeMs,
          leakHorizonTasks: this.config.recycle.leakHorizonTasks,
        },
        jitter: this.config.recycle.jitter,
        maxConcurrentRecycles: this.config.recycle.maxConcurrent,
        prespawn: this.config.recycle.prespawn,
        minUptimeMs: this.config.minUptimeMs,
        idleReleaseMs: this.config.idleReleaseMs,
        maxFailedStarts: this.config.maxFailedStarts,
        cleanup: this.config.cleanup,
        gpus: this.config.gpus,
        gpuReclaimTimeoutMs: this.config.gpuProbe.reclaimTimeoutMs,
      },
      this.events,
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
    const gpu = await this.startGpuMeter();
    try {
      await this.pool.start(gpu);
    } catch (error) {
      if (this.stopping) throw new SupervisorError(ErrorCode.SHUTTING_DOWN, 'shut down while starting');
      this.phase = 'stopped';
      throw new SupervisorError(
        ErrorCode.WORKERS_UNAVAILABLE,
        `workers failed to start: ${(error as Error).message}`,
        {
          cause: error,
        },
      );
    }
    // shutdown() during start: it owns the phase now, and pool.close() has stopped the workers.
    if (this.stopping) throw new SupervisorError(ErrorCode.SHUTTING_DOWN, 'shut down while starting');
    this.phase = 'running';
    this.log.info(
      { workers: this.config.workers, ms: Math.round(performance.now() - started) },
      'supervisor ready',
    );
  }

  /**
   * GPU measurement, when enabled (cleanup.gpu): one probe reading decides. No GPU is a normal state
   * (a CPU host): one info line, then no further attempts.
   */
  private async startGpuMeter(): Promise<GpuMeter | undefined> {
    if (!this.config.cleanup.gpu) return undefined;
    const { command, minIntervalMs, timeoutMs } = this.config.gpuProbe;
    const probe = new GpuProbe({ command, minIntervalMs, timeoutMs });
    this.gpuProbe = probe;
    if (await probe.init()) {
      const devices = probe.latest?.devices ?? [];
      this.log.info(
        { gpus: devices.map((d) => `${d.index}: ${d.name}`), readingMs: probe.averageMs },
        'GPU probe ready',
      );
      return new GpuMeter(probe, () => this.pool.workerPids);
    }
    const failure = probe.failure ?? { kind: 'failed', message: 'unknown' };
    this.events.emit('gpu-unavailable', failure);
    this.log.info({ kind: failure.kind, reason: failure.message }, 'no GPU: GPU measurement off');
    return undefined;
  }

  /** Runs a task and resolves with its value; rejects with a SupervisorError carrying the code. */
  async run(payload: unknown, options: RunOptions = {}): Promise<unknown> {
    const outcome = await this.submit(`lib-${++this.nextId}`, payload, options);
    if (outcome.ok) return outcome.value;
    throw SupervisorError.fromShape(outcome.error);
  }

  /** Runs a task under the caller's id. Never rejects: the outcome is the one answer for `id`. */
  submit(id: string, payload: unknown, options: RunOptions = {}): Promise<TaskOutcome> {
    if (this.phase !== 'running') {
      const code =
        this.phase === 'stopping' || this.phase === 'stopped'
          ? ErrorCode.SHUTTING_DOWN
          : ErrorCode.NOT_RUNNING;
      return Promise.resolve(failure(code, `supervisor is not accepting tasks (${this.phase})`));
    }
    if (this.inflight.has(id)) {
      return Promise.resolve(
        failure(ErrorCode.DUPLICATE_ID, `task id ${JSON.stringify(id)} is already in flight`),
      );
    }
    if (this.queued >= this.config.maxQueue) {
      return Promise.resolve(
        failure(ErrorCode.QUEUE_FULL, `queue is full (maxQueue ${this.config.maxQueue})`),
      );
    }
    if (options.signal?.aborted)
      return Promise.resolve(failure(ErrorCode.CANCELLED, 'cancelled before it was queued'));
    if (options.timeoutMs !== undefined && !(options.timeoutMs > 0 && options.timeoutMs <= MAX_TIMEOUT_MS)) {
      return Promise.resolve(
        failure(ErrorCode.BAD_REQUEST, `timeoutMs must be in (0, ${MAX_TIMEOUT_MS}] ms`),
      );
    }

    return new Promise<TaskOutcome>((resolve) => {
      const task = new Task(id, payload, (outcome) => this.finish(task, outcome, resolve));
      this.inflight.set(id, task);
      this.counts.tasks++;
      this.queued++;
      const timeoutMs = options.timeoutMs ?? this.config.taskTimeoutMs;
      task.timer = setTimeout(
        () => this.abandon(task, ErrorCode.TIMEOUT, `task ${id} did not finish within ${timeoutMs} ms`),
        timeoutMs,
      );
      const { signal } = options;
      if (signal) {
        const onAbort = (): void => this.abandon(task, ErrorCode.CANCELLED, 'cancelled by the caller');
        signal.addEventListener('abort', onAbort, { once: true });
        // The caller's signal may outlive many tasks: do not let it hold this one (and its payload).
        task.onSettled = () => signal.removeEventListener('abort', onAbort);
      }
      this.queue
        .add(() => this.dispatch(task), { priority: options.priority ?? 0 })
        .catch((error: unknown) => {
          // Withdrawn while waiting for a worker (already answered by `abandon`), or a failure to dispatch.
          task.settle({ ok: false, error: errorShape(error) });
        });
    });
  }

  /** Cancels a queued or running task; it is answered with E_CANCELLED. Returns false if unknown. */
  cancel(id: string): boolean {
    const task = this.inflight.get(id);
    if (!task) return false;
    this.abandon(task, ErrorCode.CANCELLED, 'cancelled by the caller');
    return true;
  }

  private async dispatch(task: Task): Promise<void> {
    this.leaveQueue(task);
    // `retries`: a task whose worker died under it runs again on another worker. Never after the
    // handler itself failed (E_TASK_FAILED) or a timeout: those would fail the same way again.
    for (let attempt = 1; !task.settled; attempt++) {
      const handle = await this.pool.acquire(() => task.signal);
      if (task.settled) {
        this.pool.giveBack(handle);
        return;
      }
      task.handle = handle;
      task.startedAt ??= performance.now();
      const outcome = await this.pool.execute(handle, task.id, task.payload);
      if (!outcome.ok && outcome.requeue) {
        attempt--; // its worker died before starting it: not an attempt
        continue;
      }
      const retry =
        !outcome.ok &&
        outcome.error.code === ErrorCode.WORKER_CRASHED &&
        outcome.retryable !== false &&
        attempt <= this.config.retries;
      if (retry) continue;
      const attempts = attempt > 1 ? { attempts: attempt } : {};
      task.settle(
        outcome.ok
          ? {
              ok: true,
              value: outcome.value,
              workerPid: handle.pid,
              ms: round(outcome.ms),
              queueMs: round(task.startedAt - task.acceptedAt),
              ...attempts,
            }
          : { ok: false, error: outcome.error, workerPid: handle.pid, ...attempts },
      );
    }
  }

  /** Answers a task that will not complete (timeout, cancel, shutdown) and frees whatever it held. */
  private abandon(task: Task, code: ErrorCode, message: string): void {
    if (!task.settle(failure(code, message))) return;
    const handle = task.handle;
    if (handle?.holds(task.id)) {
      const reason =
        code === ErrorCode.TIMEOUT ? 'timeout' : code === ErrorCode.CANCELLED ? 'cancel' : 'shutdown';
      this.pool.abandon(handle, task.id, { reason, error: { code, message } });
    }
  }

  private leaveQueue(task: Task): void {
    if (!task.queued) return;
    task.queued = false;
    this.queued--;
  }

  private finish(task: Task, outcome: TaskOutcome, resolve: (outcome: TaskOutcome) => void): void {
    this.inflight.delete(task.id);
    this.leaveQueue(task);
    if (outcome.ok) this.counts.ok++;
    else this.counts.failed++;
    const queueMs = round((task.startedAt ?? performance.now()) - task.acceptedAt);
    const runMs = task.startedAt === undefined ? undefined : round(performance.now() - task.startedAt);
    const record = {
      id: task.id,
      model: task.model,
      workerPid: outcome.ok ? outcome.workerPid : outcome.workerPid,
      ok: outcome.ok,
      code: outcome.ok ? undefined : outcome.error.code,
      queueMs,
      runMs,
    };
    this.history.add({ ...record, at: Date.now() });
    this.events.emit('task', record);
    resolve(outcome);
  }

  async admin(command: AdminCommand, args: Record<string, unknown> = {}): Promise<unknown> {
    if (command === 'stats') return this.stats();
    if (command === 'history') {
      const last = lastArg(args.last);
      // Newest first, from the store when it can be read, else from the in-memory ring.
      const stored = this.historyService?.recentTasks(last ?? this.config.historySize);
      return { tasks: stored ?? this.recentTasks(last).reverse() };
    }
    if (command === 'report') {
      if (!this.historyService) {
        throw new SupervisorError(
          ErrorCode.BAD_REQUEST,
          'report needs the history store: set history.path (--history FILE)',
        );
      }
      return storeCall(() => this.historyService!.report({ svg: args.svg === true }));
    }
    if (command === 'shutdown') {
      void this.shutdown();
      return { shuttingDown: true };
    }
    if (this.phase !== 'running')
      throw new SupervisorError(ErrorCode.SHUTTING_DOWN, `supervisor is ${this.phase}`);
    switch (command) {
      case 'recycle':
      case 'clear-cache': {
        const pid = args.pid;
        if (pid !== undefined) {
          if (typeof pid !== 'number' || !(await this.pool.stats()).some((w) => w.pid === pid)) {
            throw new SupervisorError(
              ErrorCode.BAD_REQUEST,
              `args.pid ${JSON.stringify(pid)} is not one of this supervisor's workers`,
            );
          }
        }
        return { recycled: await this.pool.recycleAll('admin', pid as number | undefined) };
      }
      case 'clear-history': {
        const ringRemoved = this.history.clear();
        const service = this.historyService;
        const removed = service ? storeCall(() => service.clear()) : ringRemoved;
        return { removed, recycled: await this.pool.recycleAll('admin') };
      }
    }
  }

  /** The seed's get_memory_usage: the supervisor's and each worker's memory as the parent measures it. */
  async stats(): Promise<SupervisorStats> {
    const { recycles, freedMiB } = this.pool.totals;
    return {
      supervisor: { pid: process.pid, ...ownMemoryMiB(), uptimeMs: Date.now() - this.startedAt },
      workers: await this.pool.stats(),
      gpu: this.pool.gpuStats(),
      pool: this.pool.size,
      queue: { size: this.queued, pending: this.queue.pending },
      totals: { ...this.counts, recycles, freedMiB },
    };
  }

  recentTasks(limit?: number): ReturnType<TaskHistory['list']> {
    return this.history.list(limit);
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
    if (wasRunning) {
      this.log.info({ queued: this.queued, running: this.queue.pending }, 'shutting down: draining tasks');
      const deadline = new AbortController();
      const timer = setTimeout(() => deadline.abort(), this.config.shutdownTimeoutMs);
      await Promise.race([
        this.queue.onIdle(),
        new Promise((r) => deadline.signal.addEventListener('abort', r)),
      ]);
      clearTimeout(timer);
    }
    for (const task of [...this.inflight.values()]) {
      this.abandon(task, ErrorCode.SHUTTING_DOWN, `supervisor shut down before task ${task.id} finished`);
    }
    this.queue.clear();
    await this.pool.close();
    // After the pool: the last recycle and cleanup rows are recorded too.
    this.historyService?.close();
    this.gpuProbe?.close();
    this.phase = 'stopped';
    this.log.info({ tasks: this.counts.tasks }, 'supervisor stopped');
    this.markClosed();
  }
}

/** A history database failure is the store's, not the caller's: reported as E_TASK_FAILED. */
function storeCall<T>(call: () => T): T {
  try {
    return call();
  } catch (error) {
    throw new SupervisorError(ErrorCode.TASK_FAILED, `history store: ${(error as Error).message}`, {
      cause: error,
    });
  }
}

function lastArg(last: unknown): number | undefined {
  if (last === undefined) return undefined;
  if (typeof last !== 'number' || !Number.isInteger(last) || last < 1) {
    throw new SupervisorError(
      ErrorCode.BAD_REQUEST,
      `args.last must be a positive integer, got ${JSON.stringify(last)}`,
    );
  }
  return last;
}

function round(ms: number): number {
  return Math.round(ms * 100) / 100;
}
