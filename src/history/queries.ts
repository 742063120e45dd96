import { eventFromRow, taskFromRow, type MemoryEventRow, type TaskRow } from './schema.js';
import type { Database } from './sqlite.js';
import type { Connection } from './connection.js';

/** Per (worker pid, ok, code): how many tasks and when; what the report needs without every row. */
export interface TaskCount {
  workerPid: number | undefined;
  ok: boolean;
  code: string | undefined;
  count: number;
  first: number;
  last: number;
}

/** The reads and the clear behind the store's public calls; each throws what SQLite throws. */
export function selectRecentTasks(connection: Connection, last: number): TaskRow[] {
  return connection.recentTasks.all(last).map((r) => taskFromRow(r as Record<string, unknown>));
}

export function selectMemoryEvents(connection: Connection, limit: number): MemoryEventRow[] {
  return connection.events.all(limit).map((r) => eventFromRow(r as Record<string, unknown>));
}

export function selectTaskCounts(db: Database): TaskCount[] {
  const rows = db
    .prepare(
      `SELECT worker_pid, ok, code, COUNT(*) AS n, MIN(at) AS first, MAX(at) AS last
         FROM tasks GROUP BY worker_pid, ok, code`,
    )
    .all() as Array<Record<string, number | string | null>>;
  return rows.map((r) => ({
    workerPid: (r.worker_pid as number | null) ?? undefined,
    ok: r.ok === 1,
    code: (r.code as string | null) ?? undefined,
    count: r.n as number,
    first: r.first as number,
    last: r.last as number,
  }));
}

/** Deletes every row of both tables; returns how many. */
export function deleteAll(db: Database): number {
  let removed = 0;
  db.transaction(() => {
    removed += db.prepare('DELETE FROM tasks').run().changes;
    removed += db.prepare('DELETE FROM memory_events').run().changes;
  })();
  db.pragma('wal_checkpoint(TRUNCATE)');
  return removed;
}
