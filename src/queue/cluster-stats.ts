/**
 * Every host's stats in Redis: each consumer writes one key (its host name and pid) with a TTL and
 * refreshes it; a host that dies simply drops out when its key expires. Readers SCAN for the keys (never
 * KEYS, which blocks Redis while it walks the whole keyspace).
 */
import type { RedisClient } from 'bullmq';
import type { SupervisorStats } from '../service/facade.js';
import { connectionOptions, type RedisConnection } from './redis-url.js';

export interface HostStats {
  host: string;
  pid: number;
  queue: string;
  /** When this row was written (epoch ms). */
  at: number;
  uptimeMs: number;
  supervisorRssMiB: number;
  workers: Array<{
    pid: number;
    state: string;
    tasksDone: number;
    rssMiB: number | null;
    gpuMiB: number | null;
  }>;
  gpu: Array<{ index: number; name: string; usedMiB: number | null; totalMiB: number | null }> | null;
  totals: { tasks: number; ok: number; failed: number; recycles: number; freedMiB: number };
  /** Jobs this host's BullMQ worker holds now, and has finished since it started. */
  jobs: { active: number; completed: number; failed: number };
}

const DEFAULT_PREFIX = 'bull';

export function hostKeyPattern(queue: string, prefix = DEFAULT_PREFIX): string {
  return `${prefix}:${queue}:gpu-supervisor:host:*`;
}

export function hostKey(queue: string, host: string, pid: number, prefix = DEFAULT_PREFIX): string {
  return hostKeyPattern(queue, prefix).replace(/\*$/, `${host}:${pid}`);
}

export function hostStatsOf(
  stats: SupervisorStats,
  identity: { host: string; pid: number; queue: string },
  jobs: HostStats['jobs'],
): HostStats {
  return {
    ...identity,
    at: Date.now(),
    uptimeMs: stats.supervisor.uptimeMs,
    supervisorRssMiB: stats.supervisor.rssMiB,
    workers: stats.workers.map((w) => ({
      pid: w.pid,
      state: w.state,
      tasksDone: w.tasksDone,
      rssMiB: w.rssMiB ?? null,
      gpuMiB: w.gpuMiB,
    })),
    gpu:
      stats.gpu?.devices.map((d) => ({
        index: d.index,
        name: d.name,
        usedMiB: d.usedMiB ?? null,
        totalMiB: d.totalMiB ?? null,
      })) ?? null,
    totals: {
      tasks: stats.totals.tasks,
      ok: stats.totals.ok,
      failed: stats.totals.failed,
      recycles: stats.totals.recycles,
      freedMiB: stats.totals.freedMiB,
    },
    jobs,
  };
}

export async function publishHostStats(
  client: RedisClient,
  key: string,
  row: HostStats,
  ttlMs: number,
): Promise<void> {
  await client.set(key, JSON.stringify(row), { PX: ttlMs });
}

/** Rows from every key matching the pattern on an open client, sorted by host then pid. */
export async function scanHostStats(client: RedisClient, pattern: string): Promise<HostStats[]> {
  const rows: HostStats[] = [];
  let cursor = '0';
  do {
    const [next, keys] = await client.scan(cursor, { MATCH: pattern, COUNT: 200 });
    cursor = next;
    for (const key of keys) {
      const text = await client.get(key); // expired between SCAN and GET: gone, skip it
      if (text === null) continue;
      try {
        rows.push(JSON.parse(text) as HostStats);
      } catch {
        // not ours; a foreign key under our pattern is not worth failing the whole table for
      }
    }
  } while (cursor !== '0');
  return rows.sort((a, b) => a.host.localeCompare(b.host) || a.pid - b.pid);
}

/** Every live host consuming `queue` (what `gpu-supervisor stats --cluster` shows). */
export async function readClusterStats(
  connection: RedisConnection,
  queue: string,
  prefix?: string,
): Promise<HostStats[]> {
  // Loaded on use: the library entry exports this module, and must not load bullmq at import time.
  const { Queue } = await import('bullmq');
  const q = new Queue(queue, { connection: connectionOptions(connection), ...(prefix ? { prefix } : {}) });
  try {
    return await scanHostStats(await q.client, hostKeyPattern(queue, prefix));
  } finally {
    await q.close();
  }
}

const COLUMNS = [
  'host',
  'pid',
  'workers',
  'busy',
  'rss MiB',
  'gpu MiB',
  'tasks',
  'ok',
  'failed',
  'freed MiB',
  'recycles',
  'jobs active',
  'age s',
] as const;

function sum(values: Array<number | null>): number | null {
  const known = values.filter((v): v is number => v !== null);
  return known.length === 0 ? null : known.reduce((a, b) => a + b, 0);
}

function mib(value: number | null): string {
  return value === null ? '-' : value.toFixed(1);
}

/** A plain-text table, one line per host and a total line; "no live hosts" when empty. */
export function formatClusterStats(rows: readonly HostStats[], now = Date.now()): string {
  if (rows.length === 0) return 'no live hosts';
  const cells = rows.map((r) => {
    const gpu = sum(r.workers.map((w) => w.gpuMiB));
    return [
      r.host,
      String(r.pid),
      String(r.workers.length),
      String(r.workers.filter((w) => w.state === 'busy').length),
      mib(sum(r.workers.map((w) => w.rssMiB))),
      mib(gpu),
      String(r.totals.tasks),
      String(r.totals.ok),
      String(r.totals.failed),
      mib(r.totals.freedMiB),
      String(r.totals.recycles),
      String(r.jobs.active),
      ((now - r.at) / 1000).toFixed(1),
    ];
  });
  const total = (pick: (r: HostStats) => number): string => String(rows.reduce((a, r) => a + pick(r), 0));
  cells.push([
    'total',
    `${rows.length} hosts`,
    total((r) => r.workers.length),
    total((r) => r.workers.filter((w) => w.state === 'busy').length),
    mib(sum(rows.map((r) => sum(r.workers.map((w) => w.rssMiB))))),
    mib(sum(rows.map((r) => sum(r.workers.map((w) => w.gpuMiB))))),
    total((r) => r.totals.tasks),
    total((r) => r.totals.ok),
    total((r) => r.totals.failed),
    mib(rows.reduce((a, r) => a + r.totals.freedMiB, 0)),
    total((r) => r.totals.recycles),
    total((r) => r.jobs.active),
    '',
  ]);
  const widths = COLUMNS.map((c, i) => Math.max(c.length, ...cells.map((row) => row[i]?.length ?? 0)));
  const line = (row: readonly string[]): string =>
    row
      .map((cell, i) => (i < 2 ? cell.padEnd(widths[i] ?? 0) : cell.padStart(widths[i] ?? 0)))
      .join('  ')
      .trimEnd();
  return [line(COLUMNS), ...cells.map(line)].join('\n');
}
