import { setTimeout as sleep } from 'node:timers/promises';
import { ErrorCode, SupervisorError } from '../protocol/errors.js';
import { Admission, killedFromOutside } from '../core/admission.js';
import { CrashLoopGuard } from '../core/crash-loop.js';
import { limitMessage, overLimit, type LimitReading } from '../core/hard-limits.js';
import {
  acceptsTasks,
  heldBy,
  cleaningOf,
  isSpent,
  step,
  type DrainCause,
  type LifeEvent,
} from '../core/life.js';
import {
  prespawnVerdict,
  successorWhileDraining,
  type PrespawnDeferral,
  type PrespawnVerdict,
} from '../core/prespawn.js';
import { nextIdleCheckMs, type RecycleReason } from '../core/recycle-policy.js';
import { cleansUpAfter } from '../core/cleanup-cadence.js';
import { TaskQueue, retryVerdict } from '../core/task-queue.js';
import {
  decide,
  isPreventive,
  nearCeiling,
  type Moment,
  type VerdictOptions,
  type WorkerFacts,
} from '../core/verdict.js';
import { CgroupOomCounter } from '../probes/cgroup-oom.js';
import { roundMiB } from '../probes/process-memory.js';
import type { GpuMeter } from '../probes/gpu-meter.js';
import { CpuIdleProbe } from '../probes/cpu-idle.js';
import { MemAvailableReader } from '../probes/host-memory.js';
import type { SupervisorEvents, SupervisorEventMap } from '../events.js';
import { cleanupEvent, type CleanupEvent } from './cleanup-meter.js';
import { GpuAccounting } from './gpu-accounting.js';
import { IdleTimers } from './idle-timers.js';
import { LimitWatch } from './limit-watch.js';
import { planOf, type PoolConfig, type PoolPlan } from './pool-config.js';
import { releaseMeasured, type InPlaceRelease } from './session-release.js';
import type { PoolOutcome, PoolTask } from './pool-task.js';
import { gpuStatsOf, workerStatsOf, type GpuStats, type PoolSize, type WorkerStats } from './pool-stats.js';
import { handOver, retire, type HandOverParts } from './slot-replacement.js';
import type { SlotView } from './slot-view.js';
import { warnThreadLimits, type Warn } from './thread-warnings.js';
import type { AfterTaskCleanup, CleanupReport, WorkerExit, WorkerOutcome } from './worker-handle.js';
import { describeExit, type WorkerHandle } from './worker-handle.js';
import { StartError } from './worker-ready.js';
import { POOL_CLOSED, WorkerStarts, type RuntimeStarter } from './worker-starts.js';

export type { GpuStats, PoolSize, SlotView, WorkerStats };

type Handle = WorkerHandle;

const SHUTTING_DOWN = (): SupervisorError =>
  new SupervisorError(ErrorCode.SHUTTING_DOWN, 'supervisor is shutting down');

/**
 * The only owner of the pool's mutable state: the one queue tasks wait in, the workers serving slots,
 * warm spares and pre-spawned successors, the replacements under way. Workers report what happened
 * (an answer, a cleanup, an exit); the pure core decides what follows (core/verdict.ts for every
 * verdict on a worker, core/life.ts for its state, core/admission.ts for who may start); this class
 * carries it out and emits the events. It knows nothing of ONNX, and of where a worker runs only
 * through its runtime adapter.
 */
export class Scheduler {
  private readonly plan: PoolPlan;
  private readonly verdictOptions: VerdictOptions;
  /** The verdict's options for "near the RSS ceiling" over a cleanup's tasks, when that is asked. */
  private readonly cleanupCeiling: VerdictOptions | undefined;
  private readonly queue = new TaskQueue<PoolTask>();
  private readonly slots: Array<Handle | undefined>;
  /** Slots with a start under way (first start, growth, refill after a replacement failed to start). */
  private readonly starting = new Set<number>();
  private readonly spares: Handle[] = [];
  private sparesStarting = 0;
  private nextSpareId: number;
  private readonly spareGuard: CrashLoopGuard;
  /** Pre-spawned successors by slot, started while its worker runs its last tasks. */
  private readonly successors = new Map<number, Promise<Handle | undefined>>();
  /** Those successors that are ready: one takes its slot at once, while its predecessor drains. */
  private readonly readySuccessors = new Map<number, Handle>();
  /** Successor starts that gave no worker (it failed or was killed starting): the slot view says so. */
  private readonly failedSuccessors = new WeakSet<Promise<Handle | undefined>>();
  /** Which start each successor came from: only the slot's own successor leaves its place on exit. */
  private readonly successorStarts = new WeakMap<Handle, Promise<Handle | undefined>>();
  /** Who waits for a draining worker to finish what it holds (an early hand-over). */
  private readonly spentWaiters = new Map<Handle, Array<() => void>>();
  /** Workers whose replacement is under way, and who waits for it (admin recycles). */
  private readonly replacing = new Map<Handle, Promise<void>>();
  private readonly waiters = new Map<Handle, Array<() => void>>();
  /** Workers whose successor (or spare refill) was held back, and why: the recycle line says so. */
  private readonly deferrals = new Map<Handle, PrespawnDeferral>();
  /** Idle cores, for recycle.prespawn 'auto' (read only while a pre-spawn is wanted). */
  private readonly cpu: CpuIdleProbe | undefined;
  private readonly memAvailable: MemAvailableReader;
  private readonly admission: Admission<Handle>;
  private readonly starts: WorkerStarts;
  private readonly timers: IdleTimers;
  /** The hard limits' readings of workers that hold tasks (limits.*). */
  private readonly watch: LimitWatch;
  /** The cgroup's oom_kill count: tells a kernel OOM kill from any other SIGKILL. */
  private readonly oom = CgroupOomCounter.open();
  private readonly inWorker: AfterTaskCleanup | undefined;
  /** Tasks sent with a cleanup after them (cleanup.everyTasks: every N-th a worker is sent). */
  private readonly cleanupAfter = new WeakSet<PoolTask>();
  private gpu: GpuAccounting;
  private closing = false;
  /** Why tasks are refused now (every slot fails to start by its own doing), once said. */
  private unavailableReason: string | undefined;
  /** Tasks held by workers now: the GPU sampler runs while this is above zero. */
  private held = 0;
  private pumping = false;
  private pumpAgain = false;
  private growing = false;
  private readonly tally = { recycles: 0, freedMiB: 0 };

  constructor(
    private readonly config: PoolConfig,
    private readonly events: SupervisorEvents,
    private readonly deps: {
      warn?: Warn;
      /** Where workers run instead of real processes or threads (tests: FakeWorkers). */
      runtime?: RuntimeStarter;
      /** How a crash-loop back-off waits (tests make it instant). */
      sleep?: (ms: number) => Promise<unknown>;
      /** Where meminfo and stat are read for the pre-spawn budget (tests: a stand-in for /proc). */
      procRoot?: string;
    } = {},
  ) {
    this.plan = planOf(config);
    this.verdictOptions = { ...this.plan, idleTimeoutMs: config.idleTimeoutMs };
    const { everyTasks } = config.cleanup;
    // Within reach of its RSS ceiling by the measured trend over the tasks one cleanup would cover:
    // then every task is measured (cleanup.everyTasks gives way), so the ceiling is crossed by one task
    // at most. Only asked when a cleanup covers several tasks and there is a ceiling.
    this.cleanupCeiling =
      everyTasks > 1 && config.recycle.rssMiB > 0
        ? { ...this.verdictOptions, pipelineDepth: this.verdictOptions.pipelineDepth + everyTasks - 1 }
        : undefined;
    const { maxWorkers } = this.plan;
    this.slots = new Array<Handle | undefined>(maxWorkers).fill(undefined);
    this.nextSpareId = maxWorkers;
    this.admission = new Admission({
      slots: maxWorkers,
      maxConcurrent: config.recycle.maxConcurrent,
      minUptimeMs: config.minUptimeMs,
      maxFailedStarts: config.maxFailedStarts,
    });
    this.spareGuard = new CrashLoopGuard({
      minUptimeMs: config.minUptimeMs,
      maxFailedStarts: config.maxFailedStarts,
    });
    this.gpu = new GpuAccounting(undefined, config.gpuProbe.reclaimTimeoutMs);
    this.cpu = config.recycle.prespawn === 'auto' ? new CpuIdleProbe(deps.procRoot) : undefined;
    this.memAvailable = new MemAvailableReader(deps.procRoot);
    this.starts = new WorkerStarts(
      config,
      events,
      {
        // The scheduler sends nothing but PoolTasks, so what comes back is one.
        ended: (handle, task, outcome) => this.ended(handle, task as PoolTask, outcome),
        cleaned: (handle, report, taskId) => this.cleaned(handle, report, taskId),
        exited: (handle, exit) => this.exited(handle, exit),
      },
      () => this.closing,
      deps.runtime,
      () => this.oom.read(),
    );
    this.watch = new LimitWatch(
      config.limits,
      () => this.gpu.meter,
      (handle, reading) => this.limitReading(handle, reading),
    );
    this.timers = new IdleTimers(
      config.idleReleaseMs,
      (handle) => this.releaseSessions(handle),
      (handle) => this.review(handle, 'idle'),
    );
    const { cleanup } = config;
    this.inWorker = cleanup.afterTask
      ? { force: cleanup.force, measure: cleanup.measure, timeoutMs: cleanup.timeoutMs }
      : undefined;
  }

  // ---- the pool's face ------------------------------------------------------------------------

  /** Starts minWorkers slots and the warm spares; fails (and stops what started) if a worker cannot start. */
  async start(gpu?: GpuMeter): Promise<void> {
    this.gpu = new GpuAccounting(gpu, this.config.gpuProbe.reclaimTimeoutMs);
    if (gpu?.probe.readsPerCleanup) this.starts.nvmlLibrary = this.config.gpuProbe.nvmlLibrary;
    warnThreadLimits(this.config, this.deps.warn);
    // The baseline of the first idle-core figure.
    this.cpu?.idleCores();
    const first = Array.from({ length: this.plan.minWorkers }, (_, slot) => {
      this.starting.add(slot);
      return this.starts.launch(slot, slot, 'slot');
    });
    const results = await Promise.allSettled(first);
    // A slot stays marked as starting until its worker sits in it: nothing else may start one there.
    for (const r of results) if (r.status === 'fulfilled') this.slots[r.value.slot] = r.value;
    for (let slot = 0; slot < first.length; slot++) this.starting.delete(slot);
    const failure = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
    if (failure) {
      await this.close();
      throw failure.reason;
    }
    const first_ = results.map((r) => (r as PromiseFulfilledResult<Handle>).value);
    await this.fillSpares();
    if (this.closing) {
      // Shut down while the workers or the spares started: close() may have run before they sat in
      // their slots, so they are stopped here too (stopping one already stopped waits for its exit).
      await Promise.all(first_.map((handle) => handle.stop(POOL_CLOSED, this.config.killTimeoutMs)));
      throw new SupervisorError(ErrorCode.SHUTTING_DOWN, 'pool closed while starting');
    }
    // One that died while the spares started is being replaced already (or was): it is not installed.
    // One that died before it sat in its slot was not seen as serving: install() refills its slot.
    for (const handle of first_)
      if (this.slots[handle.slot] === handle && !this.replacing.has(handle))
        this.install(handle, handle.slot);
    this.pump();
  }

  /** Queues a task; its one answer comes through `task.finish`. */
  submit(task: PoolTask): void {
    if (this.closing) return task.finish({ ok: false, error: SHUTTING_DOWN().toJSON() });
    if (this.unavailableReason !== undefined && !this.anyServing()) {
      return task.finish({ ok: false, error: this.unavailableError().toJSON() });
    }
    this.queue.push(task);
    this.pump();
  }

  /** Tasks waiting for a worker. */
  get queued(): number {
    return this.queue.size;
  }

  /**
   * A task that will not be waited for (its deadline passed, it was cancelled): withdrawn from the
   * queue, or ended where it is held (a running one ends with its worker, one sent ahead is skipped).
   */
  abandon(task: PoolTask, cause: { reason: RecycleReason; error: { code: string; message: string } }): void {
    if (this.queue.remove(task)) return;
    if (task.holder?.holds(task.id)) task.holder.abandon(task.id, cause);
  }

  get unavailable(): SupervisorError | undefined {
    return this.unavailableReason !== undefined && !this.anyServing() ? this.unavailableError() : undefined;
  }

  get totals(): { recycles: number; freedMiB: number } {
    return { recycles: this.tally.recycles, freedMiB: roundMiB(this.tally.freedMiB) };
  }

  get size(): PoolSize {
    const { minWorkers: min, maxWorkers: max } = this.plan;
    return {
      current: this.live().length,
      min,
      max,
      spares: this.spares.length,
      backend: this.config.backend,
    };
  }

  /** Pids of the live worker processes, spares included (the GPU meter matches them with nvidia-smi). */
  get workerPids(): number[] {
    return [...new Set([...this.live(), ...this.spares].map((h) => h.pid))];
  }

  async stats(): Promise<WorkerStats[]> {
    const meter = this.gpu.meter;
    const snapshot = meter ? await meter.probe.fresh() : undefined;
    const shown = this.slots.filter((h): h is Handle => h !== undefined);
    return Promise.all(shown.map((handle) => workerStatsOf(handle, snapshot, meter?.attribution)));
  }

  /**
   * The worker serving `slot` releases `model`'s session in place and collects (admin clear-cache
   * { model, mode: 'light' }): no kill. Its RSS and GPU before and after; undefined if the slot has
   * no live worker or it exits first.
   */
  releaseSession(slot: number, model: string): Promise<InPlaceRelease | undefined> {
    const handle = this.slots[slot];
    if (!handle?.alive) return Promise.resolve(undefined);
    return releaseMeasured(handle, model, this.gpu, this.config.cleanup.measure).then((release) => {
      if (release) this.events.emit('release', release);
      return release;
    });
  }

  /** Each slot's worker, its pre-spawned successor and its place in the recycle line, as held now. */
  slotViews(): SlotView[] {
    return this.slots.map((handle, slot) => {
      const pending = this.successors.get(slot);
      const ready = this.readySuccessors.get(slot);
      const life = handle?.life;
      const successor: SlotView['successor'] = ready
        ? { state: 'ready', pid: ready.pid }
        : pending && { state: this.failedSuccessors.has(pending) ? 'failed' : 'starting' };
      return {
        slot,
        ...(handle && life
          ? {
              worker: {
                pid: handle.pid,
                state: life.state,
                ...(life.state === 'draining' ? { due: life.cause.reason } : {}),
              },
            }
          : {}),
        replacing: handle !== undefined && this.replacing.has(handle),
        waitingTurn: handle !== undefined && this.admission.waits(handle),
        ...(successor ? { successor } : {}),
      };
    });
  }

  gpuStats(): GpuStats | null {
    return this.gpu.meter ? gpuStatsOf(this.gpu.meter) : null;
  }

  /**
   * Recycles every worker (or the one with `onlyPid`), one at a time so the others keep serving; a
   * busy one finishes what it holds first. Resolves with the pids replaced once each slot is refilled.
   */
  async recycle(reason: RecycleReason, onlyPid?: number): Promise<number[]> {
    const recycled: number[] = [];
    for (const handle of [...this.slots]) {
      if (!handle || this.closing || (onlyPid !== undefined && handle.pid !== onlyPid)) continue;
      const underway = this.replacing.get(handle);
      // Replaced meanwhile (its own recycle, a crash): gone all the same, which is what was asked.
      if (underway) await underway;
      else if (!handle.alive) {
        if (handle.state !== 'exited') await handle.exited;
      } else {
        await new Promise<void>((done) => {
          this.waiters.set(handle, [...(this.waiters.get(handle) ?? []), done]);
          this.drain(handle, { reason, detail: 'requested' });
        });
      }
      recycled.push(handle.pid);
    }
    return recycled;
  }

  /** Stops every worker (gracefully, then SIGKILL after killTimeoutMs) and answers what waits. */
  async close(): Promise<void> {
    this.closing = true;
    const error = SHUTTING_DOWN().toJSON();
    for (const task of this.queue.drain()) task.finish({ ok: false, error });
    this.timers.clear();
    for (const done of [...this.waiters.values()].flat()) done();
    this.waiters.clear();
    const cause = { reason: 'shutdown' as const, error };
    const stopAll = (): Promise<unknown> =>
      Promise.all(
        [...this.slots, ...this.spares.splice(0), ...this.replacing.keys()].map((h) => {
          if (!h || h.state === 'exited') return undefined;
          this.setLife(h, { kind: 'stop' });
          return h.stop(cause, this.config.killTimeoutMs);
        }),
      );
    await stopAll();
    // Workers still starting are ended, not waited for: replacements waiting on them then end too.
    this.starts.endStarting();
    await Promise.allSettled([...this.replacing.values()]);
    // Starts under way (growth, spares, refills) end by themselves once they see `closing`.
    this.starts.endStarting();
    while (this.starts.pending.size > 0) await Promise.allSettled([...this.starts.pending]);
    const successors = await Promise.all(this.successors.values());
    this.successors.clear();
    this.readySuccessors.clear();
    await Promise.all(successors.map((h) => h?.stop(cause, this.config.killTimeoutMs)));
    await stopAll();
    this.watch.close();
    this.oom.close();
  }

  // ---- dispatch -------------------------------------------------------------------------------

  /** Hands waiting tasks to workers with room, best first, until either runs out. */
  private pump(): void {
    if (this.pumping) {
      this.pumpAgain = true;
      return;
    }
    this.pumping = true;
    try {
      do {
        this.pumpAgain = false;
        while (this.queue.size > 0 && !this.closing) {
          const handle = this.pick();
          if (!handle) {
            this.grow();
            break;
          }
          this.send(handle, this.queue.shift()!);
        }
      } while (this.pumpAgain);
    } finally {
      this.pumping = false;
    }
  }

  /** An idle worker (longest idle first), else the least loaded one with room for a task sent ahead. */
  private pick(): Handle | undefined {
    let best: Handle | undefined;
    for (const handle of this.slots) {
      if (!handle || handle.room <= 0 || !acceptsTasks(handle.life)) continue;
      if (!best) best = handle;
      else {
        const [a, b] = [heldBy(handle.life), heldBy(best.life)];
        if (a < b || (a === 0 && b === 0 && handle.idleSince < best.idleSince)) best = handle;
      }
    }
    return best;
  }

  private send(handle: Handle, task: PoolTask): void {
    this.setLife(handle, { kind: 'sent' });
    task.holder = handle;
    task.attempts++;
    task.startedAt ??= performance.now();
    this.held++;
    // Decided by the last verdict on the worker (`planCleanup`): the send only counts.
    const cleanup = handle.cleanupNext ? this.inWorker : undefined;
    handle.sentSinceCleanup = cleanup ? 0 : handle.sentSinceCleanup + 1;
    if (cleanup) this.cleanupAfter.add(task);
    // The run message leaves here (the first of a tick at once): what follows is the pool's own
    // bookkeeping, and the verdict that says how many more this worker may take.
    handle.run(task, task.payload, cleanup);
    // It could not be sent (its payload cannot be serialized): `ended` has already seen to it.
    if (task.holder !== handle) return;
    this.timers.disarm(handle);
    this.gpu.sampleWhile(() => this.held > 0 && !this.closing);
    this.review(handle, 'dispatch');
  }

  /**
   * Whether the next task sent to `handle` carries the pool's after-task cleanup: every
   * cleanup.everyTasks-th, or every one while the worker is near its RSS ceiling. Decided whenever
   * its count or its facts change, so that sending a task asks nothing.
   */
  private planCleanup(handle: Handle, facts?: WorkerFacts): void {
    if (!this.inWorker) return;
    const { everyTasks } = this.config.cleanup;
    const near =
      this.cleanupCeiling !== undefined && nearCeiling(facts ?? this.factsOf(handle), this.cleanupCeiling);
    handle.cleanupNext = cleansUpAfter(handle.sentSinceCleanup + 1, near ? 1 : everyTasks);
  }

  /** A task a worker held ended: answered, requeued, or retried, as `retryVerdict` says. */
  private ended(handle: Handle, task: PoolTask, outcome: WorkerOutcome): void {
    this.held--;
    task.holder = undefined;
    const verdict = task.settled ? undefined : retryVerdict(outcome, task.attempts, this.config.retries);
    const cleanup = this.cleanupAfter.delete(task);
    if (handle.gone) this.setLife(handle, { kind: 'exit' });
    else {
      // Neither a payload that never left nor a task the worker declined is followed by a cleanup.
      const answered = outcome.ok || (!outcome.unsent && !outcome.requeue);
      // A cleanup that never reached the worker goes with the next task sent instead.
      if (cleanup && !answered) {
        handle.sentSinceCleanup = this.config.cleanup.everyTasks;
        this.planCleanup(handle);
      }
      this.setLife(
        handle,
        answered ? { kind: 'answered', cleanup, at: Date.now() } : { kind: 'unsent', at: Date.now() },
      );
    }
    // The answer leaves once the worker's life says what happened (code it runs, a listener of the
    // 'task' event, may call back into the pool: it must find a dead worker dead and a count that holds)
    // and before the verdict and the next dispatch, which the client need not wait for.
    if (verdict === 'answer') task.finish(this.outcomeOf(handle, task, outcome));
    if (verdict === 'requeue' || verdict === 'retry') {
      if (verdict === 'requeue') task.attempts--;
      if (this.closing) task.finish({ ok: false, error: SHUTTING_DOWN().toJSON() });
      else this.queue.push(task, true);
    }
    // A worker that died hands back all it held at once; its exit report dispatches them, in order.
    if (handle.gone) return;
    this.review(handle, 'dispatch');
    this.pump();
  }

  private outcomeOf(handle: Handle, task: PoolTask, outcome: WorkerOutcome): PoolOutcome {
    const attempts = task.attempts > 1 ? { attempts: task.attempts } : {};
    if (outcome.ok)
      return { ok: true, value: outcome.value, ms: outcome.ms, workerPid: handle.pid, ...attempts };
    return { ok: false, error: outcome.error, workerPid: handle.pid, ...attempts };
  }

  // ---- verdicts -------------------------------------------------------------------------------

  private factsOf(handle: Handle): WorkerFacts {
    const now = Date.now();
    const held = heldBy(handle.life);
    return {
      sent: handle.sent,
      recycleAfter: handle.recycleAfterTasks,
      held,
      cleaning: cleaningOf(handle.life),
      rssMiB: handle.lastRssMiB,
      gpuMiB: handle.lastGpuMiB,
      leakMiBPerTask: handle.leak.miBPerTask,
      lastStepMiBPerTask: handle.leak.lastStepMiBPerTask,
      ownMemory: handle.memoryScope === 'worker',
      ageMs: now - handle.startedAt,
      idleMs: held === 0 ? now - handle.idleSince : 0,
      averageTaskMs: handle.averageTaskMs,
    };
  }

  /** Asks the core for its verdict on `handle` now, and carries it out. */
  private review(handle: Handle, moment: Moment): void {
    if (handle.role !== 'slot' || handle.ending) return;
    if (handle.life.state === 'draining') {
      handle.room = 0;
      this.replaceWhenAdmitted(handle);
      return;
    }
    if (!acceptsTasks(handle.life)) {
      handle.room = 0;
      return;
    }
    const pool = {
      liveWorkers: this.liveCount(),
      minWorkers: this.plan.minWorkers,
      lastStartMs: this.starts.lastStartMs,
    };
    const facts = this.factsOf(handle);
    const verdict = decide(facts, pool, moment, this.verdictOptions);
    if (verdict.kind === 'retire') return this.retire(handle, verdict.detail);
    if (verdict.kind === 'drain') return this.drain(handle, verdict.cause);
    handle.room = verdict.room;
    this.planCleanup(handle, facts);
    if (verdict.prespawn) this.prespawn(handle);
    if (heldBy(handle.life) === 0 && cleaningOf(handle.life) === 0) this.armIdle(handle);
  }

  /** It takes no more tasks; once it holds nothing (and its turn came, if it must wait one) it is replaced. */
  private drain(handle: Handle, cause: DrainCause): void {
    if (!handle.alive || handle.ending) return;
    if (handle.life.state !== 'draining') {
      this.setLife(handle, { kind: 'drain', cause });
      this.timers.disarm(handle);
      handle.room = 0;
    }
    if (isPreventive(cause.reason)) this.admission.request(handle);
    // A busy worker due by count or by an admin: its successor may start while it finishes what it holds.
    this.successorWhileDraining(handle);
    this.replaceWhenAdmitted(handle);
    this.handOverEarly(handle.slot);
  }

  /**
   * A ready pre-spawned successor takes the slot of its draining predecessor at once, while the
   * predecessor finishes the tasks it holds (it takes no more): the serving workers never drop below
   * `workers` for a count-based recycle (guarantee 6). The predecessor is stopped once it is spent.
   */
  private handOverEarly(slot: number): void {
    const old = this.slots[slot];
    if (!old?.alive || old.ending || old.life.state !== 'draining' || this.replacing.has(old)) return;
    if (this.closing || !this.readySuccessors.get(slot)?.alive) return;
    this.replace(old, old.life.cause.reason, old.life.cause.detail);
  }

  /** Resolves once `handle` holds nothing more (or is no longer draining: stopped, exited). */
  private whenSpent(handle: Handle): Promise<void> {
    if (handle.life.state !== 'draining' || isSpent(handle.life)) return Promise.resolve();
    return new Promise((done) =>
      this.spentWaiters.set(handle, [...(this.spentWaiters.get(handle) ?? []), done]),
    );
  }

  /**
   * A spent worker is replaced now if its reason does not wait for a turn (a crossed ceiling) or it
   * holds one; otherwise it waits idle, serving nothing, until `release` grants it one.
   */
  private replaceWhenAdmitted(handle: Handle): void {
    if (!isSpent(handle.life) || handle.life.state !== 'draining' || this.replacing.has(handle)) return;
    const { reason, detail } = handle.life.cause;
    if (isPreventive(reason) && !this.admission.request(handle)) return;
    this.replace(handle, reason, detail);
  }

  /**
   * Pre-spawn: start its successor now, if the budget (and in 'auto' mode an idle core) and its turn
   * allow (a replacement under way counts). Held back, it is asked again at the next verdict; the
   * replacement otherwise starts once the worker is gone, as without pre-spawn.
   */
  private prespawn(handle: Handle): void {
    const { slot } = handle;
    if (this.successors.has(slot) || this.closing) return;
    if (this.replacing.has(handle)) return;
    const verdict = this.earlyStart(handle, this.config.recycle.prespawn, () => this.prespawnAgain(handle));
    // A fact is being measured: the verdict is asked again once it is in.
    if (verdict === undefined) return;
    if (!verdict.start) {
      this.deferrals.set(handle, verdict.reason);
      return;
    }
    if (!this.admission.request(handle)) return;
    this.deferrals.delete(handle);
    const successor: Promise<Handle | undefined> = this.starts
      .launch(slot, slot, 'successor', (handle) => this.successorStarts.set(handle, successor))
      .catch(() => undefined);
    this.successors.set(slot, successor);
    void successor.then((ready) => {
      if (!ready?.alive) this.failedSuccessors.add(successor);
      if (!ready?.alive || this.successors.get(slot) !== successor) return;
      this.readySuccessors.set(slot, ready);
      this.handOverEarly(slot);
    });
  }

  // ---- hard limits ----------------------------------------------------------------------------

  /**
   * A reading of a worker that holds a task: over a hard limit, it is killed at once. The task it runs
   * gets E_OUT_OF_MEMORY (never retried: it would balloon again), those sent ahead are requeued, and
   * its exit replaces it like any death (reason `limit`).
   */
  private limitReading(handle: Handle, reading: LimitReading): void {
    const breach = overLimit(this.config.limits, reading);
    const taskId = handle.runningTaskId;
    if (!breach || taskId === undefined || handle.gone || handle.cause !== undefined) return;
    // Over its RSS ceiling it declines what it holds and is being replaced: what it holds never started.
    if (handle.life.state === 'draining' && handle.life.cause.reason === 'rss') return;
    const message = limitMessage(breach, taskId, handle.describe());
    this.watch.forget(handle);
    handle.kill({ reason: 'limit', error: { code: ErrorCode.OUT_OF_MEMORY, message }, taskId });
    this.drain(handle, { reason: 'limit', detail: message });
    this.events.emit('limit', {
      taskId,
      pid: handle.pid,
      slot: handle.slot,
      limit: breach.kind,
      limitMiB: breach.limitMiB,
      readingMiB: breach.readingMiB,
    });
  }

  /**
   * The GPU reading a pre-spawn waited for is in: ask again, also of a worker that already runs its
   * last task (every-n, admin) since, which still has its successor started before it leaves.
   */
  private prespawnAgain(handle: Handle): void {
    if (handle.role !== 'slot' || handle.ending || this.replacing.has(handle) || this.closing) return;
    const { life } = handle;
    if (life.state !== 'draining') return this.review(handle, 'dispatch');
    const ahead = life.cause.reason === 'every-n' || life.cause.reason === 'admin';
    if (ahead && life.held > 0 && this.plan.prespawn) this.prespawn(handle);
  }

  /**
   * May a worker start beside `old` while `old` still holds its memory? The facts, as measured now;
   * undefined while the GPU reading is older than `old` (`again` runs when a fresh one is in).
   */
  private earlyStart(old: Handle, mode: boolean | 'auto', again: () => void): PrespawnVerdict | undefined {
    const rssMiB = old.memoryScope === 'worker' ? (old.lastRssMiB ?? old.readyRssMiB) : undefined;
    const availableMiB = rssMiB === undefined ? undefined : this.memAvailable.miB();
    const sharing = this.live().filter((h) => h.gpuIndex === old.gpuIndex).length;
    const gpu = this.gpu.prespawnFacts(old, sharing, again);
    if (gpu === 'stale') return undefined;
    const idleCores = mode === 'auto' ? this.cpu?.idleCores() : undefined;
    return prespawnVerdict(
      {
        ...(gpu ? { gpu } : {}),
        ...(rssMiB !== undefined && availableMiB !== undefined ? { ram: { availableMiB, rssMiB } } : {}),
        ...(idleCores !== undefined ? { idleCores } : {}),
      },
      { mode, marginMiB: this.config.recycle.prespawnMarginMiB },
    );
  }

  // ---- worker reports -------------------------------------------------------------------------

  private cleaned(handle: Handle, report: CleanupReport, taskId: string | undefined): void {
    const mode = taskId === undefined ? 'idle' : this.config.cleanup.force ? 'force' : 'light';
    this.setLife(handle, { kind: 'cleaned', at: Date.now() });
    const measured = handle.alive ? cleanupEvent(handle, report, taskId, mode) : undefined;
    if (mode === 'idle') handle.idleReleased = true;
    if (measured) {
      handle.lastRssMiB = measured.rssAfterMiB;
      if (handle.memoryScope === 'worker') handle.leak.add(measured.rssAfterMiB, report.tasks);
      if (this.gpu.meter && handle.backend === 'process') void this.gpuAfterCleanup(handle, measured);
      else this.emitCleanup(measured);
    }
    this.review(handle, 'cleaned');
    this.pump();
  }

  /** The cleanup's GPU figures, off the worker's path; a reading over recycle.gpuMiB drains it. */
  private async gpuAfterCleanup(handle: Handle, measured: CleanupEvent): Promise<void> {
    const before = this.gpu.readingDuringTask(handle);
    const runsAtCleanup = handle.sent - Math.max(0, heldBy(handle.life));
    // Every process that may hold memory on its GPU: slots, spares, ready successors, leavers not gone.
    const sharing = (): number =>
      new Set(
        [...this.live(), ...this.spares, ...this.readySuccessors.values(), ...this.replacing.keys()].filter(
          (h) => h.state !== 'exited' && h.gpuIndex === handle.gpuIndex,
        ),
      ).size;
    const gpuMiB = await this.gpu.afterCleanup(handle, measured, before, runsAtCleanup, sharing);
    this.emitCleanup(measured);
    if (gpuMiB === undefined || !handle.alive) return;
    handle.lastGpuMiB = gpuMiB;
    this.review(handle, 'cleaned');
    this.pump();
  }

  private exited(handle: Handle, exit: WorkerExit): void {
    const wasServing = handle.role === 'slot' && this.slots[handle.slot] === handle;
    this.setLife(handle, { kind: 'exit' });
    this.timers.disarm(handle);
    this.watch.forget(handle);
    this.events.emit('worker-exit', {
      pid: handle.pid,
      slot: handle.slot,
      code: exit.code,
      signal: exit.signal,
      expected: handle.ending || this.closing,
      ...(exit.oomKill ? { detail: describeExit(exit) } : {}),
    });
    if (this.closing) return;
    if (handle.role === 'spare') {
      const index = this.spares.indexOf(handle);
      if (index >= 0) {
        this.spares.splice(index, 1);
        this.spareGuard.exited(
          Date.now() - handle.startedAt,
          `spare ${handle.describe()} ${describeExit(exit)}`,
        );
        void this.fillSpares();
      }
      return;
    }
    if (handle.role === 'successor') {
      // One taken out of its place (a retired worker's, being stopped) must not remove the next one.
      if (this.successors.get(handle.slot) === this.successorStarts.get(handle))
        this.successors.delete(handle.slot);
      if (this.readySuccessors.get(handle.slot) === handle) this.readySuccessors.delete(handle.slot);
      return;
    }
    if (handle.role !== 'slot') return;
    if (wasServing && !handle.ending && !this.replacing.has(handle)) {
      this.countDeath(handle, exit);
      const reason = exit.cause?.reason ?? 'crash';
      this.replace(handle, reason, exit.cause?.error.message ?? describeExit(exit));
    }
    this.pump();
  }

  /**
   * A death soon after a start is a failed start of the worker's own making (circuit) or a kill from
   * outside (back-off only). A death mid-task is the task's doing, never a crash loop: a poison input
   * must not take the pool down.
   */
  private countDeath(handle: Handle, exit: WorkerExit): void {
    const last = handle.stateAtExit;
    const midTask = last === 'busy' || last === 'draining';
    const uptimeMs = (handle.exitedAt ?? Date.now()) - handle.startedAt;
    if ((exit.cause?.reason ?? 'crash') !== 'crash' || midTask || uptimeMs >= this.config.minUptimeMs) return;
    const message = `worker ${handle.describe()} ${describeExit(exit)} ${uptimeMs} ms after it started`;
    if (killedFromOutside(exit.signal)) this.admission.killedYoung(handle.slot, message);
    else this.startFailed(handle.slot, message);
  }

  private startFailed(slot: number, message: string): void {
    this.admission.startFailed(slot, message);
    const reason = this.admission.unavailable(
      (s) => this.slots[s] !== undefined || this.starting.has(s),
      this.anyServing(),
    );
    if (reason === undefined || this.unavailableReason !== undefined) return;
    this.unavailableReason = reason;
    this.events.emit('degraded', { failedStarts: this.admission.failedStarts(slot), lastError: message });
    const error = this.unavailableError().toJSON();
    for (const task of this.queue.drain()) task.finish({ ok: false, error });
  }

  private unavailableError(): SupervisorError {
    return new SupervisorError(
      ErrorCode.WORKERS_UNAVAILABLE,
      this.unavailableReason ?? 'no worker can start',
    );
  }

  // ---- starting and replacing workers ---------------------------------------------------------

  /** Makes a started worker the one serving `slot`. */
  private install(handle: Handle, slot: number): void {
    handle.slot = slot;
    handle.role = 'slot';
    this.slots[slot] = handle;
    this.unavailableReason = undefined;
    // Up for minUptimeMs: the crash loop, if any, is over.
    setTimeout(() => {
      if (handle.alive) this.admission.healthy(slot);
    }, this.config.minUptimeMs).unref();
    if (handle.life.state === 'starting') this.setLife(handle, { kind: 'started', at: Date.now() });
    if (handle.gone) {
      // It died between reporting ready and taking the slot: refill the slot, or it stays dead.
      void handle.exited.then((exit) => {
        if (this.slots[slot] !== handle || this.closing) return;
        this.countDeath(handle, exit);
        this.replace(handle, 'crash', describeExit(exit));
      });
      return;
    }
    this.review(handle, 'dispatch');
  }

  /** Starts a worker for `slot`, again and again with the crash-loop back-off while starts fail. */
  private async startSlot(slot: number): Promise<Handle | undefined> {
    this.starting.add(slot);
    try {
      for (let attempt = 1; !this.closing; attempt++) {
        const backoffMs = this.admission.backoffMs(slot);
        if (backoffMs > 0) await (this.deps.sleep ?? sleep)(backoffMs);
        if (this.closing) return undefined;
        try {
          return await this.starts.launch(slot, slot, 'slot');
        } catch (error) {
          if (this.closing) return undefined;
          const message = (error as Error).message;
          if (error instanceof StartError && !error.own) this.admission.killedYoung(slot, message);
          else this.startFailed(slot, message);
          const retryInMs = this.admission.backoffMs(slot);
          this.events.emit('worker-start-failed', { slot, message, attempt, retryInMs });
        }
      }
      return undefined;
    } finally {
      this.starting.delete(slot);
    }
  }

  /** Elastic pool: tasks wait and no worker has room, so one more starts in an empty slot (one at a time). */
  private grow(): void {
    if (this.closing || this.growing) return;
    const slot = this.slots.findIndex((h, s) => h === undefined && !this.starting.has(s));
    if (slot < 0) return;
    this.growing = true;
    void this.startSlot(slot).then((handle) => {
      this.growing = false;
      if (handle) this.install(handle, slot);
      this.pump();
    });
  }

  /** Replaces `old` (once): a spare or its pre-spawned successor takes over, else a fresh start. */
  private replace(old: Handle, reason: RecycleReason, detail: string): void {
    if (this.replacing.has(old) || this.closing) return;
    old.ending = old.alive; // an exit already seen was unexpected; one from now on is ours
    this.timers.disarm(old);
    const parts: HandOverParts = {
      config: this.config,
      gpu: this.gpu,
      closing: () => this.closing,
      takeSpare: (slot, leaving) => this.takeSpare(slot, leaving),
      takeSuccessor: (slot) => this.takeSuccessor(slot),
      takeReadySuccessor: (slot) => this.takeReadySuccessor(slot),
      spent: (leaving) => this.whenSpent(leaving),
      start: (slot) => this.startSlot(slot),
      stopping: (handle) => this.setLife(handle, { kind: 'stop' }),
      install: (handle, slot) => this.install(handle, slot),
      deferral: (leaving) => this.deferrals.get(leaving),
      emit: (event) => this.emitRecycle(event),
      pump: () => this.pump(),
    };
    // Known as under way before the hand-over's first step runs: that step takes a spare, whose refill
    // may wait for this replacement to end.
    let run!: (handOver: Promise<void>) => void;
    const underway = new Promise<void>((resolve) => (run = resolve)).finally(() => {
      this.replacing.delete(old);
      this.deferrals.delete(old);
      for (const done of this.waiters.get(old) ?? []) done();
      this.waiters.delete(old);
      for (const next of this.admission.release(old)) this.granted(next);
      this.pump();
    });
    this.replacing.set(old, underway);
    run(handOver(parts, old, reason, detail));
  }

  /** A worker waiting for a maxConcurrent turn got one. */
  private granted(handle: Handle): void {
    if (this.closing || !handle.alive) {
      for (const next of this.admission.release(handle)) this.granted(next);
      return;
    }
    if (handle.life.state !== 'draining') return this.prespawn(handle);
    this.replaceWhenAdmitted(handle);
    // Due before its turn came and still busy: its successor starts now, not once it is spent.
    this.successorWhileDraining(handle);
  }

  private successorWhileDraining(handle: Handle): void {
    const life = handle.life;
    if (life.state !== 'draining') return;
    if (successorWhileDraining(life.cause.reason, heldBy(life), this.plan.prespawn)) this.prespawn(handle);
  }

  /** Shrinks the pool: an idle worker above minWorkers leaves and its slot stays empty. */
  private retire(handle: Handle, detail: string): void {
    this.slots[handle.slot] = undefined;
    this.deferrals.delete(handle);
    handle.ending = true;
    this.timers.disarm(handle);
    this.setLife(handle, { kind: 'drain', cause: { reason: 'idle', detail } });
    this.setLife(handle, { kind: 'stop' });
    for (const next of this.admission.release(handle)) this.granted(next);
    void this.takeSuccessor(handle.slot)?.then((successor) =>
      successor?.stop(POOL_CLOSED, this.config.killTimeoutMs),
    );
    void retire(this.config, handle, detail).then((event) => this.emitRecycle(event));
  }

  private takeSuccessor(slot: number): Promise<Handle | undefined> | undefined {
    const pending = this.successors.get(slot);
    this.successors.delete(slot);
    this.readySuccessors.delete(slot);
    return pending;
  }

  /** The slot's pre-spawned successor if it is ready now (taken out of the successors), else none. */
  private takeReadySuccessor(slot: number): Handle | undefined {
    const ready = this.readySuccessors.get(slot);
    if (!ready?.alive) return undefined;
    this.takeSuccessor(slot);
    return ready;
  }

  /**
   * A warm spare for `slot` (same GPU), taken out of the spares; a new one starts behind it, at once
   * if the budget covers it beside `old` (which still lives), else once `old` is gone and reclaimed.
   */
  private takeSpare(slot: number, old: Handle): Handle | undefined {
    const gpu = this.starts.gpuOf(slot);
    const index = this.spares.findIndex((h) => h.alive && h.gpuIndex === gpu);
    if (index < 0) return undefined;
    const [spare] = this.spares.splice(index, 1);
    this.refillSpares(old);
    return spare;
  }

  /**
   * A spare took `old`'s slot: its refill starts now, or once `old` is gone (its replacement, which
   * waits for the driver to reclaim its memory, is over) if the budget says so.
   */
  private refillSpares(old: Handle): void {
    const underway = this.replacing.get(old);
    // Asked again once a measurement came in, after the replacement ended: nothing is left to wait for.
    if (!underway) return void this.fillSpares();
    // Spares are asked for: only the memory budget holds their refill back, never the CPU.
    const verdict = this.earlyStart(old, true, () => this.refillSpares(old));
    if (verdict === undefined) return;
    if (verdict.start) void this.fillSpares();
    else {
      this.deferrals.set(old, verdict.reason);
      void underway.catch(() => undefined).then(() => this.fillSpares());
    }
  }

  /** Starts warm spares until there are spareWorkers (ready or starting); resolves when those are up. */
  private async fillSpares(): Promise<void> {
    const starts: Array<Promise<void>> = [];
    while (!this.closing && this.spares.length + this.sparesStarting < this.config.spareWorkers) {
      starts.push(this.startSpare());
    }
    await Promise.all(starts);
  }

  private async startSpare(): Promise<void> {
    this.sparesStarting++;
    try {
      for (let attempt = 1; !this.closing; attempt++) {
        const backoffMs = this.spareGuard.backoffMs;
        if (backoffMs > 0) await (this.deps.sleep ?? sleep)(backoffMs);
        if (this.closing) return;
        try {
          const spare = await this.starts.launch(-1, this.nextSpareId++, 'spare');
          this.setLife(spare, { kind: 'started', at: Date.now() });
          if (spare.gone) continue;
          this.spares.push(spare);
          setTimeout(() => {
            if (spare.alive) this.spareGuard.healthy();
          }, this.config.minUptimeMs).unref();
          return;
        } catch (error) {
          if (this.closing) return;
          const message = (error as Error).message;
          this.spareGuard.startFailed(message);
          this.events.emit('worker-start-failed', {
            slot: -1,
            message,
            attempt,
            retryInMs: this.spareGuard.backoffMs,
          });
        }
      }
    } finally {
      this.sparesStarting--;
    }
  }

  // ---- idle workers ---------------------------------------------------------------------------

  private armIdle(handle: Handle): void {
    const now = Date.now();
    const facts = {
      ageMs: now - handle.startedAt,
      idleMs: now - handle.idleSince,
      poolSize: this.live().length,
      minWorkers: this.plan.minWorkers,
    };
    const rules = { idleTimeoutMs: this.config.idleTimeoutMs, maxAgeMs: this.plan.policy.maxAgeMs ?? 0 };
    this.timers.arm(handle, nextIdleCheckMs(facts, rules));
  }

  /** idleReleaseMs: an idle worker releases its cached sessions in place (memory back without a restart). */
  private releaseSessions(handle: Handle): void {
    if (!handle.alive || heldBy(handle.life) > 0 || handle.life.state === 'draining' || handle.idleReleased)
      return;
    this.setLife(handle, { kind: 'cleanup-asked' });
    handle.sentSinceCleanup = 0;
    this.planCleanup(handle);
    handle.cleanup(true, this.config.cleanup.timeoutMs, this.config.cleanup.measure);
  }

  // ---- bookkeeping ----------------------------------------------------------------------------

  /** The one way a worker's life changes: through the core's `step`, announced when its state changed. */
  private setLife(handle: Handle, event: LifeEvent): void {
    const from = handle.life;
    const next = step(from, event);
    handle.life = next;
    if (event.kind === 'stop') this.gpu.leaving(handle);
    else if (event.kind === 'exit' && from.state !== 'exited') this.gpu.left(handle);
    const spentWaiters = this.spentWaiters.get(handle);
    if (spentWaiters && (next.state !== 'draining' || isSpent(next))) {
      this.spentWaiters.delete(handle);
      for (const done of spentWaiters) done();
    }
    if (heldBy(next) === 0 && heldBy(from) > 0) {
      handle.idleSince = Date.now();
      if (this.watch.on) this.watch.stop(handle);
    } else if (this.watch.on && heldBy(from) === 0 && heldBy(next) > 0) this.watch.start(handle);
    if (next.state !== from.state && this.events.listenerCount('transition') > 0) {
      this.events.emit('transition', {
        pid: handle.pid,
        slot: handle.slot,
        from: from.state,
        to: next.state,
      });
    }
  }

  private emitCleanup(event: CleanupEvent): void {
    this.tally.freedMiB += Math.max(0, event.freedMiB);
    this.events.emit('cleanup', event);
  }

  private emitRecycle(event: SupervisorEventMap['recycle']): void {
    if (event.reason !== 'idle') this.tally.recycles++;
    if (event.rssFreedMiB !== undefined) this.tally.freedMiB += Math.max(0, event.rssFreedMiB);
    this.events.emit('recycle', event);
  }

  private liveCount(): number {
    let count = 0;
    for (const h of this.slots) if (h !== undefined && h.state !== 'exited') count++;
    return count;
  }

  private live(): Handle[] {
    return this.slots.filter((h): h is Handle => h !== undefined && h.state !== 'exited');
  }

  /** Is any worker serving a slot alive and not leaving (so waiting tasks will be served)? */
  private anyServing(): boolean {
    return this.slots.some((h) => h !== undefined && acceptsTasks(h.life));
  }
}

export { POOL_CLOSED };
