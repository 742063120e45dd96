import { CrashLoopGuard } from './crash-loop.js';

/**
 * Who may start a worker, and when: at most `maxConcurrent` preventive replacements under way at once
 * (the others wait their turn, in the order they became due), and each slot's crash-loop back-off.
 * No I/O and no timers: the scheduler asks, and arms its own timer for a back-off it is told of.
 *
 * What counts toward the circuit (the pool answering E_WORKERS_UNAVAILABLE) is only a failed start
 * of the worker's own making: its setup threw, it exited with a code or crashed (SIGSEGV, SIGABRT...)
 * before it had been up `minUptimeMs`, or it did not become ready in time. A worker killed from
 * outside (SIGKILL, SIGTERM: an OOM killer, an operator) is restarted with the same back-off but is
 * no evidence that the worker cannot start, so it never opens the circuit.
 */
export interface AdmissionOptions {
  slots: number;
  maxConcurrent: number;
  minUptimeMs: number;
  maxFailedStarts: number;
}

/** Signals a process gets from outside; any other signal is the process's own crash. */
const EXTERNAL_SIGNALS: ReadonlySet<string> = new Set(['SIGKILL', 'SIGTERM', 'SIGINT', 'SIGHUP', 'SIGQUIT']);

export function killedFromOutside(signal: string | null): boolean {
  return signal !== null && EXTERNAL_SIGNALS.has(signal);
}

export class Admission<K> {
  /** Replacements holding a turn, and those waiting for one (oldest first). */
  private readonly turns = new Set<K>();
  private readonly waiting: K[] = [];
  /** Failed starts of the worker's own making, per slot: back-off and the circuit. */
  private readonly own: CrashLoopGuard[];
  /** Deaths from outside soon after a start, per slot: back-off only. */
  private readonly outside: CrashLoopGuard[];

  constructor(private readonly options: AdmissionOptions) {
    const { minUptimeMs, maxFailedStarts } = options;
    this.own = Array.from(
      { length: options.slots },
      () => new CrashLoopGuard({ minUptimeMs, maxFailedStarts }),
    );
    // A kill from outside says nothing of the worker: back off a little (a storm must not fork-storm
    // back), never for long.
    this.outside = Array.from(
      { length: options.slots },
      () => new CrashLoopGuard({ minUptimeMs, maxFailedStarts, backoffMaxMs: 1_000 }),
    );
  }

  /** Asks for a turn; true if granted now, else `key` waits and `release` grants it later. */
  request(key: K): boolean {
    if (this.turns.has(key)) return true;
    if (this.turns.size < this.options.maxConcurrent) {
      this.turns.add(key);
      return true;
    }
    if (!this.waiting.includes(key)) this.waiting.push(key);
    return false;
  }

  holds(key: K): boolean {
    return this.turns.has(key);
  }

  /** Is `key` in line for a turn (all maxConcurrent turns are held)? */
  waits(key: K): boolean {
    return this.waiting.includes(key);
  }

  /** Ends `key`'s turn (or withdraws it from the line); returns the keys granted a turn by it. */
  release(key: K): K[] {
    const index = this.waiting.indexOf(key);
    if (index >= 0) this.waiting.splice(index, 1);
    if (!this.turns.delete(key)) return [];
    const granted: K[] = [];
    while (this.turns.size < this.options.maxConcurrent && this.waiting.length > 0) {
      const next = this.waiting.shift()!;
      this.turns.add(next);
      granted.push(next);
    }
    return granted;
  }

  get underway(): number {
    return this.turns.size;
  }

  /** A start of `slot` failed by the worker's own doing. */
  startFailed(slot: number, message: string): void {
    this.own[slot]?.startFailed(message);
  }

  /** A worker of `slot` was killed from outside soon after it started: back off, no circuit. */
  killedYoung(slot: number, message: string): void {
    this.outside[slot]?.startFailed(message);
  }

  /** A worker of `slot` stayed up for minUptimeMs: its slot is healthy again. */
  healthy(slot: number): void {
    this.own[slot]?.healthy();
    this.outside[slot]?.healthy();
  }

  failedStarts(slot: number): number {
    return this.own[slot]?.failedStarts ?? 0;
  }

  /** How long to wait before starting `slot` again (ms). */
  backoffMs(slot: number): number {
    return Math.max(this.own[slot]?.backoffMs ?? 0, this.outside[slot]?.backoffMs ?? 0);
  }

  /**
   * The reason to answer tasks E_WORKERS_UNAVAILABLE now, or undefined: every slot in use keeps
   * failing to start by its own doing and no worker can serve (`anyReady` false). Slots never used
   * (an elastic pool below its maximum) have clean records and do not count.
   */
  unavailable(inUse: (slot: number) => boolean, anyReady: boolean): string | undefined {
    if (anyReady) return undefined;
    const used = this.own.filter((guard, slot) => inUse(slot) || guard.failedStarts > 0);
    if (used.length === 0 || !used.every((guard) => guard.degraded)) return undefined;
    const worst = used.reduce((a, b) => (b.failedStarts > a.failedStarts ? b : a));
    return `workers keep failing to start (${worst.failedStarts} in a row); last error: ${worst.lastStartError ?? 'unknown'}`;
  }

  /** Is `slot` past maxFailedStarts (degraded)? */
  degraded(slot: number): boolean {
    return this.own[slot]?.degraded ?? false;
  }
}
