import { setTimeout as sleep } from 'node:timers/promises';
import { ErrorCode, SupervisorError } from '../protocol/errors.js';
import {
  decideAfterTask,
  drawRecycleAfter,
  type RecycleDecision,
  type RecyclePolicyOptions,
  type RecycleReason,
} from '../policy/recycle-policy.js';
import { readRssMiB, roundMiB } from '../probes/process-memory.js';
import type { GpuMeter } from '../probes/gpu-meter.js';
import type { GpuUsage } from '../probes/gpu-attribution.js';
import type { SupervisorEventMap, SupervisorEvents } from '../events.js';
import type { WorkerConfig } from '../worker/types.js';
import {
  WorkerHandle,
  describeExit,
  type KillCause,
  type WorkerExit,
  type WorkerOutcome,
} from './worker-handle.js';
import { CrashLoopGuard } from '../policy/crash-loop.js';
import { gpuStatsOf, workerStatsOf, type GpuStats, type WorkerStats } from './pool-stats.js';

export type { GpuStats, WorkerStats };

export interface PoolOptions {
  size: number;
  modulePath: string;
  workerConfig: WorkerConfig;
  execArgv: readonly string[];
  logLevel: string;
  startTimeoutMs: number;
  killTimeoutMs: number;
  /** What the RecyclePolicy checks after each task (recycleEveryTasks, rssMiB, gpuMiB, maxAgeMs, leak). */
  policy: RecyclePolicyOptions;
  /** Each worker's N is drawn from [N, N + jitter], so workers started together do not recycle together. */
  jitter: number;
  /** Policy recycles (not crashes or timeouts) under way at once, at most. */
  maxConcurrentRecycles: number;
  /** Start a worker's replacement while it runs its last task (every-n), so no task waits for a cold start. */
  prespawn: boolean;
  /** Release an idle worker's cached sessions after this long without a task; 0 = off. */
  idleReleaseMs: number;
  /** Crash-loop protection: a worker dying sooner than this after starting is a failed start. */
  minUptimeMs: number;
  /** Failed starts in a row after which the pool is degraded (new tasks: E_WORKERS_UNAVAILABLE). */
  maxFailedStarts: number;
  cleanup: { afterTask: boolean; force: boolean; measure: boolean; timeoutMs: number };
  /** GPU indexes workers are pinned to, round-robin by slot; empty = not pinned. */
  gpus: readonly number[];
  gpuReclaimTimeoutMs: number;
}

interface Waiter {
  resolve: (handle: WorkerHandle) => void;
  reject: (error: unknown) => void;
}

/** Why a worker started while the pool was closing is stopped. */
const POOL_CLOSED: KillCause = {
  reason: 'shutdown',
  error: { code: ErrorCode.SHUTTING_DOWN, message: 'pool closed' },
};
/** Recycles the policy chose; crashes, timeouts and admin requests are never held back. */
const POLICY_REASONS: ReadonlySet<RecycleReason> = new Set(['every-n', 'rss', 'gpu', 'leak', 'max-age']);

/**
 * A fixed number of worker slots. The pool hands idle workers out one task at a time, cleans up and
 * measures after each task, and replaces a worker when the policy says so or when it dies. It knows
 * nothing of ONNX: the worker module does the work.
 */
export class Pool {
  private readonly slots: Array<WorkerHandle | undefined>;
  private readonly idle: WorkerHandle[] = [];
  private readonly waiters: Waiter[] = [];
  /** Workers the pool is ending on purpose: their exit is expected, their replacement under way. */
  private readonly replacing = new Map<WorkerHandle, Promise<void>>();
  /** Workers to recycle as soon as their current task is done, and who waits for it. */
  private readonly recycleRequested = new Map<
    WorkerHandle,
    { reason: RecycleReason; done: Array<() => void> }
  >();
  private closing = false;
  /** One per slot: a slot's crash loop backs off that slot only; healthy slots keep serving. */
  private readonly crashLoops: CrashLoopGuard[];
  private recycles = 0;
  private freedMiB = 0;
  private gpu: GpuMeter | undefined;
  /** The last worker start, fork to ready (ms): how early a pre-spawned replacement must begin. */
  private lastStartMs = 0;
  /** idleReleaseMs timers of idle workers. */
  private readonly idleTimers = new Map<WorkerHandle, NodeJS.Timeout>();
  /** Replacements started ahead of a due recycle, by slot. */
  private readonly spares = new Map<number, Promise<WorkerHandle | undefined>>();
  /** Tasks running now: the GPU sampler runs while this is above zero. */
  private running = 0;
  /** Recycles under way that the policy decided (bounded by maxConcurrentRecycles). */
  private policyRecycles = 0;
  private sampling = false;

  constructor(
    private readonly options: PoolOptions,
    private readonly events: SupervisorEvents,
  ) {
    this.slots = new Array<WorkerHandle | undefined>(options.size).fill(undefined);
    this.crashLoops = this.slots.map(
      () =>
        new CrashLoopGuard({ minUptimeMs: options.minUptimeMs, maxFailedStarts: options.maxFailedStarts }),
    );
  }

  /**
   * Set while every slot keeps failing to start (no capacity left): the error tasks get instead of
   * waiting. While some slots still serve, tasks just run there.
   */
  get unavailable(): SupervisorError | undefined {
    if (!this.crashLoops.every((guard) => guard.degraded)) return undefined;
    const worst = this.crashLoops.reduce((a, b) => (b.failedStarts > a.failedStarts ? b : a));
    return new SupervisorError(
      ErrorCode.WORKERS_UNAVAILABLE,
      `workers keep failing to start (${worst.failedStarts} in a row); last error: ${worst.lastStartError ?? 'unknown'}`,
    );
  }

  /** Records a failed start; on becoming degraded, answers every task waiting for a worker. */
  private startFailed(slot: number, message: string): void {
    const wasUnavailable = this.unavailable !== undefined;
    this.crashLoops[slot]!.startFailed(message);
    const error = this.unavailable;
    if (!wasUnavailable && error) {
      this.events.emit('degraded', { failedStarts: this.crashLoops[slot]!.failedStarts, lastError: message });
      for (const waiter of this.waiters.splice(0)) waiter.reject(error);
    }
  }

  get totals(): { recycles: number; freedMiB: number } {
    return { recycles: this.recycles, freedMiB: roundMiB(this.freedMiB) };
  }

  /** Pids of the live workers (the GPU meter matches them against nvidia-smi's list). */
  get workerPids(): number[] {
    return this.slots
      .filter((h): h is WorkerHandle => h !== undefined && h.state !== 'exited')
      .map((h) => h.pid);
  }

  /** Starts every slot; fails (and stops what started) if any worker cannot start. */
  async start(gpu?: GpuMeter): Promise<void> {
    this.gpu = gpu;
    const results = await Promise.allSettled(this.slots.map((_, slot) => this.spawn(slot)));
    const failure = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
    if (failure) {
      await this.close();
      throw failure.reason;
    }
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
      this.disarmIdle(handle);
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
    });
  }

  /**
   * Runs one task on `handle` (from `acquire`). Resolves with the worker's answer as soon as it
   * arrives; cleanup, measurement and any recycling happen afterwards, off the answer's path.
   */
  async execute(handle: WorkerHandle, taskId: string, payload: unknown): Promise<WorkerOutcome> {
    this.running++;
    const { policy } = this.options;
    if (
      this.options.prespawn &&
      policy.recycleEveryTasks > 0 &&
      handle.tasksDone + 1 + this.tasksAhead(handle) >= handle.recycleAfterTasks
    ) {
      this.prespawn(handle.slot);
    }
    if (this.gpu && !this.sampling) void this.sampleWhileRunning(this.gpu);
    const outcome = await handle.run(taskId, payload).finally(() => this.running--);
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

  /**
   * GPU readings while tasks run, one at a time and at most one per gpuProbe.minIntervalMs (never per
   * task): the "before" figure of each cleanup is the last of these, so it reflects the task's memory.
   */
  private async sampleWhileRunning(gpu: GpuMeter): Promise<void> {
    this.sampling = true;
    try {
      while (this.running > 0 && !this.closing && gpu.probe.state === 'available') await gpu.refresh();
    } finally {
      this.sampling = false;
    }
  }

  /** Returns a worker acquired for a task that was abandoned before it started. */
  giveBack(handle: WorkerHandle): void {
    handle.release();
    this.offer(handle);
  }

  /** Ends a worker now (timeout, cancel); its task is answered with `cause.error` and its slot refilled. */
  kill(handle: WorkerHandle, cause: KillCause): void {
    handle.kill(cause);
  }

  private async afterTask(handle: WorkerHandle, taskId: string): Promise<void> {
    if (!handle.alive) return; // died or was killed: its exit handler replaces it
    // The last reading taken while this task ran, if any: the GPU "before" of its cleanup.
    const cached = this.gpu?.cached(handle.pid, handle.gpuIndex);
    const gpuBefore = cached && cached.at >= handle.lastRunAt ? cached : undefined;
    const measured = await this.cleanUp(handle, taskId);
    const cleanedAt = { runs: handle.runs, at: Date.now() };
    if (!handle.alive) return;
    if (measured) handle.leak.add(measured.rssAfterMiB);
    const requested = this.recycleRequested.get(handle);
    const decision = requested
      ? { recycle: true as const, reason: requested.reason, detail: 'requested' }
      : this.policyDecision(handle);
    if (decision.recycle) {
      // The recycle line carries the GPU figures of this worker's exit.
      if (measured) this.events.emit('cleanup', measured);
      await this.replace(handle, decision.reason, decision.detail);
      return;
    }
    handle.release();
    this.offer(handle);
    if (measured && this.gpu) void this.measureGpuAfterCleanup(handle, measured, gpuBefore, cleanedAt.runs);
    else if (measured) this.events.emit('cleanup', measured);
  }

  /** The RecyclePolicy's verdict on a worker after a task; deferred while maxConcurrent recycles run. */
  private policyDecision(handle: WorkerHandle): RecycleDecision {
    if (this.policyRecycles >= this.options.maxConcurrentRecycles) return { recycle: false };
    return decideAfterTask(
      {
        tasksDone: handle.tasksDone,
        recycleAfterTasks: handle.recycleAfterTasks,
        rssMiB: handle.lastRssMiB,
        ageMs: Date.now() - handle.startedAt,
        leakMiBPerTask: handle.leak.miBPerTask,
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

  /** In-worker cleanup with the worker's RSS read by the parent before and after. */
  private async cleanUp(
    handle: WorkerHandle,
    taskId: string | undefined,
    mode: 'light' | 'force' | 'idle' = this.options.cleanup.force ? 'force' : 'light',
  ): Promise<SupervisorEventMap['cleanup'] | undefined> {
    const { cleanup } = this.options;
    if (!cleanup.afterTask && mode !== 'idle') return undefined;
    const before = cleanup.measure ? await readRssMiB(handle.pid) : undefined;
    const ms = await handle.cleanup(mode !== 'light', cleanup.timeoutMs);
    const after = cleanup.measure && handle.alive ? await readRssMiB(handle.pid) : undefined;
    if (before === undefined || after === undefined) return undefined;
    handle.lastRssMiB = after;
    const freedMiB = roundMiB(before - after);
    this.freedMiB += Math.max(0, freedMiB);
    return {
      taskId,
      pid: handle.pid,
      mode,
      rssBeforeMiB: before,
      rssAfterMiB: after,
      freedMiB,
      ms: Math.round(ms * 100) / 100,
    };
  }

  /** GPU side of a cleanup, off the worker's path: a reading started after it, then the gpu policy. */
  private async measureGpuAfterCleanup(
    handle: WorkerHandle,
    measured: SupervisorEventMap['cleanup'],
    before: GpuUsage | undefined,
    runsAtCleanup: number,
  ): Promise<void> {
    const after = await this.gpu?.usage(handle.pid, handle.gpuIndex);
    // Figures are logged only when the readings bracket this cleanup: the "after" reading started
    // before the worker's next task did. Under load that is not always so, and a figure that mixes
    // in the next task would be a wrong number, not an approximate one.
    const nextTaskStarted =
      handle.runs > runsAtCleanup + 1 ||
      (handle.runs > runsAtCleanup && handle.lastRunAt <= (after?.at ?? 0));
    if (after && !nextTaskStarted) {
      measured.gpuAfterMiB = after.miB;
      measured.attribution = after.attribution;
      if (before && before.attribution === after.attribution) {
        measured.gpuBeforeMiB = before.miB;
        measured.gpuFreedMiB = roundMiB(before.miB - after.miB);
      }
    }
    this.events.emit('cleanup', measured);
    if (!after || after.attribution !== 'process' || !handle.alive) return;
    const decision = decideAfterTask(
      { tasksDone: 0, gpuMiB: after.miB },
      { recycleEveryTasks: 0, gpuMiB: this.options.policy.gpuMiB ?? 0 },
    );
    if (decision.recycle) this.requestRecycle(handle, decision.reason, decision.detail);
  }

  /** Recycles `handle` now if it is idle, else as soon as its current task is done. */
  private requestRecycle(handle: WorkerHandle, reason: RecycleReason, detail: string): void {
    // A policy recycle like the others: it waits for a maxConcurrent slot (the next task re-checks).
    if (this.policyRecycles >= this.options.maxConcurrentRecycles) return;
    if (this.idle.includes(handle)) void this.replace(handle, reason, detail);
    else if (!this.recycleRequested.has(handle)) this.recycleRequested.set(handle, { reason, done: [] });
  }

  private offer(handle: WorkerHandle): void {
    if (!handle.alive || this.closing) return;
    const requested = this.recycleRequested.get(handle);
    if (requested) {
      void this.replace(handle, requested.reason, 'requested');
      return;
    }
    const waiter = this.waiters.shift();
    if (waiter) {
      handle.reserve();
      waiter.resolve(handle);
    } else {
      this.idle.push(handle);
      this.armIdle(handle);
    }
  }

  private onExit(handle: WorkerHandle, exit: WorkerExit): void {
    const expected = this.replacing.has(handle) || this.closing;
    this.events.emit('worker-exit', {
      pid: handle.pid,
      slot: handle.slot,
      code: exit.code,
      signal: exit.signal,
      expected,
    });
    if (expected || this.slots[handle.slot] !== handle) return;
    const reason = exit.cause?.reason ?? 'crash';
    // Only deaths outside a task count toward a crash loop: one that kills its worker mid-task is
    // answered E_WORKER_CRASHED and is the task's doing (a poison input must not take the pool down).
    if (reason === 'crash' && handle.stateAtExit !== 'busy') {
      const uptimeMs = Date.now() - handle.startedAt;
      if (uptimeMs < this.options.minUptimeMs)
        this.startFailed(
          handle.slot,
          `worker ${handle.pid} ${describeExit(exit)} ${uptimeMs} ms after it started`,
        );
    }
    void this.replace(handle, reason, exit.cause?.error.message ?? describeExit(exit));
  }

  /** Stops `old` (if it still runs) and fills its slot with a fresh worker; one replacement per worker. */
  private replace(old: WorkerHandle, reason: RecycleReason, detail: string): Promise<void> {
    let replacement = this.replacing.get(old);
    if (!replacement) {
      const byPolicy = POLICY_REASONS.has(reason);
      if (byPolicy) this.policyRecycles++;
      replacement = this.doReplace(old, reason, detail).finally(() => {
        if (byPolicy) {
          this.policyRecycles--;
          this.recycleDeferred();
        }
        this.replacing.delete(old);
        for (const done of this.recycleRequested.get(old)?.done ?? []) done();
        this.recycleRequested.delete(old);
      });
      this.replacing.set(old, replacement);
    }
    return replacement;
  }

  private async doReplace(old: WorkerHandle, reason: RecycleReason, detail: string): Promise<void> {
    this.removeIdle(old);
    const started = performance.now();
    const exited = old.state === 'exited';
    const rssBeforeMiB = exited ? old.lastRssMiB : ((await readRssMiB(old.pid)) ?? old.lastRssMiB);
    const gpuBefore = exited
      ? this.gpu?.cached(old.pid, old.gpuIndex)
      : await this.gpu?.usage(old.pid, old.gpuIndex);
    const message = `worker recycled (${reason})`;
    await old.stop(
      { reason, error: { code: ErrorCode.WORKER_CRASHED, message } },
      this.options.killTimeoutMs,
    );
    // Only a process exit certainly returns GPU memory. Wait for the driver before starting the
    // replacement, so a device-level figure is not mixed with the new worker's CUDA context.
    const reclaim =
      this.gpu && gpuBefore
        ? await this.gpu.waitReclaimed(old.pid, old.gpuIndex, gpuBefore, this.options.gpuReclaimTimeoutMs)
        : undefined;
    if (this.closing) return;
    // After a crash loop's failed starts, wait before forking again.
    const backoffMs = this.crashLoops[old.slot]!.backoffMs;
    if (backoffMs > 0) await sleep(backoffMs);
    if (this.closing) return;
    const fresh = await this.successor(old.slot);
    if (!fresh) return;
    const rssAfterMiB = await readRssMiB(fresh.pid);
    const baseline = await this.gpu?.usage(fresh.pid, fresh.gpuIndex);
    const rssFreedMiB =
      rssBeforeMiB !== undefined && rssAfterMiB !== undefined
        ? roundMiB(rssBeforeMiB - rssAfterMiB)
        : undefined;
    this.recycles++;
    if (rssFreedMiB !== undefined) this.freedMiB += Math.max(0, rssFreedMiB);
    const event: SupervisorEventMap['recycle'] = {
      reason,
      detail,
      oldPid: old.pid,
      newPid: fresh.pid,
      tasksDone: old.tasksDone,
      rssBeforeMiB,
      rssAfterMiB,
      rssFreedMiB,
      ms: Math.round(performance.now() - started),
    };
    if (gpuBefore && reclaim) {
      Object.assign(event, {
        gpuBeforeMiB: gpuBefore.miB,
        gpuFreedMiB: reclaim.freedMiB,
        gpuReclaimMs: reclaim.ms,
        gpuReclaimed: reclaim.reclaimed,
        attribution: reclaim.attribution,
      });
    }
    if (baseline) Object.assign(event, { gpuBaselineMiB: baseline.miB, attribution: baseline.attribution });
    this.events.emit('recycle', event);
    this.offer(fresh);
  }

  /**
   * idleReleaseMs: a worker with no task for that long releases its cached sessions (forced cleanup
   * in place): memory back without a restart. Once per idle stretch.
   */
  private armIdle(handle: WorkerHandle): void {
    const ms = this.options.idleReleaseMs;
    if (ms <= 0 || handle.idleReleased) return;
    const timer = setTimeout(() => void this.releaseIdle(handle), ms);
    timer.unref();
    this.idleTimers.set(handle, timer);
  }

  private disarmIdle(handle: WorkerHandle): void {
    clearTimeout(this.idleTimers.get(handle));
    this.idleTimers.delete(handle);
  }

  private async releaseIdle(handle: WorkerHandle): Promise<void> {
    this.idleTimers.delete(handle);
    if (this.closing || !this.idle.includes(handle)) return;
    this.removeIdle(handle);
    handle.reserve();
    const measured = await this.cleanUp(handle, undefined, 'idle');
    if (!handle.alive) return;
    handle.idleReleased = true;
    if (measured) this.events.emit('cleanup', measured);
    handle.release();
    this.offer(handle);
  }

  private removeIdle(handle: WorkerHandle): void {
    this.disarmIdle(handle);
    const index = this.idle.indexOf(handle);
    if (index >= 0) this.idle.splice(index, 1);
  }

  private async spawn(slot: number): Promise<WorkerHandle> {
    return this.install(await this.launch(slot));
  }

  /** Forks a worker for `slot` and waits until it is ready; does not put it in the slot yet. */
  private async launch(slot: number): Promise<WorkerHandle> {
    const started = performance.now();
    const { gpus } = this.options;
    const handle = await WorkerHandle.spawn({
      slot,
      modulePath: this.options.modulePath,
      config: this.options.workerConfig,
      execArgv: this.options.execArgv,
      logLevel: this.options.logLevel,
      startTimeoutMs: this.options.startTimeoutMs,
      gpuIndex: gpus.length > 0 ? gpus[slot % gpus.length] : undefined,
      onTransition: (h, from, to) => {
        if (this.events.listening('transition'))
          this.events.emit('transition', { pid: h.pid, slot: h.slot, from, to });
      },
    });
    const startMs = performance.now() - started;
    const rssMiB = await readRssMiB(handle.pid);
    if (this.closing) {
      // Closed while this worker was starting: stop it rather than leave it running unowned.
      await handle.stop(POOL_CLOSED, this.options.killTimeoutMs);
      throw new SupervisorError(ErrorCode.SHUTTING_DOWN, 'pool closed while a worker was starting');
    }
    this.lastStartMs = startMs;
    this.events.emit('worker-ready', { pid: handle.pid, slot, startMs: Math.round(startMs), rssMiB });
    return handle;
  }

  /**
   * How many tasks before it is due a worker's replacement must start to be ready in time: a cold
   * start (as last measured) over this worker's average task time, capped at half its N.
   */
  private tasksAhead(handle: WorkerHandle): number {
    const taskMs = handle.averageTaskMs;
    if (taskMs === undefined || this.lastStartMs === 0) return 0;
    return Math.min(
      Math.ceil(this.lastStartMs / Math.max(taskMs, 0.1)),
      Math.floor(handle.recycleAfterTasks / 2),
    );
  }

  /** Makes a started worker the one serving its slot. */
  private install(handle: WorkerHandle): WorkerHandle {
    // Up for minUptimeMs: the crash loop, if any, is over.
    setTimeout(() => {
      if (handle.alive) this.crashLoops[handle.slot]!.healthy();
    }, this.options.minUptimeMs).unref();
    this.slots[handle.slot] = handle;
    handle.recycleAfterTasks = drawRecycleAfter(this.options.policy.recycleEveryTasks, this.options.jitter);
    void handle.exited.then((exit) => this.onExit(handle, exit));
    return handle;
  }

  /**
   * Pre-spawn: starts the replacement for `slot` while its worker runs its last task, so the hand-over
   * has no capacity dip (the cost: two processes for that slot for a moment).
   */
  private prespawn(slot: number): void {
    if (this.spares.has(slot) || this.closing) return;
    this.spares.set(
      slot,
      this.launch(slot).catch(() => undefined), // a failed spare is replaced by a normal respawn
    );
  }

  /** The slot's pre-spawned replacement if it started and is alive, else a fresh one (with retries). */
  private async successor(slot: number): Promise<WorkerHandle | undefined> {
    const spare = this.spares.get(slot);
    this.spares.delete(slot);
    const ready = spare ? await spare : undefined;
    if (ready?.alive && this.closing) {
      await ready.stop(POOL_CLOSED, this.options.killTimeoutMs);
      return undefined;
    }
    if (ready?.alive) return this.install(ready);
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
        const retryInMs = this.crashLoops[slot]!.backoffMs;
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
   * Recycles every worker (or the one with `onlyPid`), one at a time so the others keep serving.
   * A busy worker finishes its task first. Resolves with the pids replaced once each slot is refilled.
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
          else this.recycleRequested.set(handle, { reason, done: [done] });
        });
      }
      recycled.push(handle.pid);
    }
    return recycled;
  }

  async stats(): Promise<WorkerStats[]> {
    const snapshot = this.gpu ? await this.gpu.probe.fresh() : undefined;
    const live = this.slots.filter((h): h is WorkerHandle => h !== undefined);
    return Promise.all(live.map((handle) => workerStatsOf(handle, snapshot, this.gpu?.attribution)));
  }

  /** The GPUs as last read, or null on a host without a usable GPU (or with GPU measurement off). */
  gpuStats(): GpuStats | null {
    return this.gpu ? gpuStatsOf(this.gpu) : null;
  }

  /** Stops every worker (gracefully, then SIGKILL after killTimeoutMs) and refuses new work. */
  async close(): Promise<void> {
    this.closing = true;
    const error = new SupervisorError(ErrorCode.SHUTTING_DOWN, 'supervisor is shutting down');
    for (const waiter of this.waiters.splice(0)) waiter.reject(error);
    for (const request of this.recycleRequested.values()) for (const done of request.done) done();
    this.recycleRequested.clear();
    for (const handle of this.idle) this.disarmIdle(handle);
    this.idle.length = 0;
    const cause: KillCause = { reason: 'shutdown', error: error.toJSON() };
    await Promise.all(this.slots.map((handle) => handle?.stop(cause, this.options.killTimeoutMs)));
    // Replacements under way end by themselves once they see `closing` (a starting worker is stopped).
    await Promise.allSettled([...this.replacing.values()]);
    const spares = await Promise.all([...this.spares.values()]);
    this.spares.clear();
    await Promise.all(spares.map((spare) => spare?.stop(cause, this.options.killTimeoutMs)));
    await Promise.all(this.slots.map((handle) => handle?.stop(cause, this.options.killTimeoutMs)));
  }
}
