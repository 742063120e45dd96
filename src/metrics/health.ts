import type { WorkerState } from '../core/life.js';
import type { Supervisor } from '../service/facade.js';
import type { SupervisorMetrics } from './registry.js';

export interface Liveness {
  status: 'ok';
  uptimeMs: number;
}

export type Readiness =
  | { ready: true; body: { status: 'ready'; workers: { serving: number; total: number } } }
  | { ready: false; body: { status: 'unavailable'; reason: string } };

/** A worker in these states takes (or is finishing) tasks: a busy pool is still ready to queue work. */
const SERVING: ReadonlySet<WorkerState> = new Set(['ready', 'busy', 'cleaning']);

/** Answering at all is the proof: the process and its event loop are alive. */
export function liveness(): Liveness {
  return { status: 'ok', uptimeMs: Math.round(process.uptime() * 1000) };
}

/**
 * Ready = the supervisor is running, the pool is not degraded, and at least one worker serves.
 * `Supervisor.state` is read when the build has it (it also tells "stopping" while draining);
 * otherwise a settled `closed` says stopped and the workers' states tell the rest.
 */
export class ReadinessCheck {
  private stopped = false;

  constructor(
    private readonly supervisor: Supervisor,
    private readonly metrics: SupervisorMetrics,
  ) {
    void supervisor.closed.then(() => (this.stopped = true));
  }

  async check(): Promise<Readiness> {
    return this.verdict(async () => (await this.supervisor.stats()).workers);
  }

  /** The same verdict from worker stats the caller already has (the console's snapshot each second). */
  of(workers: ReadonlyArray<{ state: WorkerState }>): Promise<Readiness> {
    return this.verdict(() => Promise.resolve(workers));
  }

  private async verdict(workersOf: () => Promise<ReadonlyArray<{ state: WorkerState }>>): Promise<Readiness> {
    const state = (this.supervisor as Supervisor & { readonly state?: string }).state;
    if (this.stopped || (state !== undefined && state !== 'running')) {
      return notReady(`supervisor is ${state ?? 'stopped'}`);
    }
    const degraded = this.metrics.degradedReason;
    if (degraded !== undefined) return notReady(`pool is degraded: ${degraded}`);
    const workers = await workersOf();
    const serving = workers.filter((w) => SERVING.has(w.state)).length;
    if (serving === 0) {
      return notReady(
        workers.length === 0 ? 'no workers started yet' : `no worker is ready (${describe(workers)})`,
      );
    }
    return { ready: true, body: { status: 'ready', workers: { serving, total: workers.length } } };
  }
}

function notReady(reason: string): Readiness {
  return { ready: false, body: { status: 'unavailable', reason } };
}

function describe(workers: ReadonlyArray<{ state: WorkerState }>): string {
  const counts = new Map<WorkerState, number>();
  for (const w of workers) counts.set(w.state, (counts.get(w.state) ?? 0) + 1);
  return [...counts].map(([state, n]) => `${n} ${state}`).join(', ');
}
