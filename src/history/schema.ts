import type { TaskRecord } from '../events.js';
import type { Database } from './sqlite.js';
import type { StartPhases } from '../protocol/start-phases.js';

/** A finished task, as the store keeps it: the same record as the in-memory ring's. */
export type TaskRow = TaskRecord;

/**
 * A memory reading worth keeping: a worker's start (its baseline), a cleanup after a task (or an
 * idle release), or a recycle (the old worker's last RSS, what its exit gave back, the new one's
 * baseline). MiB throughout; undefined where that figure was not measured.
 */
export interface MemoryEventRow {
  at: number;
  kind: 'start' | 'cleanup' | 'recycle';
  /** The worker the reading is about (for a recycle: the old one). */
  pid: number;
  /** Recycle only: the replacement. */
  newPid: number | undefined;
  slot: number | undefined;
  /** Cleanup: light | force | idle. */
  mode: string | undefined;
  /** Recycle: every-n | rss | gpu | leak | max-age | admin | crash | timeout | cancel | shutdown. */
  reason: string | undefined;
  detail: string | undefined;
  rssBeforeMiB: number | undefined;
  rssAfterMiB: number | undefined;
  rssFreedMiB: number | undefined;
  gpuBeforeMiB: number | undefined;
  gpuAfterMiB: number | undefined;
  gpuFreedMiB: number | undefined;
  tasksDone: number | undefined;
  ms: number | undefined;
  /** Start only: where the start went (fork, boot, imports, binding, sessions, setup). */
  phases?: StartPhases | undefined;
}

/**
 * Migrations by PRAGMA user_version: entry i brings a database from version i to i + 1. Append new
 * entries; never edit a shipped one.
 */
const MIGRATIONS: readonly string[] = [
  `CREATE TABLE tasks (
     seq INTEGER PRIMARY KEY,
     id TEXT NOT NULL,
     model TEXT,
     worker_pid INTEGER,
     ok INTEGER NOT NULL,
     code TEXT,
     queue_ms REAL NOT NULL,
     run_ms REAL,
     at INTEGER NOT NULL
   );
   CREATE INDEX tasks_at ON tasks(at);
   CREATE TABLE memory_events (
     seq INTEGER PRIMARY KEY,
     at INTEGER NOT NULL,
     kind TEXT NOT NULL,
     pid INTEGER NOT NULL,
     new_pid INTEGER,
     slot INTEGER,
     mode TEXT,
     reason TEXT,
     detail TEXT,
     rss_before REAL,
     rss_after REAL,
     rss_freed REAL,
     gpu_before REAL,
     gpu_after REAL,
     gpu_freed REAL,
     tasks_done INTEGER,
     ms REAL
   );
   CREATE INDEX memory_events_at ON memory_events(at);`,
  // 1 -> 2: a start's phases (JSON of StartPhases), and its total as a column of its own to query.
  `ALTER TABLE memory_events ADD COLUMN start_phases TEXT;
   ALTER TABLE memory_events ADD COLUMN start_total_ms REAL;`,
];

export const SCHEMA_VERSION = MIGRATIONS.length;

/** Brings `db` to SCHEMA_VERSION; refuses a file written by a newer version rather than guess. */
export function migrate(db: Database): void {
  const version = db.pragma('user_version', { simple: true }) as number;
  if (version > SCHEMA_VERSION) {
    throw Object.assign(
      new Error(`history.db has schema version ${version}; this build knows up to ${SCHEMA_VERSION}`),
      { code: 'SCHEMA_TOO_NEW' },
    );
  }
  for (let v = version; v < SCHEMA_VERSION; v++) {
    db.transaction(() => {
      db.exec(MIGRATIONS[v]!);
      db.pragma(`user_version = ${v + 1}`);
    })();
  }
}

export const INSERT_TASK = `INSERT INTO tasks (id, model, worker_pid, ok, code, queue_ms, run_ms, at)
  VALUES (?, ?, ?, ?, ?, ?, ?, ?)`;

export function taskParams(t: TaskRow): unknown[] {
  return [
    t.id,
    t.model ?? null,
    t.workerPid ?? null,
    t.ok ? 1 : 0,
    t.code ?? null,
    t.queueMs,
    t.runMs ?? null,
    t.at,
  ];
}

export const INSERT_EVENT = `INSERT INTO memory_events (at, kind, pid, new_pid, slot, mode, reason, detail,
  rss_before, rss_after, rss_freed, gpu_before, gpu_after, gpu_freed, tasks_done, ms, start_phases,
  start_total_ms)
  VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`;

export function eventParams(e: MemoryEventRow): unknown[] {
  const n = (v: number | string | undefined): number | string | null => v ?? null;
  return [
    e.at,
    e.kind,
    e.pid,
    n(e.newPid),
    n(e.slot),
    n(e.mode),
    n(e.reason),
    n(e.detail),
    n(e.rssBeforeMiB),
    n(e.rssAfterMiB),
    n(e.rssFreedMiB),
    n(e.gpuBeforeMiB),
    n(e.gpuAfterMiB),
    n(e.gpuFreedMiB),
    n(e.tasksDone),
    n(e.ms),
    e.phases ? JSON.stringify(e.phases) : null,
    e.phases?.totalMs ?? null,
  ];
}

export const SELECT_TASKS = `SELECT id, model, worker_pid, ok, code, queue_ms, run_ms, at FROM tasks
  ORDER BY seq DESC LIMIT ?`;

export function taskFromRow(r: Record<string, unknown>): TaskRow {
  return {
    id: r.id as string,
    model: (r.model as string | null) ?? undefined,
    workerPid: (r.worker_pid as number | null) ?? undefined,
    ok: r.ok === 1,
    code: (r.code as string | null) ?? undefined,
    queueMs: r.queue_ms as number,
    runMs: (r.run_ms as number | null) ?? undefined,
    at: r.at as number,
  };
}

export const SELECT_EVENTS = `SELECT * FROM (SELECT * FROM memory_events ORDER BY seq DESC LIMIT ?) ORDER BY seq`;

export function eventFromRow(r: Record<string, unknown>): MemoryEventRow {
  const u = <T>(v: unknown): T | undefined => (v === null ? undefined : (v as T));
  return {
    at: r.at as number,
    kind: r.kind as MemoryEventRow['kind'],
    pid: r.pid as number,
    newPid: u(r.new_pid),
    slot: u(r.slot),
    mode: u(r.mode),
    reason: u(r.reason),
    detail: u(r.detail),
    rssBeforeMiB: u(r.rss_before),
    rssAfterMiB: u(r.rss_after),
    rssFreedMiB: u(r.rss_freed),
    gpuBeforeMiB: u(r.gpu_before),
    gpuAfterMiB: u(r.gpu_after),
    gpuFreedMiB: u(r.gpu_freed),
    tasksDone: u(r.tasks_done),
    ms: u(r.ms),
    ...(typeof r.start_phases === 'string' ? { phases: parsePhases(r.start_phases) } : {}),
  };
}

/** A stored start's phases; a row no longer readable as JSON is reported without them. */
function parsePhases(text: string): StartPhases | undefined {
  try {
    return JSON.parse(text) as StartPhases;
  } catch {
    return undefined;
  }
}
