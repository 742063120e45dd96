import { setTimeout as sleep } from 'node:timers/promises';
import { ErrorCode, SupervisorError } from '../protocol/errors.js';
import {
  decideAfterTask,
  decideWhenIdle,
  drawRecycleAfter,
  nextIdleCheckMs,
  type IdleFacts,
  type RecycleDecision,
  type RecycleReason,
} from '../policy/recycle-policy.js';
import { tasksAhead } from '../policy/prespawn.js';
import { roundMiB } from '../probes/process-memory.js';
import type { GpuMeter } from '../probes/gpu-meter.js';
import type { SupervisorEvents } from '../events.js';
import {
  WorkerHandle,
  describeExit,
  type KillCause,
  type WorkerExit,
  type WorkerOutcome,
} from './worker-handle.js';
import { gpuStatsOf, workerStatsOf, type GpuStats, type WorkerStats } from './pool-stats.js';
import { GpuAccounting } from './gpu-accounting.js';
import { SlotHealth } from './slot-health.js';
import { IdleTimers } from './idle-timers.js';
import { Spares } from './spares.js';
import { recycleEvent } from './recycle-report.js';
import { measuredCleanup, type CleanupEvent, type CleanupMode } from './cleanup-meter.js';
import type { Backend } from './runtime/types.js';
import type { PoolOptions } from './pool-options.js';
import { warnThreadLimits } from './thread-warnings.js';

export type { GpuStats, WorkerStats, Backend, PoolOptions };
export { resolvePoolSize } from '../config/pool-size.js';

interface Waiter {
  resolve: (handle: WorkerHandle) => void;
  reject: (error: unknown) => void;
}

interface RecycleRequest {
  reason: RecycleReason;
  detail: string;
  done: Array<() => void>;
}

const POOL_CLOSED: KillCause = {
  reason: 'shutdown',
  error: { code: ErrorCode.SHUTTING_DOWN, message: 'pool closed' },
};
/** Recycles the policy chose; crashes, timeouts and admin requests are never held back. */
const POLICY_REASONS: ReadonlySet<RecycleReason> = new Set(['every-n', 'rss', 'gpu', 'leak', 'max-age']);

/**
 * Worker slots, between minWorkers and maxWorkers of them in use. The pool hands idle workers out one
 * task at a time, cleans up and measures after each task, and replaces a worker when the policy says
 * so or when it dies. It knows nothing of ONNX (the worker module does the work) and little of where
 * a worker runs (the runtime adapter behind each WorkerHandle).
 */
/** The pool's current size, its bounds, warm spares, and backend (in stats). */
export interface PoolSize {
  current: number;
  min: number;
  max: number;
  spares: number;
  backend: Backend;
}

export class Pool {
  private readonly slots: Array<WorkerHandle | undefined>;
  private readonly idle: WorkerHandle[] = [];
  private readonly waiters: Waiter[] = [];
  /** Workers the pool is ending on purpose: their exit is expected, their replacement under way. */
  private readonly replacing = new Map<WorkerHandle, Promise<void>>();
  /** Workers to recycle as soon as their current task is done (they are draining), and who waits. */
  private readonly recycleRequested = new Map<WorkerHandle, RecycleRequest>();
  /** Workers whose recycle counts toward maxConcurrentRecycles (from the decision to the hand-over). */
  private readonly policyCommitted = new Set<WorkerHandle>();
  private closing = false;
  private growing = false;
  private readonly health: SlotHealth;
  private readonly spares: Spares;
  private readonly timers: IdleTimers;
  private gpu: GpuAccounting;
  private recycles = 0;
  private freedMiB = 0;
  /** The last worker start, fork to ready (ms): how early a pre-spawned replacement must begin. */
  private lastStartMs = 0;
  /** Tasks running now: the GPU sampler runs while this is above zero. */
  private running = 0;

  constructor(
    private readonly options: PoolOptions,
    private readonly events: SupervisorEvents,
  ) {
    this.slots = new Array<WorkerHandle | undefined>(options.maxWorkers).fill(undefined);
    this.health = new SlotHealth(options.maxWorkers, options);
    this.gpu = new GpuAccounting(undefined, options.gpuReclaimTimeoutMs);
    this.timers = new IdleTimers(
      options.idleReleaseMs,
      (handle) => void this.releaseIdle(handle),
      (handle) => this.checkIdle(handle),
    );
    this.spares = new Spares({
      warm: options.spareWorkers,
      firstSpareId: options.maxWorkers,
      killTimeoutMs: options.killTimeoutMs,
      minUptimeMs: options.minUptimeMs,
      maxFailedStarts: options.maxFailedStarts,
      gpuOfSlot: (slot) => this.gpuOf(slot),
      launch: (slot, workerId) => this.launch(slot, workerId),
      onStartFailed: (message, attempt, retryInMs) =>
        this.events.emit('worker-start-failed', { slot: -1, message, attempt, retryInMs }),
    });
  }

  /** Set while every slot in use keeps failing to start: the error tasks get instead of waiting. */
  get unavailable(): SupervisorError | undefined {
    return this.health.unavailable((slot) => this.slots[slot] !== undefined);
  }

  /** Records a failed start; on becoming degraded, answers every task waiting for a worker. */
  private startFailed(slot: number, message: string): void {
    const wasUnavailable = this.unavailable !== undefined;
    this.health.guard(slot).startFailed(message);
    const error = this.unavailable;
    if (!wasUnavailable && error) {
      this.events.emit('degraded', {
        failedStarts: this.health.guard(slot).failedStarts,
        lastError: message,
      });
      for (const waiter of this.waiters.splice(0)) waiter.reject(error);
    }
  }

  get totals(): { recycles: number; freedMiB: number } {
    return { recycles: this.recycles, freedMiB: roundMiB(this.freedMiB) };
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

  private gpuOf(slot: number): number | undefined {
    const { gpus, backend } = this.options;
    return gpus.length > 0 && backend === 'process' ? gpus[slot % gpus.length] : undefined;
  }

  /** Starts minWorkers slots and the warm spares; fails (and stops what started) if a worker cannot start. */
  async start(gpu?: GpuMeter): Promise<void> {
    this.gpu = new GpuAccounting(gpu, this.options.gpuReclaimTimeoutMs);
    warnThreadLimits(this.options);
    const initial = Array.from({ length: this.options.minWorkers }, (_, slot) => this.spawn(slot));
    const results = await Promise.allSettled(initial);
    const failure = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
    if (failure) {
      await this.close();
      throw failure.reason;
    }
    await this.spares.fill();
    for (const result of results) if (result.status === 'fulfilled') this.offer(result.value);
  }

  /** Resolves with an idle worker, reserved for the caller, waiting for one if all are busy. */
  acquire(signal?: AbortSignal): Promise<WorkerHandle> {
    if (this.closing) {
      return Promise.reject(new SupervisorError(ErrorCode.SHUTTING_DOWN, 'supervisor is shutting down'));
    }
    const unavailable = this.unavailable;
    if (unavailable && this.idle.length === 0) return Promise.reject(unavailable);
    const handle = this.idle.shift();
    if (handle) {
      this.timers.disarm(handle);
      handle.reserve();
      return Promise.resolve(handle);
    }
    return new Promise((resolve, reject) => {
      const waiter: Waiter = { resolve, reject };
      this.waiters.push(waiter);
      signal?.addEventListener(
        'abort',
        () => {
          const index = this.waiters.indexOf(waiter);
          if (index >= 0) this.waiters.splice(index, 1);
          reject(signal.reason);
        },
        { once: true },
      );
      this.grow();
    });
  }

  /**
   * Elastic pool: tasks wait and no worker is free, so one more worker starts in an empty slot (one
   * start at a time, up to maxWorkers). It is not a recycle: maxConcurrentRecycles does not apply.
   */
  private grow(): void {
    if (this.closing || this.growing || this.waiters.length === 0 || this.idle.length > 0) return;
    const slot = this.slots.findIndex((h) => h === undefined);
    if (slot < 0) return;
    this.growing = true;
    void this.spawnWithRetry(slot).then((handle) => {
      this.growing = false;
      if (handle) this.offer(handle);
      this.grow();
    });
  }

  /**
   * Runs one task on `handle` (from `acquire`). Resolves with the worker's answer as soon as it
   * arrives; cleanup, measurement and any recycling happen afterwards, off the answer's path.
   */
  async execute(handle: WorkerHandle, taskId: string, payload: unknown): Promise<WorkerOutcome> {
    this.running++;
    this.beforeTask(handle);
    this.gpu.sampleWhile(() => this.running > 0 && !this.closing);
    const { cleanup } = this.options;
    const afterwards = cleanup.afterTask
      ? { force: cleanup.force, measure: cleanup.measure, timeoutMs: cleanup.timeoutMs }
      : undefined;
    const outcome = await handle.run(taskId, payload, afterwards).finally(() => this.running--);
    if (!outcome.ok && outcome.unsent) {
      this.offer(handle); // the worker never saw the task: nothing to clean up
      return outcome;
    }
    void this.afterTask(handle, taskId).catch((error: unknown) => {
      // A failure here is a bug in the pool; make the worker go away rather than reuse it in a doubtful state.
      handle.kill({ reason: 'crash', error: { code: ErrorCode.WORKER_CRASHED, message: String(error) } });
    });
    return outcome;
  }

  /** every-n is known before the last task starts: pre-spawn its replacement, and drain it. */
  private beforeTask(handle: WorkerHandle): void {
    const { policy, prespawn, spareWorkers, maxConcurrentRecycles } = this.options;
    if (policy.recycleEveryTasks <= 0 || handle.draining) return;
    const next = handle.tasksDone + 1;
    if (
      prespawn &&
      spareWorkers === 0 &&
      next + tasksAhead(this.lastStartMs, handle) >= handle.recycleAfterTasks
    ) {
      this.spares.prespawn(handle.slot);
    }
    if (next < handle.recycleAfterTasks || this.policyCommitted.size >= maxConcurrentRecycles) return;
    const decision = decideAfterTask(
      { tasksDone: next, recycleAfterTasks: handle.recycleAfterTasks },
      policy,
    );
    if (decision.recycle) this.requestRecycle(handle, decision.reason, decision.detail);
  }

  /** Returns a worker acquired for a task that was abandoned before it started. */
  giveBack(handle: WorkerHandle): void {
    if (!handle.draining) handle.release();
    this.offer(handle);
  }

  /** Ends a worker now (timeout, cancel); its task is answered with `cause.error` and its slot refilled. */
  kill(handle: WorkerHandle, cause: KillCause): void {
    handle.kill(cause);
  }

  private async afterTask(handle: WorkerHandle, taskId: string): Promise<void> {
    if (!handle.alive) return; // died or was killed: its exit handler replaces it
    const gpuBefore = this.gpu.readingDuringTask(handle);
    const measured = await this.cleanUp(handle, taskId);
    const runsAtCleanup = handle.runs;
    if (!handle.alive) return;
    if (measured && handle.memoryScope === 'worker') handle.leak.add(measured.rssAfterMiB);
    const requested = this.recycleRequested.get(handle);
    const decision = requested
      ? { recycle: true as const, reason: requested.reason, detail: requested.detail }
      : this.policyDecision(handle);
    if (decision.recycle) {
      // The recycle line carries the GPU figures of this worker's exit.
      if (measured) this.events.emit('cleanup', measured);
      await this.replace(handle, decision.reason, decision.detail);
      return;
    }
    handle.release();
    this.offer(handle);
    if (measured && this.gpu.meter && handle.backend === 'process') {
      void this.gpuAfterCleanup(handle, measured, gpuBefore, runsAtCleanup);
    } else if (measured) this.events.emit('cleanup', measured);
  }

  private async gpuAfterCleanup(
    handle: WorkerHandle,
    measured: CleanupEvent,
    before: ReturnType<GpuAccounting['readingDuringTask']>,
    runsAtCleanup: number,
  ): Promise<void> {
    const gpuMiB = this.options.policy.gpuMiB ?? 0;
    const decision = await this.gpu.afterCleanup(handle, measured, before, runsAtCleanup, gpuMiB);
    this.events.emit('cleanup', measured);
    if (decision.recycle) this.requestRecycle(handle, decision.reason, decision.detail);
  }

  /**
   * The RecyclePolicy's verdict on a worker after a task; deferred while maxConcurrent recycles run.
   * A thread has no RSS of its own (only the process's), so the rss and leak rules do not apply to it.
   */
  private policyDecision(handle: WorkerHandle): RecycleDecision {
    if (this.policyCommitted.size >= this.options.maxConcurrentRecycles) return { recycle: false };
    const own = handle.memoryScope === 'worker';
    return decideAfterTask(
      {
        tasksDone: handle.tasksDone,
        recycleAfterTasks: handle.recycleAfterTasks,
        rssMiB: own ? handle.lastRssMiB : undefined,
        ageMs: Date.now() - handle.startedAt,
        leakMiBPerTask: own ? handle.leak.miBPerTask : undefined,
      },
      this.options.policy,
    );
  }

  /** Idle workers whose recycle waited for a free maxConcurrent slot: the next one goes now. */
  private recycleDeferred(): void {
    if (this.closing) return;
    for (const handle of [...this.idle]) {
      const decision = this.policyDecision(handle);
      if (decision.recycle) {
        void this.replace(handle, decision.reason, decision.detail);
        return;
      }
    }
  }

  private cleanUp(
    handle: WorkerHandle,
    taskId: string | undefined,
    mode: CleanupMode = this.options.cleanup.force ? 'force' : 'light',
  ): Promise<CleanupEvent | undefined> {
    const { cleanup } = this.options;
    if (!cleanup.afterTask && mode !== 'idle') return Promise.resolve(undefined);
    return measuredCleanup(handle, taskId, mode, cleanup).then((measured) => {
      if (measured && handle.memoryScope === 'worker') this.freedMiB += Math.max(0, measured.freedMiB);
      return measured;
    });
  }

  /**
   * Recycles `handle` now if it is idle, else drains it: it finishes what it runs and gets nothing
   * more. A policy recycle waits for a maxConcurrent slot (the next task re-checks).
   */
  private requestRecycle(handle: WorkerHandle, reason: RecycleReason, detail: string): void {
    if (POLICY_REASONS.has(reason) && this.policyCommitted.size >= this.options.maxConcurrentRecycles) return;
    if (this.idle.includes(handle)) {
      void this.replace(handle, reason, detail);
    } else if (!this.recycleRequested.has(handle)) {
      if (POLICY_REASONS.has(reason)) this.policyCommitted.add(handle);
      this.recycleRequested.set(handle, { reason, detail, done: [] });
      handle.drain();
    }
  }

  private offer(handle: WorkerHandle): void {
    if (!handle.alive || this.closing) return;
    const requested = this.recycleRequested.get(handle);
    if (requested || handle.draining) {
      void this.replace(handle, requested?.reason ?? 'admin', requested?.detail ?? 'requested');
      return;
    }
    const waiter = this.waiters.shift();
    if (waiter) {
      handle.reserve();
      waiter.resolve(handle);
    } else {
      this.idle.push(handle);
      this.timers.arm(handle, nextIdleCheckMs(this.idleFacts(handle), this.idlePolicy()));
    }
  }

  private idleFacts(handle: WorkerHandle): IdleFacts {
    const now = Date.now();
    return {
      ageMs: now - handle.startedAt,
      idleMs: now - handle.idleSince,
      poolSize: this.live().length,
      minWorkers: this.options.minWorkers,
    };
  }

  private idlePolicy(): { maxAgeMs: number; idleTimeoutMs: number } {
    return { maxAgeMs: this.options.policy.maxAgeMs ?? 0, idleTimeoutMs: this.options.idleTimeoutMs };
  }

  /** The timer of an idle worker: the RecyclePolicy's idle decision (idle timeout, max-age). */
  private checkIdle(handle: WorkerHandle): void {
    if (this.closing || !this.idle.includes(handle)) return;
    const facts = this.idleFacts(handle);
    const decision = decideWhenIdle(facts, this.idlePolicy());
    if (decision.recycle && decision.reason === 'idle') {
      void this.retire(handle, decision.detail);
    } else if (decision.recycle) {
      // max-age: a policy recycle; without a free maxConcurrent slot, recycleDeferred takes it later.
      if (this.policyCommitted.size < this.options.maxConcurrentRecycles)
        void this.replace(handle, decision.reason, decision.detail);
    } else {
      this.timers.armPolicy(handle, nextIdleCheckMs(facts, this.idlePolicy()));
    }
  }

  /** Shrinks the pool: an idle worker above minWorkers exits and its slot stays empty. */
  private retire(handle: WorkerHandle, detail: string): Promise<void> {
    this.removeIdle(handle);
    this.slots[handle.slot] = undefined;
    handle.drain();
    const started = performance.now();
    const done = (async () => {
      const rssBeforeMiB = (await handle.rssMiB()) ?? handle.lastRssMiB;
      const message = 'worker retired (idle)';
      await handle.stop(
        { reason: 'idle', error: { code: ErrorCode.WORKER_CRASHED, message } },
        this.options.killTimeoutMs,
      );
      const event = recycleEvent(handle, undefined, {
        reason: 'idle',
        detail,
        rssBeforeMiB,
        rssAfterMiB: undefined,
        started,
        handedOver: false,
      });
      if (event.rssFreedMiB !== undefined) this.freedMiB += event.rssFreedMiB;
      this.events.emit('recycle', event);
    })().finally(() => this.replacing.delete(handle));
    this.replacing.set(handle, done);
    return done;
  }

  private onExit(handle: WorkerHandle, exit: WorkerExit): void {
    const spare = this.spares.holds(handle);
    const expected = this.replacing.has(handle) || this.closing;
    this.events.emit('worker-exit', {
      pid: handle.pid,
      slot: handle.slot,
      code: exit.code,
      signal: exit.signal,
      expected,
    });
    if (spare || expected || this.slots[handle.slot] !== handle) return;
    const reason = exit.cause?.reason ?? 'crash';
    // Only deaths outside a task count toward a crash loop: one that kills its worker mid-task is
    // answered E_WORKER_CRASHED and is the task's doing (a poison input must not take the pool down).
    const midTask = handle.stateAtExit === 'busy' || handle.stateAtExit === 'draining';
    if (reason === 'crash' && !midTask) {
      const uptimeMs = Date.now() - handle.startedAt;
      if (uptimeMs < this.options.minUptimeMs)
        this.startFailed(
          handle.slot,
          `worker ${handle.describe()} ${describeExit(exit)} ${uptimeMs} ms after it started`,
        );
    }
    void this.replace(handle, reason, exit.cause?.error.message ?? describeExit(exit));
  }

  /** Stops `old` (if it still runs) and fills its slot with a fresh worker; one replacement per worker. */
  private replace(old: WorkerHandle, reason: RecycleReason, detail: string): Promise<void> {
    let replacement = this.replacing.get(old);
    if (!replacement) {
      if (POLICY_REASONS.has(reason)) this.policyCommitted.add(old);
      replacement = this.doReplace(old, reason, detail).finally(() => {
        this.replacing.delete(old);
        for (const done of this.recycleRequested.get(old)?.done ?? []) done();
        this.recycleRequested.delete(old);
        if (this.policyCommitted.delete(old)) this.recycleDeferred();
      });
      this.replacing.set(old, replacement);
    }
    return replacement;
  }

  private async doReplace(old: WorkerHandle, reason: RecycleReason, detail: string): Promise<void> {
    this.removeIdle(old);
    old.drain();
    const started = performance.now();
    const rssBeforeMiB = old.state === 'exited' ? old.lastRssMiB : ((await old.rssMiB()) ?? old.lastRssMiB);
    const gpuBefore = await this.gpu.beforeStop(old);
    // A warm spare takes the slot before the old worker is even stopped: no task waits for anything.
    let fresh = this.closing ? undefined : this.spares.takeWarm(old.slot);
    const handedOver = fresh !== undefined;
    if (fresh) this.offer(this.install(fresh, old.slot));
    const message = `worker recycled (${reason})`;
    await old.stop(
      { reason, error: { code: ErrorCode.WORKER_CRASHED, message } },
      this.options.killTimeoutMs,
    );
    // Without a spare, wait for the driver to take the old worker's GPU memory back before starting its
    // replacement, so a device-level figure is not mixed with the new worker's CUDA context.
    const reclaim = await this.gpu.reclaimed(old, gpuBefore);
    if (this.closing) return;
    if (!fresh) {
      // After a crash loop's failed starts, wait before starting again.
      const backoffMs = this.health.guard(old.slot).backoffMs;
      if (backoffMs > 0) await sleep(backoffMs);
      if (this.closing) return;
      fresh = await this.successor(old.slot);
      if (!fresh) return;
    }
    const rssAfterMiB = await fresh.rssMiB();
    const event = recycleEvent(old, fresh, {
      reason,
      detail,
      rssBeforeMiB,
      rssAfterMiB,
      started,
      handedOver,
    });
    Object.assign(event, await this.gpu.recycleFigures(fresh, gpuBefore, reclaim));
    this.recycles++;
    if (fresh.memoryScope === 'worker' && event.rssFreedMiB !== undefined)
      this.freedMiB += Math.max(0, event.rssFreedMiB);
    this.events.emit('recycle', event);
    if (!handedOver) this.offer(fresh);
  }

  /** idleReleaseMs: release an idle worker's cached sessions in place (memory back without a restart). */
  private async releaseIdle(handle: WorkerHandle): Promise<void> {
    if (this.closing || !this.idle.includes(handle)) return;
    this.removeIdle(handle);
    handle.reserve();
    const measured = await this.cleanUp(handle, undefined, 'idle');
    if (!handle.alive) return;
    handle.idleReleased = true;
    if (measured) this.events.emit('cleanup', measured);
    if (!handle.draining) handle.release();
    this.offer(handle);
  }

  private removeIdle(handle: WorkerHandle): void {
    this.timers.disarm(handle);
    const index = this.idle.indexOf(handle);
    if (index >= 0) this.idle.splice(index, 1);
  }

  private async spawn(slot: number): Promise<WorkerHandle> {
    return this.install(await this.launch(slot, slot), slot);
  }

  /** Starts a worker and waits until it is ready; does not put it in a slot yet. */
  private async launch(slot: number, workerId: number): Promise<WorkerHandle> {
    const started = performance.now();
    const handle = await WorkerHandle.spawn({
      backend: this.options.backend,
      slot,
      workerId,
      modulePath: this.options.modulePath,
      config: this.options.workerConfig,
      execArgv: this.options.execArgv,
      logLevel: this.options.logLevel,
      lightGcMinKiB: this.options.cleanup.lightGcMinKiB,
      startTimeoutMs: this.options.startTimeoutMs,
      gpuIndex: this.gpuOf(slot >= 0 ? slot : workerId),
      onTransition: (h, from, to) => {
        if (this.events.listening('transition'))
          this.events.emit('transition', { pid: h.pid, slot: h.slot, from, to });
      },
    });
    void handle.exited.then((exit) => this.onExit(handle, exit));
    const startMs = performance.now() - started;
    const rssMiB = await handle.rssMiB();
    if (this.closing) {
      // Closed while this worker was starting: stop it rather than leave it running unowned.
      await handle.stop(POOL_CLOSED, this.options.killTimeoutMs);
      throw new SupervisorError(ErrorCode.SHUTTING_DOWN, 'pool closed while a worker was starting');
    }
    this.lastStartMs = startMs;
    this.events.emit('worker-ready', { pid: handle.pid, slot, startMs: Math.round(startMs), rssMiB });
    return handle;
  }

  /** Makes a started worker the one serving `slot`. */
  private install(handle: WorkerHandle, slot: number): WorkerHandle {
    handle.slot = slot;
    // Up for minUptimeMs: the crash loop, if any, is over.
    setTimeout(() => {
      if (handle.alive) this.health.guard(slot).healthy();
    }, this.options.minUptimeMs).unref();
    this.slots[slot] = handle;
    handle.recycleAfterTasks = drawRecycleAfter(this.options.policy.recycleEveryTasks, this.options.jitter);
    return handle;
  }

  /** The slot's pre-spawned replacement if it started and is alive, else a fresh one (with retries). */
  private async successor(slot: number): Promise<WorkerHandle | undefined> {
    const pending = this.spares.takePrespawned(slot);
    const ready = pending ? await pending : undefined;
    if (ready?.alive && this.closing) {
      await ready.stop(POOL_CLOSED, this.options.killTimeoutMs);
      return undefined;
    }
    if (ready?.alive) return this.install(ready, slot);
    return this.spawnWithRetry(slot);
  }

  /** Respawns a slot, backing off exponentially while starts fail, so a broken worker cannot fork-storm. */
  private async spawnWithRetry(slot: number): Promise<WorkerHandle | undefined> {
    for (let attempt = 1; !this.closing; attempt++) {
      try {
        return await this.spawn(slot);
      } catch (error) {
        if (this.closing) return undefined; // stopped by shutdown: not a failed start
        this.startFailed(slot, (error as Error).message);
        const retryInMs = this.health.guard(slot).backoffMs;
        this.events.emit('worker-start-failed', {
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

  /**
   * Recycles every worker (or those of `onlyPid`), one at a time so the others keep serving. A busy
   * worker drains: it finishes its task first. Resolves with the pids replaced once each slot is refilled.
   */
  async recycleAll(reason: RecycleReason, onlyPid?: number): Promise<number[]> {
    const recycled: number[] = [];
    for (const handle of [...this.slots]) {
      if (!handle || this.closing) continue;
      if (onlyPid !== undefined && handle.pid !== onlyPid) continue;
      const underway = this.replacing.get(handle);
      if (underway) {
        await underway; // already being replaced: its fresh successor satisfies the request
      } else if (!handle.alive) {
        continue;
      } else if (this.idle.includes(handle)) {
        await this.replace(handle, reason, 'requested');
      } else {
        await new Promise<void>((done) => {
          const request = this.recycleRequested.get(handle);
          if (request) request.done.push(done);
          else {
            this.recycleRequested.set(handle, { reason, detail: 'requested', done: [done] });
            handle.drain();
          }
        });
      }
      recycled.push(handle.pid);
    }
    return recycled;
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
    for (const waiter of this.waiters.splice(0)) waiter.reject(error);
    for (const request of this.recycleRequested.values()) for (const done of request.done) done();
    this.recycleRequested.clear();
    this.timers.clear();
    this.idle.length = 0;
    const cause: KillCause = { reason: 'shutdown', error: error.toJSON() };
    await Promise.all(this.slots.map((handle) => handle?.stop(cause, this.options.killTimeoutMs)));
    // Replacements under way end by themselves once they see `closing` (a starting worker is stopped).
    await Promise.allSettled([...this.replacing.values()]);
    await this.spares.close(cause);
    await Promise.all(this.slots.map((handle) => handle?.stop(cause, this.options.killTimeoutMs)));
  }
}
