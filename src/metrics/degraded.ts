import type { SupervisorEvents } from '../events.js';

/**
 * Whether the pool is degraded (every slot keeps failing to start), followed from events alone. The
 * pool announces `degraded` but not its end: that comes when a worker started after it stays up for
 * `minUptimeMs` (the crash-loop guard then resets), so the same wait is kept here per ready worker.
 */
export class DegradedWatch {
  private since: { failedStarts: number; lastError: string; at: number } | undefined;
  private readonly probation = new Map<number, NodeJS.Timeout>();
  private readonly unsubscribe: Array<() => void>;

  constructor(events: SupervisorEvents, minUptimeMs: number) {
    this.unsubscribe = [
      events.on('degraded', (e) => {
        this.since = { ...e, at: Date.now() };
        this.clearProbation();
      }),
      events.on('worker-ready', ({ pid }) => {
        if (!this.since) return;
        const timer = setTimeout(() => {
          this.probation.delete(pid);
          this.since = undefined;
          this.clearProbation();
        }, minUptimeMs);
        // A metrics helper must never keep the process alive on its own.
        timer.unref();
        this.probation.set(pid, timer);
      }),
      events.on('worker-exit', ({ pid }) => {
        clearTimeout(this.probation.get(pid));
        this.probation.delete(pid);
      }),
    ];
  }

  get degraded(): boolean {
    return this.since !== undefined;
  }

  /** Why the pool is degraded, for /readyz; undefined while it is not. */
  get reason(): string | undefined {
    if (!this.since) return undefined;
    return `workers keep failing to start (${this.since.failedStarts} in a row); last error: ${this.since.lastError}`;
  }

  close(): void {
    for (const off of this.unsubscribe) off();
    this.clearProbation();
  }

  private clearProbation(): void {
    for (const timer of this.probation.values()) clearTimeout(timer);
    this.probation.clear();
  }
}
