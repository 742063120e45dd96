import { ErrorCode, SupervisorError } from '../protocol/errors.js';
import { drawRecycleAfter } from '../core/recycle-policy.js';
import type { SupervisorEvents } from '../events.js';
import type { PoolConfig } from './pool-config.js';
import type { WorkerRuntime } from './runtime/types.js';
import { resolveSessionCacheDir } from '../config/session-cache-dir.js';
import { startPhasesOf } from '../protocol/start-phases.js';
import { WorkerHandle, type KillCause, type WorkerReports, type WorkerRole } from './worker-handle.js';

export const POOL_CLOSED: KillCause = {
  reason: 'shutdown',
  error: { code: ErrorCode.SHUTTING_DOWN, message: 'pool closed' },
};

/** Starts a worker's runtime: the real ones by backend, or a stand-in (tests). */
export type RuntimeStarter = (options: Parameters<typeof WorkerHandle.spawn>[0]) => Promise<WorkerRuntime>;

/**
 * Starting one worker, measured: forked (or a thread started), its module set up, `worker-ready`
 * emitted. Which worker starts, and when, is the scheduler's decision; a worker that becomes ready
 * after the pool closed is stopped here rather than left running unowned.
 */
export class WorkerStarts {
  /** The last worker start, fork to ready (ms): how early a pre-spawned successor must begin. */
  lastStartMs = 0;
  /** Set when the pool's GPU readings go through NVML: worker processes then read their own too. */
  nvmlLibrary: string | undefined;

  /** The optimized-model cache the workers use (sessionCache.dir, resolved once), or null. */
  private readonly sessionCacheDir: string | null;

  constructor(
    private readonly config: PoolConfig,
    private readonly events: SupervisorEvents,
    private readonly reports: WorkerReports,
    private readonly closing: () => boolean,
    private readonly runtime?: RuntimeStarter,
    /** The supervisor's cgroup oom_kill count, read at a worker's exit to name a kernel OOM kill. */
    private readonly oomKills?: () => number | undefined,
  ) {
    this.sessionCacheDir = resolveSessionCacheDir(config.sessionCache.dir);
  }

  /** The GPU a slot's workers are pinned to (round-robin); threads share the supervisor's, so none. */
  gpuOf(slot: number): number | undefined {
    const { gpus, backend } = this.config;
    return gpus.length > 0 && backend === 'process' ? gpus[slot % gpus.length] : undefined;
  }

  /** Starts under way: the pool's close waits for them (each stops its worker once it sees closing). */
  readonly pending = new Set<Promise<WorkerHandle>>();
  /** Workers forked and not yet ready. */
  private readonly unready = new Set<WorkerHandle>();

  /** Shutdown: ends every worker still starting (its start then fails, and nothing waits for it). */
  endStarting(): void {
    for (const handle of this.unready) handle.kill(POOL_CLOSED);
  }

  /**
   * Starts a worker for `slot` (-1: a spare, pinned by its own id) and waits until it is ready.
   * `created` hears the handle as soon as it exists, before it is ready (and whether or not it gets there).
   */
  launch(
    slot: number,
    workerId: number,
    role: WorkerRole,
    created?: (handle: WorkerHandle) => void,
  ): Promise<WorkerHandle> {
    const start = this.start(slot, workerId, role, created);
    this.pending.add(start);
    void start.then(
      () => this.pending.delete(start),
      () => this.pending.delete(start),
    );
    return start;
  }

  private async start(
    slot: number,
    workerId: number,
    role: WorkerRole,
    heard?: (handle: WorkerHandle) => void,
  ): Promise<WorkerHandle> {
    const { config, events } = this;
    const started = performance.now();
    let created: WorkerHandle | undefined;
    const handle = await WorkerHandle.spawn(
      {
        backend: config.backend,
        slot,
        workerId,
        modulePath: config.worker,
        config: {
          models: config.models,
          executionProviders: config.executionProviders,
          sessionOptions: config.sessionOptions,
          options: config.workerOptions,
          sessionCacheDir: this.sessionCacheDir,
        },
        execArgv: config.workerExecArgv,
        logLevel: config.logLevel,
        lightGcMinKiB: config.cleanup.lightGcMinKiB,
        // Threads share the process's RSS: the rss rule does not apply to them.
        rssCeilingMiB: config.backend === 'process' ? config.recycle.rssMiB : 0,
        nvmlLibrary: config.backend === 'process' ? this.nvmlLibrary : undefined,
        startTimeoutMs: config.startTimeoutMs,
        gpuIndex: this.gpuOf(slot >= 0 ? slot : workerId),
        oomKills: this.oomKills,
      },
      role,
      this.reports,
      this.runtime,
      (forked) => {
        created = forked;
        heard?.(forked);
        this.unready.add(forked);
        if (this.closing()) forked.kill(POOL_CLOSED);
      },
    ).finally(() => {
      if (created) this.unready.delete(created);
    });
    handle.recycleAfterTasks = drawRecycleAfter(config.recycleEveryTasks, config.recycle.jitter);
    const startMs = performance.now() - started;
    handle.start = startPhasesOf(handle.readyReport?.phases, handle.spawnMs, startMs);
    const rssMiB = await handle.rssMiB();
    handle.readyRssMiB = rssMiB;
    handle.readyAt = Date.now();
    if (this.closing()) {
      await handle.stop(POOL_CLOSED, config.killTimeoutMs);
      throw new SupervisorError(ErrorCode.SHUTTING_DOWN, 'pool closed while a worker was starting');
    }
    this.lastStartMs = startMs;
    events.emit('worker-ready', {
      pid: handle.pid,
      slot,
      startMs: Math.round(startMs),
      rssMiB,
      phases: handle.start,
    });
    return handle;
  }
}
