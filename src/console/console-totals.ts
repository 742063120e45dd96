import type { SupervisorEventMap } from '../events.js';

/** The console's totals beyond stats().totals, counted from events since the HTTP front started. */
export interface ConsoleTotals {
  since: number;
  ok: number;
  failedByCode: Record<string, number>;
  recyclesByReason: Record<string, number>;
  cleanups: number;
  freed: {
    cleanup: { ramMiB: number; gpuMiB: number };
    recycle: { ramMiB: number; gpuMiB: number };
  };
  /** Tasks answered per second over the last THROUGHPUT_WINDOW_S seconds. */
  throughputPerS: number;
}

const THROUGHPUT_WINDOW_S = 10;

export class TotalsCounter {
  private readonly totals: Omit<ConsoleTotals, 'throughputPerS'>;
  /** Answers per whole second, the last THROUGHPUT_WINDOW_S + 1 seconds: a ring indexed by second. */
  private readonly perSecond = new Array<number>(THROUGHPUT_WINDOW_S + 1).fill(0);
  private readonly secondOf = new Array<number>(THROUGHPUT_WINDOW_S + 1).fill(-1);

  constructor(private readonly now: () => number = Date.now) {
    this.totals = {
      since: now(),
      ok: 0,
      failedByCode: {},
      recyclesByReason: {},
      cleanups: 0,
      freed: { cleanup: { ramMiB: 0, gpuMiB: 0 }, recycle: { ramMiB: 0, gpuMiB: 0 } },
    };
  }

  task(e: SupervisorEventMap['task']): void {
    if (e.ok) this.totals.ok++;
    else {
      const code = e.code ?? 'unknown';
      this.totals.failedByCode[code] = (this.totals.failedByCode[code] ?? 0) + 1;
    }
    const second = Math.floor(this.now() / 1000);
    const i = second % this.perSecond.length;
    if (this.secondOf[i] !== second) {
      this.secondOf[i] = second;
      this.perSecond[i] = 0;
    }
    this.perSecond[i]!++;
  }

  cleanup(e: SupervisorEventMap['cleanup']): void {
    this.totals.cleanups++;
    // Negative "freed" (RSS grew during a cleanup) is noise, not memory given back: as in /metrics.
    this.totals.freed.cleanup.ramMiB += Math.max(0, e.freedMiB);
    this.totals.freed.cleanup.gpuMiB += Math.max(0, e.gpuFreedMiB ?? 0);
  }

  recycle(e: SupervisorEventMap['recycle']): void {
    this.totals.recyclesByReason[e.reason] = (this.totals.recyclesByReason[e.reason] ?? 0) + 1;
    this.totals.freed.recycle.ramMiB += Math.max(0, e.rssFreedMiB ?? 0);
    this.totals.freed.recycle.gpuMiB += Math.max(0, e.gpuFreedMiB ?? 0);
  }

  snapshot(): ConsoleTotals {
    // The current second is still filling: the rate is over the last full seconds.
    const current = Math.floor(this.now() / 1000);
    let answered = 0;
    this.secondOf.forEach((second, i) => {
      if (second < current && second >= current - THROUGHPUT_WINDOW_S) answered += this.perSecond[i]!;
    });
    const round = (miB: number): number => Math.round(miB * 10) / 10;
    const { cleanup, recycle } = this.totals.freed;
    return {
      ...this.totals,
      failedByCode: { ...this.totals.failedByCode },
      recyclesByReason: { ...this.totals.recyclesByReason },
      freed: {
        cleanup: { ramMiB: round(cleanup.ramMiB), gpuMiB: round(cleanup.gpuMiB) },
        recycle: { ramMiB: round(recycle.ramMiB), gpuMiB: round(recycle.gpuMiB) },
      },
      throughputPerS: Math.round((answered / THROUGHPUT_WINDOW_S) * 10) / 10,
    };
  }
}
