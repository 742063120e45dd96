import type { Database } from './sqlite.js';

const RETENTION_CHUNK = 20_000;
const DAY_MS = 86_400_000;

export interface RetentionOptions {
  /** Rows older than this are deleted; 0 = keep. */
  maxAgeDays: number;
  /** At most this many rows per table (the newest); 0 = unlimited. */
  maxRows: number;
  /** A pass runs after a write at most this often. */
  everyMs: number;
}

export interface Removed {
  tasks: number;
  events: number;
}

/**
 * Deletes rows past maxAgeDays and beyond maxRows (per table), a bounded chunk per pass so a
 * lowered limit never blocks the event loop for long; the next pass continues.
 */
export class Retention {
  private last = 0;

  constructor(private readonly o: RetentionOptions) {}

  /** Whether the write that just succeeded should be followed by a pass. */
  due(now = Date.now()): boolean {
    return now - this.last >= this.o.everyMs;
  }

  /** One pass. A failure goes to onError; the counts reached before it are still returned. */
  run(db: Database, now: number, onError: (error: unknown) => void): Removed {
    const removed = { tasks: 0, events: 0 };
    this.last = now;
    const { maxAgeDays, maxRows } = this.o;
    try {
      db.transaction(() => {
        for (const [table, key] of [
          ['tasks', 'tasks'],
          ['memory_events', 'events'],
        ] as const) {
          if (maxAgeDays > 0) {
            removed[key] += db
              .prepare(
                `DELETE FROM ${table} WHERE seq IN (SELECT seq FROM ${table} WHERE at < ? ORDER BY at LIMIT ?)`,
              )
              .run(now - maxAgeDays * DAY_MS, RETENTION_CHUNK).changes;
          }
          if (maxRows > 0) {
            // seq only grows and rows go from the bottom, so max(seq) - maxRows is the cut.
            removed[key] += db
              .prepare(
                `DELETE FROM ${table} WHERE seq IN (SELECT seq FROM ${table}
                   WHERE seq <= (SELECT MAX(seq) FROM ${table}) - ? ORDER BY seq LIMIT ?)`,
              )
              .run(maxRows, RETENTION_CHUNK).changes;
          }
        }
      })();
    } catch (error) {
      onError(error);
    }
    // A full chunk means more is left: the next write runs another pass instead of waiting.
    if (removed.tasks >= RETENTION_CHUNK || removed.events >= RETENTION_CHUNK) this.last = 0;
    return removed;
  }
}
