import { ErrorCode, SupervisorError } from '../protocol/errors.js';
import type { RecycleReason } from '../policy/recycle-policy.js';
import { roundMiB } from '../probes/process-memory.js';
import type { GpuMeter } from '../probes/gpu-meter.js';
import type { SupervisorEvents } from '../events.js';
import {
  describeExit,
  type KillCause,
  type WorkerExit,
  type WorkerHandle,
  type WorkerOutcome,
} from './worker-handle.js';
import { gpuStatsOf, workerStatsOf, type GpuStats, type PoolSize, type WorkerStats } from './pool-stats.js';
import { GpuAccounting } from './gpu-accounting.js';
import { SlotHealth, failedStartOf } from './slot-health.js';
import type { Spares } from './spares.js';
import { IdleWorkers } from './idle-workers.js';
import { Spawner } from './spawner.js';
import { Recycler } from './recycler.js';
import { AfterTask } from './after-task.js';
import type { PoolContext, PoolTally } from './pool-context.js';
import type { Backend } from './runtime/types.js';
import type { PoolOptions } from './pool-options.js';
import { warnThreadLimits } from './thread-warnings.js';

export type { GpuStats, WorkerStats, PoolSize, Backend, PoolOptions };
export { resolvePoolSize } from '../config/pool-size.js';

/**
 * Worker slots, between minWorkers and maxWorkers of them in use. The pool hands idle workers out one
 * task at a time, cleans up and measures after each task, and replaces a worker when the policy says
 * so or when it dies. It knows nothing of ONNX (the worker module does the work) and little of where
 * a worker runs (the runtime adapter behind each WorkerHandle).
 *
 * This class owns the slots and wires the parts together: IdleWorkers (free workers, waiting tasks,
 * idle timers), Spawner (starting workers, and the Spares started ahead of need), Recycler (which
 * workers are replaced, and when), replacement.ts (how), and AfterTask (cleanup and verdict). The
 * parts call back through narrow contexts (pool-context.ts), never through the Pool itself.
 */
export class Pool {
  private readonly slots: Array<WorkerHandle | undefined>;
  private closing = false;
  private readonly health: SlotHealth;
  private readonly spawner: Spawner;
  private readonly spares: Spares;
  private readonly idle: IdleWorkers;
  private readonly recycler: Recycler;
  private readonly afterTask: AfterTask;
  private gpu: GpuAccounting;
  private readonly tally: PoolTally = { recycles: 0, freedMiB: 0 };
  /** Tasks running now: the GPU sampler runs while this is above zero. */
  private running = 0;
  private readonly inUse = (slot: number): boolean => this.slots[slot] !== undefined;

  constructor(
    private readonly options: PoolOptions,
    private readonly events: SupervisorEvents,
  ) {
    this.slots = new Array<WorkerHandle | undefined>(options.maxWorkers).fill(undefined);
    this.health = new SlotHealth(options.maxWorkers, options);
    this.gpu = new GpuAccounting(undefined, options.gpuReclaimTimeoutMs);
    const base: PoolContext = {
      options,
      events,
      tally: this.tally,
      gpu: () => this.gpu,
      closing: () => this.closing,
      offer: (handle) => this.offer(handle),
    };
    this.spawner = new Spawner({
      ...base,
      health: this.health,
      occupy: (slot, handle) => (this.slots[slot] = handle),
      emptySlot: () => this.slots.findIndex((h) => h === undefined),
      starved: () => this.idle.waiting > 0 && this.idle.count === 0,
      onExit: (handle, exit) => this.onExit(handle, exit),
      settleExit: (handle, exit) => this.settleExit(handle, exit),
      startFailed: (slot, message) => this.startFailed(slot, message),
    });
    this.spares = this.spawner.spares;
    this.idle = new IdleWorkers(options, {
      poolSize: () => this.live().length,
      retire: (handle, detail) => void this.recycler.retire(handle, detail),
      recycle: (handle, reason, detail) => this.recycler.recycleIdle(handle, reason, detail),
      releaseSessions: (handle) => void this.afterTask.releaseSessions(handle),
      canTakeAhead: (handle) => this.canTakeAhead(handle),
    });
    this.recycler = new Recycler({
      ...base,
      removeIdle: (handle) => this.idle.remove(handle),
      vacate: (slot) => (this.slots[slot] = undefined),
      takeWarm: (slot) => this.spares.takeWarm(slot),
      install: (handle, slot) => this.spawner.install(handle, slot),
      backoffMs: (slot) => this.health.guard(slot).backoffMs,
      successor: (slot) => this.spawner.successor(slot),
      isIdle: (handle) => this.idle.has(handle),
      idleWorkers: () => this.idle.list(),
      prespawn: (slot) => this.spares.prespawn(slot),
      lastStartMs: () => this.spawner.lastStartMs,
    });
    this.afterTask = new AfterTask({ ...base, recycler: this.recycler });
  }

  /** Set while every slot in use keeps failing to start: the error tasks get instead of waiting. */
  get unavailable(): SupervisorError | undefined {
    return this.health.unavailable(this.inUse);
  }

  /** Records a failed start; on becoming degraded, answers every task waiting for a worker. */
  private startFailed(slot: number, message: string): void {
    const error = this.health.startFailed(slot, message, this.inUse);
    if (!error) return;
    this.events.emit('degraded', { failedStarts: this.health.guard(slot).failedStarts, lastError: message });
    this.idle.rejectWaiters(error);
  }

  get totals(): { recycles: number; freedMiB: number } {
    return { recycles: this.tally.recycles, freedMiB: roundMiB(this.tally.freedMiB) };
  }

  /** The pool's size now and its bounds; `spares`: warm spares ready. */
  get size(): PoolSize {
    const { minWorkers: min, maxWorkers: max, backend } = this.options;
    return { current: this.live().length, min, max, spares: this.spares.warmCount, backend };
  }

  /** Pids of the live worker processes, spares included (the GPU meter matches them with nvidia-smi). */
  get workerPids(): number[] {
    return [...new Set(this.live().map((h) => h.pid))];
  }

  private live(): WorkerHandle[] {
    return this.slots.filter((h): h is WorkerHandle => h !== undefined && h.state !== 'exited');
  }

  /** Starts minWorkers slots and the warm spares; fails (and stops what started) if a worker cannot start. */
  async start(gpu?: GpuMeter): Promise<void> {
    this.gpu = new GpuAccounting(gpu, this.options.gpuReclaimTimeoutMs);
    warnThreadLimits(this.options);
    const initial = Array.from({ length: this.options.minWorkers }, (_, slot) => this.spawner.spawn(slot));
    const results = await Promise.allSettled(initial);
    const failure = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
    if (failure) {
      await this.close();
      throw failure.reason;
    }
    await this.spares.fill();
    for (const result of results) if (result.status === 'fulfilled') this.offer(result.value);
  }

  /**
   * Resolves with a free worker, reserved for the caller, waiting for one if none is. `waitSignal` is
   * asked for only when the caller has to wait: its abort withdraws the caller.
   */
  acquire(waitSignal?: () => AbortSignal): Promise<WorkerHandle> {
    if (this.closing) {
      return Promise.reject(new SupervisorError(ErrorCode.SHUTTING_DOWN, 'supervisor is shutting down'));
    }
    const unavailable = this.unavailable;
    if (unavailable && this.idle.count === 0) return Promise.reject(unavailable);
    const handle = this.idle.take();
    if (handle) return Promise.resolve(handle);
    const waiting = this.idle.wait(waitSignal?.());
    this.spawner.grow();
    return waiting;
  }

  /**
   * Runs one task on `handle` (from `acquire`). Resolves with the worker's answer as soon as it
   * arrives; cleanup, measurement and any recycling happen afterwards, off the answer's path.
   */
  async execute(handle: WorkerHandle, taskId: string, payload: unknown): Promise<WorkerOutcome> {
    this.running++;
    this.recycler.beforeTask(handle);
    this.gpu.sampleWhile(() => this.running > 0 && !this.closing);
    const answered = handle.run(taskId, payload, this.afterTask.inWorker);
    // Room for a task sent ahead? Then the worker reads its next task as soon as it is done with this one.
    this.idle.putAhead(handle);
    const outcome = await answered.finally(() => this.running--);
    if (!outcome.ok && outcome.unsent) {
      this.offer(handle); // the worker never saw the task: nothing to clean up
      return outcome;
    }
    if (!outcome.ok && outcome.requeue) return outcome; // its worker died; its exit refills the slot
    void this.afterTask.run(handle, taskId).catch((error: unknown) => {
      // A failure here is a bug in the pool; make the worker go away rather than reuse it in a doubtful state.
      handle.kill({ reason: 'crash', error: { code: ErrorCode.WORKER_CRASHED, message: String(error) } });
    });
    return outcome;
  }

  /** Returns a worker acquired for a task that was abandoned before it started. */
  giveBack(handle: WorkerHandle): void {
    handle.release();
    this.offer(handle);
  }

  /**
   * May `handle` be sent one more task while it holds others (pipelineDepth)? Only with room, and only
   * while nothing may end it soon: not draining, no recycle asked for, not at its every-n count, not
   * near its RSS ceiling (a verdict is then due before each next task).
   */
  private canTakeAhead(handle: WorkerHandle): boolean {
    const { pipelineDepth, policy } = this.options;
    return (
      handle.load > 0 &&
      handle.load < pipelineDepth &&
      handle.alive &&
      !handle.draining &&
      !this.closing &&
      this.recycler.requested(handle) === undefined &&
      !(policy.recycleEveryTasks > 0 && handle.runs >= handle.recycleAfterTasks) &&
      !this.afterTask.nearCeiling(handle)
    );
  }

  /**
   * A task `handle` holds will not be waited for (timeout, cancel): a running one ends with its worker
   * (the slot is refilled), one sent ahead is skipped by the worker.
   */
  abandon(handle: WorkerHandle, taskId: string, cause: KillCause): void {
    handle.abandon(taskId, cause);
  }

  /**
   * A worker with room for work: recycled once it holds nothing if that was asked for while it ran,
   * else to a task or idle (or, still holding a task, offered for one sent ahead).
   */
  private offer(handle: WorkerHandle): void {
    if (!handle.alive || this.closing) return;
    const requested = this.recycler.requested(handle);
    if (requested || handle.draining) {
      if (handle.load > 0) return; // tasks sent ahead still run; the last one's offer replaces it
      void this.recycler.replace(handle, requested?.reason ?? 'admin', requested?.detail ?? 'requested');
      return;
    }
    if (handle.load === 0) this.idle.put(handle);
    else this.idle.putAhead(handle);
  }

  private onExit(handle: WorkerHandle, exit: WorkerExit): void {
    const spare = this.spares.holds(handle);
    const expected = this.recycler.expected(handle) || this.closing;
    this.events.emit('worker-exit', {
      pid: handle.pid,
      slot: handle.slot,
      code: exit.code,
      signal: exit.signal,
      expected,
    });
    if (!spare && !expected) this.settleExit(handle, exit);
  }

  /** An unexpected exit of the worker serving a slot: count a failed start if it was one, and refill. */
  private settleExit(handle: WorkerHandle, exit: WorkerExit): void {
    if (this.slots[handle.slot] !== handle || this.recycler.expected(handle) || this.closing) return;
    const failed = failedStartOf(handle, exit, this.options.minUptimeMs);
    if (failed) this.startFailed(handle.slot, failed);
    const reason = exit.cause?.reason ?? 'crash';
    void this.recycler.replace(handle, reason, exit.cause?.error.message ?? describeExit(exit));
  }

  /**
   * Recycles every worker (or those of `onlyPid`), one at a time so the others keep serving. A busy
   * worker drains: it finishes its task first. Resolves with the pids replaced once each slot is refilled.
   */
  recycleAll(reason: RecycleReason, onlyPid?: number): Promise<number[]> {
    return this.recycler.recycleAll([...this.slots], reason, onlyPid);
  }

  async stats(): Promise<WorkerStats[]> {
    const meter = this.gpu.meter;
    const snapshot = meter ? await meter.probe.fresh() : undefined;
    const live = this.slots.filter((h): h is WorkerHandle => h !== undefined);
    return Promise.all(live.map((handle) => workerStatsOf(handle, snapshot, meter?.attribution)));
  }

  /** The GPUs as last read, or null on a host without a usable GPU (or with GPU measurement off). */
  gpuStats(): GpuStats | null {
    return this.gpu.meter ? gpuStatsOf(this.gpu.meter) : null;
  }

  /** Stops every worker (gracefully, then SIGKILL after killTimeoutMs) and refuses new work. */
  async close(): Promise<void> {
    this.closing = true;
    const error = new SupervisorError(ErrorCode.SHUTTING_DOWN, 'supervisor is shutting down');
    this.idle.close(error);
    this.recycler.close();
    const cause: KillCause = { reason: 'shutdown', error: error.toJSON() };
    await Promise.all(this.slots.map((handle) => handle?.stop(cause, this.options.killTimeoutMs)));
    // Replacements under way end by themselves once they see `closing` (a starting worker is stopped).
    await this.recycler.settled();
    await this.spares.close(cause);
    await Promise.all(this.slots.map((handle) => handle?.stop(cause, this.options.killTimeoutMs)));
  }
}
