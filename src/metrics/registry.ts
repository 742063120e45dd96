import { createRequire } from 'node:module';
import type * as PromClient from 'prom-client';
import type { Registry } from 'prom-client';
import type { Supervisor, SupervisorStats } from '../service/facade.js';
import type { WorkerState } from '../core/life.js';
import { DegradedWatch } from './degraded.js';

export const METRIC_PREFIX = 'gpu_supervisor_';

export interface MetricsOptions {
  /**
   * Also export Node's process metrics (CPU, heap, event-loop lag, GC), prefixed `gpu_supervisor_`.
   * prom-client installs process-wide observers for these that cannot be removed, so turn this on
   * for one registry per process (the daemon does); default false.
   */
  processMetrics?: boolean;
}

export interface SupervisorMetrics {
  /** A registry of its own (never prom-client's global one): two supervisors in one process do not collide. */
  readonly registry: Registry;
  /** The text exposition format of everything below, as /metrics serves it. */
  metrics(): Promise<string>;
  readonly contentType: string;
  /** The pool is degraded (every slot failing to start), as the events told it. */
  readonly degraded: boolean;
  readonly degradedReason: string | undefined;
  /** Unsubscribes from the supervisor's events; the registry keeps its last values. */
  close(): void;
}

const WORKER_STATES: readonly WorkerState[] = [
  'starting',
  'ready',
  'busy',
  'cleaning',
  'draining',
  'stopping',
  'exited',
];
// Tasks range from sub-millisecond echoes to minute-long model runs; waits start at zero.
const RUN_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120];
const WAIT_BUCKETS = [0.0005, 0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60];

/**
 * Prometheus metrics for one supervisor. Counters and histograms are fed by `supervisor.events`
 * (nothing on the hot path calls in here); gauges are read from `supervisor.stats()` when scraped.
 * Library users serve `metrics()` from their own HTTP server; the daemon's is `startHttpFront`.
 */
export function createMetrics(supervisor: Supervisor, options: MetricsOptions = {}): SupervisorMetrics {
  // Loaded on first use, not when the library entry is imported: an app that never asks for metrics
  // never loads prom-client. createRequire keeps createMetrics synchronous (prom-client is CommonJS).
  const { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } = createRequire(import.meta.url)(
    'prom-client',
  ) as typeof PromClient;
  const registry = new Registry();
  const registers = [registry];
  const p = METRIC_PREFIX;
  if (options.processMetrics) collectDefaultMetrics({ register: registry, prefix: p });

  // One stats() per scrape, shared by every gauge that reads it (they collect concurrently).
  let pendingStats: Promise<SupervisorStats> | undefined;
  const stats = (): Promise<SupervisorStats> =>
    (pendingStats ??= supervisor.stats().finally(() => (pendingStats = undefined)));

  const tasks = new Counter({
    name: `${p}tasks_total`,
    help: 'Tasks answered, by status (ok, failed) and error code',
    labelNames: ['status', 'code'] as const,
    registers,
  });
  const runSeconds = new Histogram({
    name: `${p}task_run_seconds`,
    help: 'Time a task ran on a worker (tasks that reached a worker), seconds',
    buckets: RUN_BUCKETS,
    registers,
  });
  const waitSeconds = new Histogram({
    name: `${p}task_wait_seconds`,
    help: 'Time a task waited in the queue before a worker took it (or until it was answered), seconds',
    buckets: WAIT_BUCKETS,
    registers,
  });
  const cleanups = new Counter({
    name: `${p}cleanups_total`,
    help: 'Worker cleanups measured, by mode (light, force, idle)',
    labelNames: ['mode'] as const,
    registers,
  });
  const recycles = new Counter({
    name: `${p}recycles_total`,
    help: 'Workers replaced, by reason (every-n, rss, gpu, leak, max-age, admin, crash, timeout, ...)',
    labelNames: ['reason'] as const,
    registers,
  });
  const limitKills = new Counter({
    name: `${p}limit_kills_total`,
    help: 'Workers killed mid-task over a hard limit, by limit (rss: limits.rssMiB, gpu: limits.gpuMiB)',
    labelNames: ['limit'] as const,
    registers,
  });
  // Counters only go up: a cleanup after which memory grew frees 0, as in the totals of `stats`.
  const freedRam = new Counter({
    name: `${p}freed_ram_mib_total`,
    help: 'Worker RSS given back, MiB, by source (light, force, idle cleanup; recycle)',
    labelNames: ['source'] as const,
    registers,
  });
  const freedGpu = new Counter({
    name: `${p}freed_gpu_mib_total`,
    help: 'GPU memory given back, MiB, by source (light, force, idle cleanup; recycle)',
    labelNames: ['source'] as const,
    registers,
  });
  const workerExits = new Counter({
    name: `${p}worker_exits_total`,
    help: 'Worker processes that exited, by whether the supervisor asked for it',
    labelNames: ['expected'] as const,
    registers,
  });
  const startFailures = new Counter({
    name: `${p}worker_start_failures_total`,
    help: 'Worker starts that failed',
    registers,
  });

  const watch = new DegradedWatch(supervisor.events, supervisor.config.minUptimeMs);
  new Gauge({
    name: `${p}degraded`,
    help: '1 while every worker slot keeps failing to start (tasks get E_WORKERS_UNAVAILABLE)',
    registers,
    collect() {
      this.set(watch.degraded ? 1 : 0);
    },
  });
  new Gauge({
    name: `${p}queue_size`,
    help: 'Tasks waiting for a worker',
    registers,
    async collect() {
      this.set((await stats()).queue.size);
    },
  });
  new Gauge({
    name: `${p}queue_pending`,
    help: 'Tasks taken from the queue and running (or about to)',
    registers,
    async collect() {
      this.set((await stats()).queue.pending);
    },
  });
  new Gauge({
    name: `${p}supervisor_rss_mib`,
    help: "The supervisor process's own RSS, MiB",
    registers,
    async collect() {
      this.set((await stats()).supervisor.rssMiB);
    },
  });
  new Gauge({
    name: `${p}workers`,
    help: 'Worker slots by state',
    labelNames: ['state'] as const,
    registers,
    async collect() {
      const { workers } = await stats();
      for (const state of WORKER_STATES) this.set({ state }, workers.filter((w) => w.state === state).length);
    },
  });
  // Per-worker series: rebuilt on every scrape, so a recycled worker's pid stops being exported.
  new Gauge({
    name: `${p}worker_rss_mib`,
    help: 'Each live worker process RSS as the supervisor measures it, MiB',
    labelNames: ['slot', 'pid'] as const,
    registers,
    async collect() {
      const { workers } = await stats();
      this.reset();
      for (const w of workers) {
        if (w.rssMiB !== undefined) this.set({ slot: w.slot, pid: w.pid }, w.rssMiB);
      }
    },
  });
  new Gauge({
    name: `${p}worker_gpu_mib`,
    help: "Each worker's own GPU memory, MiB (only where nvidia-smi attributes memory per process)",
    labelNames: ['slot', 'pid'] as const,
    registers,
    async collect() {
      const { workers } = await stats();
      this.reset();
      for (const w of workers) {
        if (w.gpuMiB !== null && w.state !== 'exited') this.set({ slot: w.slot, pid: w.pid }, w.gpuMiB);
      }
    },
  });

  const { events } = supervisor;
  const unsubscribe = [
    events.on('task', (e) => {
      if (e.ok) tasks.inc({ status: 'ok' });
      else tasks.inc({ status: 'failed', code: e.code ?? 'unknown' });
      waitSeconds.observe(e.queueMs / 1000);
      if (e.runMs !== undefined) runSeconds.observe(e.runMs / 1000);
    }),
    events.on('cleanup', (e) => {
      cleanups.inc({ mode: e.mode });
      freedRam.inc({ source: e.mode }, Math.max(0, e.freedMiB));
      if (e.gpuFreedMiB !== undefined) freedGpu.inc({ source: e.mode }, Math.max(0, e.gpuFreedMiB));
    }),
    events.on('recycle', (e) => {
      recycles.inc({ reason: e.reason });
      if (e.rssFreedMiB !== undefined) freedRam.inc({ source: 'recycle' }, Math.max(0, e.rssFreedMiB));
      if (e.gpuFreedMiB !== undefined) freedGpu.inc({ source: 'recycle' }, Math.max(0, e.gpuFreedMiB));
    }),
    events.on('limit', (e) => limitKills.inc({ limit: e.limit })),
    events.on('worker-exit', (e) => workerExits.inc({ expected: String(e.expected) })),
    events.on('worker-start-failed', () => startFailures.inc()),
  ];

  return {
    registry,
    metrics: () => registry.metrics(),
    contentType: registry.contentType,
    get degraded() {
      return watch.degraded;
    },
    get degradedReason() {
      return watch.reason;
    },
    close() {
      for (const off of unsubscribe) off();
      watch.close();
    },
  };
}
