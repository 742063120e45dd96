import {
  decideWhenIdle,
  nextIdleCheckMs,
  type IdleFacts,
  type IdlePolicyOptions,
  type RecycleReason,
} from '../policy/recycle-policy.js';
import { IdleTimers } from './idle-timers.js';
import type { WorkerHandle } from './worker-handle.js';
import type { PoolOptions } from './pool-options.js';

interface Waiter {
  resolve: (handle: WorkerHandle) => void;
  reject: (error: unknown) => void;
}

type IdleRules = Required<IdlePolicyOptions> & Pick<PoolOptions, 'idleReleaseMs' | 'minWorkers'>;

/** What the pool does when an idle worker's timer fires. */
export interface IdleActions {
  /** Live workers now (the idle timeout applies only above minWorkers). */
  poolSize(): number;
  /** idleTimeoutMs: the worker exits and its slot stays empty. */
  retire(handle: WorkerHandle, detail: string): void;
  /** max-age: a policy recycle, held back while maxConcurrentRecycles run. */
  recycle(handle: WorkerHandle, reason: RecycleReason, detail: string): void;
  /** idleReleaseMs: release the worker's cached sessions in place (it has left the idle list). */
  releaseSessions(handle: WorkerHandle): void;
  /** May a busy worker be sent one more task ahead (pipelineDepth), now? */
  canTakeAhead(handle: WorkerHandle): boolean;
}

/**
 * Where free workers and waiting tasks meet. A worker handed back goes to the task that has waited
 * longest, else joins the idle list with its timers (session release, idle timeout, max-age), whose
 * firing is turned into an action through the RecyclePolicy's idle decision. Kept apart from the
 * pool so the pool's own code is about slots, not about queues and timers.
 *
 * With pipelineDepth > 1, a busy worker with room for a task sent ahead is offered too, after every
 * idle worker: the least loaded first.
 */
export class IdleWorkers {
  private readonly idle: WorkerHandle[] = [];
  /** Busy workers that may take a task ahead; checked again (canTakeAhead) when one is taken. */
  private readonly ahead = new Set<WorkerHandle>();
  private readonly waiters: Waiter[] = [];
  private readonly timers: IdleTimers;
  private readonly rules: IdleRules;
  private closed = false;

  constructor(
    options: Pick<PoolOptions, 'idleReleaseMs' | 'idleTimeoutMs' | 'minWorkers' | 'policy'>,
    private readonly actions: IdleActions,
  ) {
    const { idleReleaseMs, idleTimeoutMs, minWorkers, policy } = options;
    this.rules = { idleReleaseMs, idleTimeoutMs, minWorkers, maxAgeMs: policy.maxAgeMs ?? 0 };
    this.timers = new IdleTimers(
      idleReleaseMs,
      (handle) => this.releaseDue(handle),
      (handle) => this.check(handle),
    );
  }

  /** Idle workers now. */
  get count(): number {
    return this.idle.length;
  }

  /** Tasks waiting for a worker now. */
  get waiting(): number {
    return this.waiters.length;
  }

  has(handle: WorkerHandle): boolean {
    return this.idle.includes(handle);
  }

  /** A snapshot of the idle workers, longest idle first. */
  list(): WorkerHandle[] {
    return [...this.idle];
  }

  /**
   * The longest idle worker, else the least loaded busy one with room ahead, reserved for the caller;
   * undefined when none is free.
   */
  take(): WorkerHandle | undefined {
    const handle = this.idle.shift();
    if (handle) {
      this.timers.disarm(handle);
      handle.reserve();
      return handle;
    }
    return this.takeAhead();
  }

  private takeAhead(): WorkerHandle | undefined {
    let best: WorkerHandle | undefined;
    for (const handle of this.ahead) {
      if (!this.actions.canTakeAhead(handle)) this.ahead.delete(handle);
      else if (!best || handle.load < best.load) best = handle;
    }
    if (!best) return undefined;
    best.reserve();
    if (!this.actions.canTakeAhead(best)) this.ahead.delete(best);
    return best;
  }

  /** A busy worker with room for a task sent ahead: to the longest waiting task, else offered later. */
  putAhead(handle: WorkerHandle): void {
    if (!this.actions.canTakeAhead(handle)) return;
    const waiter = this.waiters.shift();
    if (waiter) {
      handle.reserve();
      waiter.resolve(handle);
    } else {
      this.ahead.add(handle);
    }
  }

  /** Resolves with the next worker put back (reserved for the caller); rejects on abort or close. */
  wait(signal?: AbortSignal): Promise<WorkerHandle> {
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

  /** A free worker (alive, not due for recycling): to the longest waiting task, else idle. */
  put(handle: WorkerHandle): void {
    const waiter = this.waiters.shift();
    if (waiter) {
      handle.reserve();
      waiter.resolve(handle);
    } else {
      this.idle.push(handle);
      this.timers.arm(handle, nextIdleCheckMs(this.facts(handle), this.rules));
    }
  }

  remove(handle: WorkerHandle): void {
    this.ahead.delete(handle);
    this.timers.disarm(handle);
    const index = this.idle.indexOf(handle);
    if (index >= 0) this.idle.splice(index, 1);
  }

  /** Answers every waiting task with `error` (the pool became unavailable). */
  rejectWaiters(error: unknown): void {
    for (const waiter of this.waiters.splice(0)) waiter.reject(error);
  }

  /** Answers every waiting task with `error`, stops every timer and forgets the idle workers. */
  close(error: unknown): void {
    this.closed = true;
    this.rejectWaiters(error);
    this.timers.clear();
    this.idle.length = 0;
    this.ahead.clear();
  }

  private facts(handle: WorkerHandle): IdleFacts {
    const now = Date.now();
    return {
      ageMs: now - handle.startedAt,
      idleMs: now - handle.idleSince,
      poolSize: this.actions.poolSize(),
      minWorkers: this.rules.minWorkers,
    };
  }

  private releaseDue(handle: WorkerHandle): void {
    if (this.closed || !this.idle.includes(handle)) return;
    this.remove(handle);
    this.actions.releaseSessions(handle);
  }

  /** The idle policy timer: the RecyclePolicy's idle decision (idle timeout, max-age). */
  private check(handle: WorkerHandle): void {
    if (this.closed || !this.idle.includes(handle)) return;
    const facts = this.facts(handle);
    const decision = decideWhenIdle(facts, this.rules);
    if (decision.recycle && decision.reason === 'idle') {
      this.actions.retire(handle, decision.detail);
    } else if (decision.recycle) {
      this.actions.recycle(handle, decision.reason, decision.detail);
    } else {
      this.timers.armPolicy(handle, nextIdleCheckMs(facts, this.rules));
    }
  }
}
