import { ErrorCode, SupervisorError } from '../protocol/errors.js';
import { CrashLoopGuard } from '../policy/crash-loop.js';
import { describeExit, type WorkerExit, type WorkerHandle } from './worker-handle.js';

/**
 * Crash-loop bookkeeping, one guard per slot: a slot's crash loop backs off that slot only, and
 * healthy slots keep serving. The pool is unavailable only while every slot in use keeps failing.
 */
export class SlotHealth {
  private readonly guards: CrashLoopGuard[];

  constructor(slots: number, options: { minUptimeMs: number; maxFailedStarts: number }) {
    this.guards = Array.from({ length: slots }, () => new CrashLoopGuard(options));
  }

  guard(slot: number): CrashLoopGuard {
    return this.guards[slot]!;
  }

  /** Records a failed start; resolves with the error tasks get when this one made the pool unavailable. */
  startFailed(slot: number, message: string, inUse: (slot: number) => boolean): SupervisorError | undefined {
    const wasUnavailable = this.unavailable(inUse) !== undefined;
    this.guard(slot).startFailed(message);
    return wasUnavailable ? undefined : this.unavailable(inUse);
  }

  /**
   * Set while every slot in use keeps failing to start (no capacity left): the error tasks get instead
   * of waiting. Slots never used (an elastic pool below its maximum) have clean guards and do not count.
   */
  unavailable(inUse: (slot: number) => boolean): SupervisorError | undefined {
    const used = this.guards.filter((guard, slot) => inUse(slot) || guard.failedStarts > 0);
    if (used.length === 0 || !used.every((guard) => guard.degraded)) return undefined;
    const worst = used.reduce((a, b) => (b.failedStarts > a.failedStarts ? b : a));
    return new SupervisorError(
      ErrorCode.WORKERS_UNAVAILABLE,
      `workers keep failing to start (${worst.failedStarts} in a row); last error: ${worst.lastStartError ?? 'unknown'}`,
    );
  }
}

/**
 * Why a slot's worker death counts as a failed start (a crash within minUptimeMs of starting), or
 * undefined. Only deaths outside a task count toward a crash loop: one that kills its worker mid-task
 * is answered E_WORKER_CRASHED and is the task's doing (a poison input must not take the pool down).
 */
export function failedStartOf(
  handle: WorkerHandle,
  exit: WorkerExit,
  minUptimeMs: number,
): string | undefined {
  const midTask = handle.stateAtExit === 'busy' || handle.stateAtExit === 'draining';
  if ((exit.cause?.reason ?? 'crash') !== 'crash' || midTask) return undefined;
  const uptimeMs = Date.now() - handle.startedAt;
  if (uptimeMs >= minUptimeMs) return undefined;
  return `worker ${handle.describe()} ${describeExit(exit)} ${uptimeMs} ms after it started`;
}
