import { setTimeout as sleep } from 'node:timers/promises';
import { ErrorCode, SupervisorError } from '../protocol/errors.js';
import { drawRecycleAfter } from '../policy/recycle-policy.js';
import { WorkerHandle, type KillCause, type WorkerExit } from './worker-handle.js';
import type { SlotHealth } from './slot-health.js';
import { Spares } from './spares.js';
import type { PoolContext } from './pool-context.js';

/** What the Spawner needs of the pool: its slots, its crash-loop accounting and its exit handler. */
export interface SpawnerContext extends PoolContext {
  readonly health: SlotHealth;
  /** Puts `handle` in `slot` (the worker serving it from now on). */
  occupy(slot: number, handle: WorkerHandle): void;
  /** The first slot no worker serves, or -1. */
  emptySlot(): number;
  /** Do tasks wait with no worker idle? */
  starved(): boolean;
  onExit(handle: WorkerHandle, exit: WorkerExit): void;
  /** Refills the slot of a worker found dead when it was installed (its exit was already reported). */
  settleExit(handle: WorkerHandle, exit: WorkerExit): void;
  /** A failed start of `slot` (crash-loop accounting; may make the pool unavailable). */
  startFailed(slot: number, message: string): void;
}

const POOL_CLOSED: KillCause = {
  reason: 'shutdown',
  error: { code: ErrorCode.SHUTTING_DOWN, message: 'pool closed' },
};

/**
 * How workers come to be: started and waited for until ready, put in a slot with their own recycle
 * N, started again with exponential back-off while starts fail (so a broken worker cannot
 * fork-storm), started in an empty slot while tasks wait (elastic growth), or started ahead of need
 * (Spares). A worker started while the pool closes is stopped rather than left running unowned.
 */
export class Spawner {
  /** The last worker start, fork to ready (ms): how early a pre-spawned replacement must begin. */
  private lastStart = 0;
  private growing = false;
  /** Workers started ahead of need: warm spares and pre-spawned replacements. */
  readonly spares: Spares;

  constructor(private readonly ctx: SpawnerContext) {
    const { options, events } = ctx;
    this.spares = new Spares({
      warm: options.spareWorkers,
      firstSpareId: options.maxWorkers,
      killTimeoutMs: options.killTimeoutMs,
      minUptimeMs: options.minUptimeMs,
      maxFailedStarts: options.maxFailedStarts,
      gpuOfSlot: (slot) => this.gpuOf(slot),
      launch: (slot, workerId) => this.launch(slot, workerId),
      onStartFailed: (message, attempt, retryInMs) =>
        events.emit('worker-start-failed', { slot: -1, message, attempt, retryInMs }),
    });
  }

  get lastStartMs(): number {
    return this.lastStart;
  }

  /** The GPU a slot's workers are pinned to (round-robin); threads share the supervisor's, so none. */
  gpuOf(slot: number): number | undefined {
    const { gpus, backend } = this.ctx.options;
    return gpus.length > 0 && backend === 'process' ? gpus[slot % gpus.length] : undefined;
  }

  /**
   * Elastic pool: tasks wait and no worker is free, so one more worker starts in an empty slot (one
   * start at a time, up to maxWorkers). It is not a recycle: maxConcurrentRecycles does not apply.
   */
  grow(): void {
    if (this.ctx.closing() || this.growing || !this.ctx.starved()) return;
    const slot = this.ctx.emptySlot();
    if (slot < 0) return;
    this.growing = true;
    void this.spawnWithRetry(slot).then((handle) => {
      this.growing = false;
      if (handle) this.ctx.offer(handle);
      this.grow();
    });
  }

  async spawn(slot: number): Promise<WorkerHandle> {
    return this.install(await this.launch(slot, slot), slot);
  }

  /** Starts a worker and waits until it is ready; does not put it in a slot yet. */
  async launch(slot: number, workerId: number): Promise<WorkerHandle> {
    const { options, events } = this.ctx;
    const started = performance.now();
    const handle = await WorkerHandle.spawn({
      backend: options.backend,
      slot,
      workerId,
      modulePath: options.modulePath,
      config: options.workerConfig,
      execArgv: options.execArgv,
      logLevel: options.logLevel,
      lightGcMinKiB: options.cleanup.lightGcMinKiB,
      startTimeoutMs: options.startTimeoutMs,
      gpuIndex: this.gpuOf(slot >= 0 ? slot : workerId),
      onTransition: (h, from, to) => {
        if (events.listening('transition')) events.emit('transition', { pid: h.pid, slot: h.slot, from, to });
      },
    });
    void handle.exited.then((exit) => this.ctx.onExit(handle, exit));
    const startMs = performance.now() - started;
    const rssMiB = await handle.rssMiB();
    if (this.ctx.closing()) {
      // Closed while this worker was starting: stop it rather than leave it running unowned.
      await handle.stop(POOL_CLOSED, options.killTimeoutMs);
      throw new SupervisorError(ErrorCode.SHUTTING_DOWN, 'pool closed while a worker was starting');
    }
    this.lastStart = startMs;
    events.emit('worker-ready', { pid: handle.pid, slot, startMs: Math.round(startMs), rssMiB });
    return handle;
  }

  /** Makes a started worker the one serving `slot`. */
  install(handle: WorkerHandle, slot: number): WorkerHandle {
    const { policy, jitter, minUptimeMs } = this.ctx.options;
    handle.slot = slot;
    // Up for minUptimeMs: the crash loop, if any, is over.
    setTimeout(() => {
      if (handle.alive) this.ctx.health.guard(slot).healthy();
    }, minUptimeMs).unref();
    this.ctx.occupy(slot, handle);
    handle.recycleAfterTasks = drawRecycleAfter(policy.recycleEveryTasks, jitter);
    // It may have died between reporting ready and taking the slot: its exit was seen while the slot
    // was not yet its own, and ignored. Handle it now, or the slot would stay dead with nothing to refill it.
    if (handle.state === 'exited') void handle.exited.then((exit) => this.ctx.settleExit(handle, exit));
    return handle;
  }

  /** The slot's pre-spawned replacement if it started and is alive, else a fresh one (with retries). */
  async successor(slot: number): Promise<WorkerHandle | undefined> {
    const pending = this.spares.takePrespawned(slot);
    const ready = pending ? await pending : undefined;
    if (ready?.alive && this.ctx.closing()) {
      await ready.stop(POOL_CLOSED, this.ctx.options.killTimeoutMs);
      return undefined;
    }
    if (ready?.alive) return this.install(ready, slot);
    return this.spawnWithRetry(slot);
  }

  /** Respawns a slot, backing off exponentially while starts fail, so a broken worker cannot fork-storm. */
  async spawnWithRetry(slot: number): Promise<WorkerHandle | undefined> {
    for (let attempt = 1; !this.ctx.closing(); attempt++) {
      try {
        return await this.spawn(slot);
      } catch (error) {
        if (this.ctx.closing()) return undefined; // stopped by shutdown: not a failed start
        this.ctx.startFailed(slot, (error as Error).message);
        const retryInMs = this.ctx.health.guard(slot).backoffMs;
        this.ctx.events.emit('worker-start-failed', {
          slot,
          message: (error as Error).message,
          attempt,
          retryInMs,
        });
        await sleep(retryInMs);
      }
    }
    return undefined;
  }
}
