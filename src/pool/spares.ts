import { setTimeout as sleep } from 'node:timers/promises';
import { CrashLoopGuard } from '../policy/crash-loop.js';
import { ErrorCode } from '../protocol/errors.js';
import type { KillCause, WorkerHandle } from './worker-handle.js';

export interface SparesOptions {
  /** Warm spares to keep started and ready (`spareWorkers`). */
  warm: number;
  /** The first workerId a warm spare gets (ids below it are slots). */
  firstSpareId: number;
  killTimeoutMs: number;
  minUptimeMs: number;
  maxFailedStarts: number;
  /** The GPU a slot is pinned to, so a spare is only handed to a slot on its own GPU. */
  gpuOfSlot: (slot: number) => number | undefined;
  /** Starts a worker for (slot, workerId) and waits until it is ready. */
  launch: (slot: number, workerId: number) => Promise<WorkerHandle>;
  onStartFailed: (message: string, attempt: number, retryInMs: number) => void;
}

/**
 * Workers started ahead of need, two kinds:
 * - pre-spawned replacements (`recycle.prespawn`): one per slot whose worker is about to be due;
 * - warm spares (`spareWorkers`): N started-and-ready workers that take no task, for hosts where a
 *   cold start (process + CUDA context + model) takes seconds. Any replacement takes one at once and
 *   a new spare starts behind it.
 */
export class Spares {
  private readonly prespawned = new Map<number, Promise<WorkerHandle | undefined>>();
  private readonly ready: WorkerHandle[] = [];
  private starting = 0;
  private nextId: number;
  private closed = false;
  /** Spares' own crash loop: a spare that cannot start backs off, and never degrades the pool. */
  private readonly guard: CrashLoopGuard;

  constructor(private readonly options: SparesOptions) {
    this.nextId = options.firstSpareId;
    this.guard = new CrashLoopGuard({
      minUptimeMs: options.minUptimeMs,
      maxFailedStarts: options.maxFailedStarts,
    });
  }

  get warmCount(): number {
    return this.ready.length;
  }

  /** Is this one of the warm spares (not serving a slot)? */
  holds(handle: WorkerHandle): boolean {
    return this.ready.includes(handle);
  }

  /** Starts warm spares until there are N (ready or starting). Resolves when those started are ready. */
  async fill(): Promise<void> {
    const starts: Array<Promise<void>> = [];
    while (!this.closed && this.ready.length + this.starting < this.options.warm)
      starts.push(this.startOne());
    await Promise.all(starts);
  }

  private async startOne(): Promise<void> {
    this.starting++;
    try {
      for (let attempt = 1; !this.closed; attempt++) {
        const backoff = this.guard.backoffMs;
        if (backoff > 0) await sleep(backoff);
        if (this.closed) return;
        try {
          const handle = await this.options.launch(-1, this.nextId++);
          if (this.closed) {
            await handle.stop(SPARES_CLOSED, this.options.killTimeoutMs);
            return;
          }
          this.ready.push(handle);
          this.watch(handle);
          return;
        } catch (error) {
          if (this.closed) return;
          this.guard.startFailed((error as Error).message);
          this.options.onStartFailed((error as Error).message, attempt, this.guard.backoffMs);
        }
      }
    } finally {
      this.starting--;
    }
  }

  private watch(handle: WorkerHandle): void {
    const startedAt = Date.now();
    setTimeout(() => {
      if (handle.alive) this.guard.healthy();
    }, this.options.minUptimeMs).unref();
    void handle.exited.then(() => {
      const index = this.ready.indexOf(handle);
      if (index < 0) return; // it took over a slot: the pool watches it now
      this.ready.splice(index, 1);
      this.guard.exited(Date.now() - startedAt, `spare ${handle.describe()} exited while waiting`);
      void this.fill();
    });
  }

  /** A warm spare for `slot` (same GPU), taken out of the spares; a new one starts behind it. */
  takeWarm(slot: number): WorkerHandle | undefined {
    const gpu = this.options.gpuOfSlot(slot);
    const index = this.ready.findIndex((h) => h.alive && h.gpuIndex === gpu);
    if (index < 0) return undefined;
    const [handle] = this.ready.splice(index, 1);
    void this.fill();
    return handle;
  }

  /** Pre-spawn: starts the replacement for `slot` while its worker runs its last task(s). */
  prespawn(slot: number): void {
    if (this.prespawned.has(slot) || this.closed) return;
    // A failed pre-spawn is replaced by a normal respawn.
    this.prespawned.set(
      slot,
      this.options.launch(slot, slot).catch(() => undefined),
    );
  }

  /** The slot's pre-spawned replacement if one was started (alive or not); removes it. */
  takePrespawned(slot: number): Promise<WorkerHandle | undefined> | undefined {
    const pending = this.prespawned.get(slot);
    this.prespawned.delete(slot);
    return pending;
  }

  async close(cause: KillCause): Promise<void> {
    this.closed = true;
    const pending = await Promise.all([...this.prespawned.values()]);
    this.prespawned.clear();
    const warm = this.ready.splice(0);
    await Promise.all([...pending, ...warm].map((h) => h?.stop(cause, this.options.killTimeoutMs)));
  }
}

const SPARES_CLOSED: KillCause = {
  reason: 'shutdown',
  error: { code: ErrorCode.SHUTTING_DOWN, message: 'pool closed' },
};
