import type { SupervisorEventMap } from '../events.js';
import { LeakEstimator } from '../core/leak-estimator.js';
import type { WorkerStats } from '../pool/pool-stats.js';
import type { Supervisor, SupervisorStats } from '../service/facade.js';
import { TotalsCounter, type ConsoleTotals } from './console-totals.js';
import type { EventStreamHub } from './event-stream.js';
import { Ring } from './ring.js';

/** The readiness verdict of /readyz, computed from the workers of a snapshot already taken. */
export type ReadinessOf = (
  workers: ReadonlyArray<{ state: WorkerStats['state'] }>,
) => Promise<{ ready: boolean; body: unknown }>;

export interface ConsoleSnapshot extends SupervisorStats {
  t: number;
  workers: Array<WorkerStats & { leakMiBPerTask: number | null }>;
  console: ConsoleTotals;
  readiness: { ready: boolean; body: unknown };
  degraded: string | null;
}

interface Sample {
  t: number;
  workers: Array<{ slot: number; pid: number; rssMiB: number | null; gpuMiB: number | null }>;
}

type LogName = 'cleanup' | 'recycle';
interface LogEntry {
  t: number;
  msg: LogName;
  fields: SupervisorEventMap[LogName];
}

interface RecycleMark {
  t: number;
  slot: number | null;
  reason: string;
  detail: string;
  oldPid: number;
  newPid: number | undefined;
  freedMiB: number | undefined;
  gpuFreedMiB: number | undefined;
}

type FeedEvent = { type: keyof SupervisorEventMap; t: number; slot?: number | null } & Record<
  string,
  unknown
>;

export interface ConsoleFeedOptions {
  snapshotMs: number;
  flushMs: number;
  /** Timeline samples kept (one per snapshot): what a freshly opened page draws at once. */
  timelineSamples: number;
  /** Cleanup lines forwarded per flush; the rest are counted (a busy pool cleans thousands a second). */
  cleanupsPerFlush: number;
}

const DEFAULTS: ConsoleFeedOptions = {
  snapshotMs: 1000,
  flushMs: 200,
  timelineSamples: 600,
  cleanupsPerFlush: 20,
};

/**
 * What every open console sees, produced once for all of them: the event bus's events, batched and
 * forwarded every `flushMs`, and one stats snapshot per `snapshotMs` while at least one page is open.
 * It also keeps what a page opened later needs at once: recent samples, recycle marks and log lines.
 */
export class ConsoleFeed {
  private readonly options: ConsoleFeedOptions;
  private readonly totals = new TotalsCounter();
  private readonly timeline: Ring<Sample>;
  private readonly marks = new Ring<RecycleMark>(200);
  private readonly log = new Ring<LogEntry>(100);
  private readonly leaks = new Map<number, LeakEstimator>();
  private readonly slots = new Map<number, number>();
  private readonly unsubscribe: Array<() => void>;
  private pending: FeedEvent[] = [];
  /** Only the latest state per worker is forwarded: a busy worker changes state several times a task. */
  private states = new Map<number, FeedEvent>();
  private skippedCleanups = 0;
  private cleanupsThisFlush = 0;
  private flushTimer: NodeJS.Timeout | undefined;
  private sampler: NodeJS.Timeout | undefined;
  private sampling: Promise<ConsoleSnapshot> | undefined;
  private last: ConsoleSnapshot | undefined;
  private closed = false;

  constructor(
    private readonly supervisor: Supervisor,
    private readonly hub: EventStreamHub,
    private readonly readinessOf: ReadinessOf,
    private readonly degradedReason: () => string | undefined,
    options: Partial<ConsoleFeedOptions> = {},
  ) {
    this.options = { ...DEFAULTS, ...options };
    this.timeline = new Ring(this.options.timelineSamples);
    const { events } = supervisor;
    this.unsubscribe = [
      events.on('task', (e) => this.totals.task(e)),
      events.on('cleanup', (e) => this.onCleanup(e)),
      events.on('recycle', (e) => this.onRecycle(e)),
      events.on('worker-ready', (e) => {
        this.slots.set(e.pid, e.slot);
        this.queue({ type: 'worker-ready', t: Date.now(), ...e });
      }),
      events.on('worker-exit', (e) => {
        this.leaks.delete(e.pid);
        this.states.delete(e.pid);
        this.queue({ type: 'worker-exit', t: Date.now(), ...e });
      }),
      events.on('transition', (e) => {
        this.slots.set(e.pid, e.slot);
        if (this.hub.size === 0) return;
        this.states.set(e.pid, { type: 'transition', t: Date.now(), ...e });
        this.scheduleFlush();
      }),
      events.on('degraded', (e) => this.queue({ type: 'degraded', t: Date.now(), ...e })),
    ];
  }

  /** The first frame a new stream gets: the latest snapshot and the recent past. */
  async opening(): Promise<{
    snapshot: ConsoleSnapshot;
    timeline: Sample[];
    marks: RecycleMark[];
    log: LogEntry[];
  }> {
    const fresh = this.last && Date.now() - this.last.t < this.options.snapshotMs * 1.5;
    const snapshot = fresh ? this.last! : await this.sample();
    this.ensureSampling();
    return {
      snapshot,
      timeline: this.timeline.toArray(),
      marks: this.marks.toArray(),
      log: this.log.toArray(),
    };
  }

  close(): void {
    this.closed = true;
    for (const off of this.unsubscribe) off();
    clearInterval(this.sampler);
    clearTimeout(this.flushTimer);
  }

  private ensureSampling(): void {
    if (this.sampler || this.closed) return;
    this.sampler = setInterval(() => {
      if (this.hub.size === 0) {
        // Nobody watching: no stats readings (they cost a pidusage call per worker).
        clearInterval(this.sampler);
        this.sampler = undefined;
        return;
      }
      void this.sample()
        .then((snapshot) => this.hub.broadcast('stats', snapshot))
        .catch(() => undefined);
    }, this.options.snapshotMs);
    this.sampler.unref();
  }

  /** One stats reading shared by everyone; a reading still under way is joined, not repeated. */
  private sample(): Promise<ConsoleSnapshot> {
    this.sampling ??= this.read().finally(() => (this.sampling = undefined));
    return this.sampling;
  }

  private async read(): Promise<ConsoleSnapshot> {
    const stats = await this.supervisor.stats();
    const t = Date.now();
    const workers = stats.workers.map((w) => {
      this.slots.set(w.pid, w.slot);
      const rate = this.leaks.get(w.pid)?.miBPerTask;
      return { ...w, leakMiBPerTask: rate === undefined ? null : Math.round(rate * 100) / 100 };
    });
    const snapshot: ConsoleSnapshot = {
      ...stats,
      t,
      workers,
      console: this.totals.snapshot(),
      readiness: await this.readinessOf(stats.workers),
      degraded: this.degradedReason() ?? null,
    };
    this.timeline.push({
      t,
      workers: workers
        .filter((w) => w.state !== 'exited')
        .map((w) => ({ slot: w.slot, pid: w.pid, rssMiB: w.rssMiB ?? null, gpuMiB: w.gpuMiB })),
    });
    this.last = snapshot;
    return snapshot;
  }

  private onCleanup(e: SupervisorEventMap['cleanup']): void {
    this.totals.cleanup(e);
    if (e.memoryScope !== 'process') {
      let leak = this.leaks.get(e.pid);
      if (!leak) this.leaks.set(e.pid, (leak = new LeakEstimator()));
      leak.add(e.rssAfterMiB);
    }
    const t = Date.now();
    this.log.push({ t, msg: 'cleanup', fields: e });
    if (this.hub.size === 0) return;
    if (this.cleanupsThisFlush >= this.options.cleanupsPerFlush) {
      this.skippedCleanups++;
      return;
    }
    this.cleanupsThisFlush++;
    this.queue({ type: 'cleanup', t, slot: this.slots.get(e.pid) ?? null, ...e });
  }

  private onRecycle(e: SupervisorEventMap['recycle']): void {
    this.totals.recycle(e);
    const t = Date.now();
    const slot = this.slots.get(e.oldPid) ?? null;
    if (e.newPid !== undefined && slot !== null) this.slots.set(e.newPid, slot);
    this.leaks.delete(e.oldPid);
    this.log.push({ t, msg: 'recycle', fields: e });
    this.marks.push({
      t,
      slot,
      reason: e.reason,
      detail: e.detail,
      oldPid: e.oldPid,
      newPid: e.newPid,
      freedMiB: e.rssFreedMiB,
      gpuFreedMiB: e.gpuFreedMiB,
    });
    this.queue({ type: 'recycle', t, slot, ...e });
  }

  private queue(event: FeedEvent): void {
    if (this.hub.size === 0) return;
    this.pending.push(event);
    this.scheduleFlush();
  }

  private scheduleFlush(): void {
    if (this.flushTimer || this.closed || this.hub.size === 0) return;
    this.flushTimer = setTimeout(() => this.flush(), this.options.flushMs);
    this.flushTimer.unref();
  }

  private flush(): void {
    this.flushTimer = undefined;
    const events = [...this.pending, ...this.states.values()];
    const skipped = this.skippedCleanups;
    this.pending = [];
    this.states = new Map();
    this.skippedCleanups = 0;
    this.cleanupsThisFlush = 0;
    if (events.length > 0 || skipped > 0) this.hub.broadcast('update', { events, skippedCleanups: skipped });
  }
}
