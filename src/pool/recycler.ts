import { decideAfterTask, type RecycleDecision, type RecycleReason } from '../policy/recycle-policy.js';
import { tasksAhead } from '../policy/prespawn.js';
import type { WorkerHandle } from './worker-handle.js';
import { replaceWorker, retireWorker, type ReplacementContext } from './replacement.js';

/** A recycle waiting for the worker's current task to end, and who waits for it. */
export interface RecycleRequest {
  reason: RecycleReason;
  detail: string;
  done: Array<() => void>;
}

/** What the Recycler needs of the pool: the replacement's context, its idle list and pre-spawning. */
export interface RecyclerContext extends ReplacementContext {
  isIdle(handle: WorkerHandle): boolean;
  idleWorkers(): readonly WorkerHandle[];
  /** Pre-spawn: start `slot`'s replacement while its worker runs its last task(s). */
  prespawn(slot: number): void;
  /** The last worker start, fork to ready (ms). */
  lastStartMs(): number;
}

/**
 * Preventive recycles (a count, a projected leak, an age): at most maxConcurrentRecycles at once, the
 * others keep serving until their turn. A crossed memory ceiling (rss, gpu) is never held back: a worker
 * serving on past it is what the ceiling exists to prevent; it still counts toward the limit. Crashes,
 * timeouts and admin requests are never held back either.
 */
const PREVENTIVE: ReadonlySet<RecycleReason> = new Set(['every-n', 'leak', 'max-age']);
const POLICY_REASONS: ReadonlySet<RecycleReason> = new Set([...PREVENTIVE, 'rss', 'gpu']);

/**
 * Which workers are replaced, and when: one replacement per worker, a busy worker drained first (it
 * finishes its task), and at most maxConcurrentRecycles policy recycles at once (the others wait their
 * turn). Kept apart from the replacement procedure so the bookkeeping can be read on its own.
 */
export class Recycler {
  /** Workers the pool is ending on purpose: their exit is expected, their replacement under way. */
  private readonly replacing = new Map<WorkerHandle, Promise<void>>();
  /** Workers to recycle as soon as their current task is done (they are draining), and who waits. */
  private readonly requests = new Map<WorkerHandle, RecycleRequest>();
  /** Workers whose recycle counts toward maxConcurrentRecycles (from the decision to the hand-over). */
  private readonly committed = new Set<WorkerHandle>();

  constructor(private readonly ctx: RecyclerContext) {}

  /** Is `handle` being ended on purpose (its exit expected)? */
  expected(handle: WorkerHandle): boolean {
    return this.replacing.has(handle);
  }

  /** The recycle waiting for `handle`'s current task to end, if any. */
  requested(handle: WorkerHandle): RecycleRequest | undefined {
    return this.requests.get(handle);
  }

  private get full(): boolean {
    return this.committed.size >= this.ctx.options.maxConcurrentRecycles;
  }

  /** every-n is known before the last task starts: pre-spawn its replacement, and drain it. */
  beforeTask(handle: WorkerHandle): void {
    const { policy, prespawn, spareWorkers } = this.ctx.options;
    if (policy.recycleEveryTasks <= 0 || handle.draining) return;
    // Counted in tasks sent: with tasks sent ahead (pipelineDepth), the N-th goes out before the
    // ones ahead of it are answered.
    const next = handle.runs + 1;
    if (
      prespawn &&
      spareWorkers === 0 &&
      next + tasksAhead(this.ctx.lastStartMs(), handle) >= handle.recycleAfterTasks
    ) {
      this.ctx.prespawn(handle.slot);
    }
    if (next < handle.recycleAfterTasks || this.full) return;
    const decision = decideAfterTask(
      { tasksDone: next, recycleAfterTasks: handle.recycleAfterTasks },
      policy,
    );
    if (decision.recycle) this.request(handle, decision.reason, decision.detail);
  }

  /**
   * The RecyclePolicy's verdict on a worker after a task; deferred while maxConcurrent recycles run.
   * A thread has no RSS of its own (only the process's), so the rss and leak rules do not apply to it.
   */
  due(handle: WorkerHandle): RecycleDecision {
    const own = handle.memoryScope === 'worker';
    const decision = decideAfterTask(
      {
        tasksDone: handle.tasksDone,
        recycleAfterTasks: handle.recycleAfterTasks,
        rssMiB: own ? handle.lastRssMiB : undefined,
        ageMs: Date.now() - handle.startedAt,
        leakMiBPerTask: own ? handle.leak.miBPerTask : undefined,
      },
      this.ctx.options.policy,
    );
    return decision.recycle && PREVENTIVE.has(decision.reason) && this.full ? { recycle: false } : decision;
  }

  /**
   * Recycles `handle` now if it is idle, else drains it: it finishes what it runs and gets nothing
   * more. A preventive recycle waits for a maxConcurrent slot (the next task re-checks).
   */
  request(handle: WorkerHandle, reason: RecycleReason, detail: string): void {
    if (PREVENTIVE.has(reason) && this.full) return;
    if (this.ctx.isIdle(handle)) {
      void this.replace(handle, reason, detail);
    } else if (!this.requests.has(handle)) {
      if (POLICY_REASONS.has(reason)) this.committed.add(handle);
      this.requests.set(handle, { reason, detail, done: [] });
      handle.drain();
    }
  }

  /** An idle worker's max-age: a policy recycle; without a free maxConcurrent slot, `deferred` takes it later. */
  recycleIdle(handle: WorkerHandle, reason: RecycleReason, detail: string): void {
    if (!this.full) void this.replace(handle, reason, detail);
  }

  /** Stops `old` (if it still runs) and fills its slot with a fresh worker; one replacement per worker. */
  replace(old: WorkerHandle, reason: RecycleReason, detail: string): Promise<void> {
    let replacement = this.replacing.get(old);
    if (!replacement) {
      if (POLICY_REASONS.has(reason)) this.committed.add(old);
      replacement = replaceWorker(this.ctx, old, reason, detail).finally(() => {
        this.replacing.delete(old);
        for (const done of this.requests.get(old)?.done ?? []) done();
        this.requests.delete(old);
        if (this.committed.delete(old)) this.deferred();
      });
      this.replacing.set(old, replacement);
    }
    return replacement;
  }

  /** Shrinks the pool by one idle worker (its exit is expected; nothing replaces it). */
  retire(handle: WorkerHandle, detail: string): Promise<void> {
    const done = retireWorker(this.ctx, handle, detail).finally(() => this.replacing.delete(handle));
    this.replacing.set(handle, done);
    return done;
  }

  /**
   * Recycles every worker in `handles` (or those of `onlyPid`), one at a time so the others keep
   * serving. A busy worker drains: it finishes its task first. Resolves with the pids replaced once
   * each slot is refilled.
   */
  async recycleAll(
    handles: ReadonlyArray<WorkerHandle | undefined>,
    reason: RecycleReason,
    onlyPid?: number,
  ): Promise<number[]> {
    const recycled: number[] = [];
    for (const handle of handles) {
      if (!handle || this.ctx.closing()) continue;
      if (onlyPid !== undefined && handle.pid !== onlyPid) continue;
      const underway = this.replacing.get(handle);
      if (underway) {
        await underway; // already being replaced: its fresh successor satisfies the request
      } else if (!handle.alive) {
        continue;
      } else if (this.ctx.isIdle(handle)) {
        await this.replace(handle, reason, 'requested');
      } else {
        await new Promise<void>((done) => {
          const request = this.requests.get(handle);
          if (request) request.done.push(done);
          else {
            this.requests.set(handle, { reason, detail: 'requested', done: [done] });
            handle.drain();
          }
        });
      }
      recycled.push(handle.pid);
    }
    return recycled;
  }

  /** Idle workers whose recycle waited for a free maxConcurrent slot: the next one goes now. */
  private deferred(): void {
    if (this.ctx.closing()) return;
    for (const handle of this.ctx.idleWorkers()) {
      const decision = this.due(handle);
      if (decision.recycle) {
        void this.replace(handle, decision.reason, decision.detail);
        return;
      }
    }
  }

  /** Shutdown: whoever waits for a requested recycle is answered now. */
  close(): void {
    for (const request of this.requests.values()) for (const done of request.done) done();
    this.requests.clear();
  }

  /** Resolves when every replacement under way has ended (each sees the pool closing). */
  async settled(): Promise<void> {
    await Promise.allSettled([...this.replacing.values()]);
  }
}
