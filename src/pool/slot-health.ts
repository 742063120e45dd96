import { ErrorCode, SupervisorError } from '../protocol/errors.js';
import { CrashLoopGuard } from '../policy/crash-loop.js';

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
