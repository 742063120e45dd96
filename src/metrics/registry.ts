import { createRequire } from 'node:module';
import type * as PromClient from 'prom-client';
import type { Registry } from 'prom-client';
import type { Supervisor, SupervisorStats } from '../service/facade.js';
import type { WorkerState } from '../core/life.js';
import { DegradedWatch } from './degraded.js';

type WorkerStats = SupervisorStats['workers'][number];

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

  // The same registry and prefix for every metric; name, help, labels and type are the scrape's contract.
  const counter = <L extends string = never>(name: string, help: string, labelNames: readonly L[] = []) =>
    new Counter<L>({ name: `${p}${name}`, help, labelNames, registers });
  const histogram = (name: string, help: string, buckets: number[]) =>
    new Histogram({ name: `${p}${name}`, help, buckets, registers });
  const gauge = <L extends string = never>(
    name: string,
    help: string,
    collect: (this: PromClient.Gauge<L>) => void | Promise<void>,
    labelNames: readonly L[] = [],
  ) => new Gauge<L>({ name: `${p}${name}`, help, labelNames, registers, collect });
  /** One figure of the scrape's stats(). */
  const statGauge = (name: string, help: string, read: (s: SupervisorStats) => number) =>
    gauge(name, help, async function () {
      this.set(read(await stats()));
    });
  // Per-worker series: rebuilt on every scrape, so a recycled worker's pid stops being exported.
  const perWorkerGauge = (name: string, help: string, read: (w: WorkerStats) => number | undefined) =>
    gauge(
      name,
      help,
      async function () {
        const { workers } = await stats();
        this.reset();
        for (const w of workers) {
          const value = read(w);
          if (value !== undefined) this.set({ slot: w.slot, pid: w.pid }, value);
        }
      },
      ['slot', 'pid'],
    );

  const tasks = counter('tasks_total', 'Tasks answered, by status (ok, failed) and error code', [
    'status',
    'code',
  ]);
  const runSeconds = histogram(
    'task_run_seconds',
    'Time a task ran on a worker (tasks that reached a worker), seconds',
    RUN_BUCKETS,
  );
  const waitSeconds = histogram(
    'task_wait_seconds',
    'Time a task waited in the queue before a worker took it (or until it was answered), seconds',
    WAIT_BUCKETS,
  );
  const cleanups = counter(
    'cleanups_total',
    'Worker cleanups measured, by mode (light, force, idle; release: a session released in place)',
    ['mode'],
  );
  const recycles = counter(
    'recycles_total',
    'Workers replaced, by reason (every-n, rss, gpu, leak, max-age, admin, crash, timeout, ...)',
    ['reason'],
  );
  const limitKills = counter(
    'limit_kills_total',
    'Workers killed mid-task over a hard limit, by limit (rss: limits.rssMiB, gpu: limits.gpuMiB)',
    ['limit'],
  );
  // Counters only go up: a cleanup after which memory grew frees 0, as in the totals of `stats`.
  const freedRam = counter(
    'freed_ram_mib_total',
    'Worker RSS given back, MiB, by source (light, force, idle cleanup; recycle; release)',
    ['source'],
  );
  const freedGpu = counter(
    'freed_gpu_mib_total',
    'GPU memory given back, MiB, by source (light, force, idle cleanup; recycle; release)',
    ['source'],
  );
  const workerExits = counter(
    'worker_exits_total',
    'Worker processes that exited, by whether the supervisor asked for it',
    ['expected'],
  );
  const startFailures = counter('worker_start_failures_total', 'Worker starts that failed');

  const watch = new DegradedWatch(supervisor.events, supervisor.config.minUptimeMs);
  gauge(
    'degraded',
    '1 while every worker slot keeps failing to start (tasks get E_WORKERS_UNAVAILABLE)',
    function () {
      this.set(watch.degraded ? 1 : 0);
    },
  );
  statGauge('queue_size', 'Tasks waiting for a worker', (s) => s.queue.size);
  statGauge('queue_pending', 'Tasks taken from the queue and running (or about to)', (s) => s.queue.pending);
  statGauge('supervisor_rss_mib', "The supervisor process's own RSS, MiB", (s) => s.supervisor.rssMiB);
  gauge(
    'workers',
    'Worker slots by state',
    async function () {
      const { workers } = await stats();
      for (const state of WORKER_STATES) this.set({ state }, workers.filter((w) => w.state === state).length);
    },
    ['state'],
  );
  perWorkerGauge(
    'worker_rss_mib',
    'Each live worker process RSS as the supervisor measures it, MiB',
    (w) => w.rssMiB,
  );
  perWorkerGauge(
    'worker_gpu_mib',
    "Each worker's own GPU memory, MiB (only where nvidia-smi attributes memory per process)",
    (w) => (w.gpuMiB !== null && w.state !== 'exited' ? w.gpuMiB : undefined),
  );

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
    events.on('release', (e) => {
      // An in-place session release is a cleanup too (mode and source 'release').
      cleanups.inc({ mode: 'release' });
      if (e.rssBeforeMiB !== undefined && e.rssAfterMiB !== undefined)
        freedRam.inc({ source: 'release' }, Math.max(0, e.rssBeforeMiB - e.rssAfterMiB));
      // A device's figures are the worker's own only under process attribution.
      if (e.gpuBeforeMiB !== undefined && e.gpuAfterMiB !== undefined && e.attribution === 'process')
        freedGpu.inc({ source: 'release' }, Math.max(0, e.gpuBeforeMiB - e.gpuAfterMiB));
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
