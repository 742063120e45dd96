/**
 * Crash-loop protection (PM2's min_uptime / max_restarts, with back-off): a worker that dies within
 * `minUptimeMs` of starting, or never starts, is a failed start. Respawns wait longer after each one,
 * and after `maxFailedStarts` in a row the pool is degraded: new tasks are refused with the last
 * startup error instead of queueing behind a fork storm. A worker that stays up resets it all.
 */
export interface CrashLoopOptions {
  minUptimeMs: number;
  maxFailedStarts: number;
  backoffFirstMs?: number;
  backoffMaxMs?: number;
}

export class CrashLoopGuard {
  private failed = 0;
  private lastError: string | undefined;

  constructor(private readonly options: CrashLoopOptions) {}

  get failedStarts(): number {
    return this.failed;
  }

  get degraded(): boolean {
    return this.failed >= this.options.maxFailedStarts;
  }

  get lastStartError(): string | undefined {
    return this.lastError;
  }

  /** How long to wait before the next start: 0 while healthy, then doubling up to the cap. */
  get backoffMs(): number {
    if (this.failed === 0) return 0;
    const first = this.options.backoffFirstMs ?? 100;
    return Math.min(first * 2 ** (this.failed - 1), this.options.backoffMaxMs ?? 5_000);
  }

  startFailed(message: string): void {
    this.failed++;
    this.lastError = message;
  }

  /** An unexpected exit: a failed start if the worker had not been up for minUptimeMs. */
  exited(uptimeMs: number, message: string): void {
    if (uptimeMs < this.options.minUptimeMs) this.startFailed(message);
  }

  /** A worker stayed up for minUptimeMs. */
  healthy(): void {
    this.failed = 0;
    this.lastError = undefined;
  }
}
