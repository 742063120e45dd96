import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import {
  INSERT_EVENT,
  INSERT_TASK,
  SELECT_EVENTS,
  SELECT_TASKS,
  eventFromRow,
  eventParams,
  migrate,
  taskFromRow,
  taskParams,
  type MemoryEventRow,
  type TaskRow,
} from './schema.js';
import { errorCode, openDatabase, type Database, type Statement } from './sqlite.js';

export interface HistoryLog {
  warn(obj: object, msg: string): void;
  info(obj: object, msg: string): void;
}

export interface HistoryStoreOptions {
  path: string;
  /** Buffered rows are written in one transaction this often (and on close). */
  flushMs?: number;
  /** Rows older than this are deleted; 0 = keep. */
  maxAgeDays?: number;
  /** At most this many rows per table (the newest); 0 = unlimited. */
  maxRows?: number;
  /** Rows held while the disk cannot take them; past this the oldest are dropped (and counted). */
  maxBuffer?: number;
  /** Kept short: better-sqlite3 is synchronous, so a lock wait blocks the supervisor's event loop. */
  busyTimeoutMs?: number;
  retentionEveryMs?: number;
  retryMinMs?: number;
  retryMaxMs?: number;
  log?: HistoryLog;
}

export interface HistoryHealth {
  state: 'open' | 'failing' | 'closed';
  path: string;
  pending: number;
  written: number;
  dropped: number;
  failures: number;
  transactions: number;
  lastError: { code: string; message: string } | undefined;
}

/** Per (worker pid, ok, code): how many tasks and when; what the report needs without every row. */
export interface TaskCount {
  workerPid: number | undefined;
  ok: boolean;
  code: string | undefined;
  count: number;
  first: number;
  last: number;
}

type Pending = { table: 'tasks'; row: TaskRow } | { table: 'events'; row: MemoryEventRow };

interface Prepared {
  insertAll: (items: Pending[]) => void;
  recentTasks: Statement<[number]>;
  events: Statement<[number]>;
}

// Errors a fresh connection may cure (file replaced, made writable again, directory created).
// BUSY/LOCKED/FULL are waited out on the same connection.
const KEEP_CONNECTION = new Set(['SQLITE_BUSY', 'SQLITE_LOCKED', 'SQLITE_FULL']);
const RETENTION_CHUNK = 20_000;
const DAY_MS = 86_400_000;
const noLog: HistoryLog = { warn: () => undefined, info: () => undefined };

/**
 * Task and memory-event history in SQLite. Writers only append to a buffer (the hot path never
 * touches the disk); a timer writes the buffer in one transaction. A disk that fails (read-only,
 * full, locked, corrupt) costs one warning and a counter: rows wait in the capped buffer, and the
 * store retries with back-off until it can write again.
 */
export class HistoryStore {
  private readonly o: Required<Omit<HistoryStoreOptions, 'log'>> & { log: HistoryLog };
  private db: Database | undefined;
  private prepared: Prepared | undefined;
  private buffer: Pending[] = [];
  private timer: NodeJS.Timeout | undefined;
  private failing = false;
  private closed = false;
  private retryMs = 0;
  private lastRetention = 0;
  private dropWarned = false;
  private counts = { written: 0, dropped: 0, failures: 0, transactions: 0 };
  private lastError: HistoryHealth['lastError'];

  private constructor(options: HistoryStoreOptions) {
    this.o = {
      flushMs: 250,
      maxAgeDays: 0,
      maxRows: 0,
      maxBuffer: 50_000,
      busyTimeoutMs: 20,
      retentionEveryMs: 5_000,
      retryMinMs: 1_000,
      retryMaxMs: 60_000,
      ...options,
      log: options.log ?? noLog,
    };
  }

  /** Never throws for a bad disk: the store then starts out failing and keeps trying. */
  static open(options: HistoryStoreOptions): HistoryStore {
    const store = new HistoryStore(options);
    store.connect();
    return store;
  }

  get path(): string {
    return this.o.path;
  }

  get isOpen(): boolean {
    return this.db !== undefined && !this.closed;
  }

  addTask(row: TaskRow): void {
    this.append({ table: 'tasks', row });
  }

  addEvent(row: MemoryEventRow): void {
    this.append({ table: 'events', row });
  }

  private append(item: Pending): void {
    if (this.closed) return;
    if (this.buffer.length >= this.o.maxBuffer) {
      // Drop a tenth at once: shifting one row per append would make a stalled disk cost O(n) per task.
      const drop = Math.max(1, Math.floor(this.o.maxBuffer / 10));
      this.buffer.splice(0, drop);
      this.counts.dropped += drop;
      if (!this.dropWarned) {
        this.dropWarned = true;
        this.o.log.warn(
          { path: this.o.path, maxBuffer: this.o.maxBuffer, dropped: this.counts.dropped },
          'history buffer full: dropping the oldest rows until the database takes writes again',
        );
      }
    }
    this.buffer.push(item);
    if (!this.timer) this.schedule(this.o.flushMs);
  }

  private schedule(ms: number): void {
    this.timer = setTimeout(() => this.tick(), ms);
    this.timer.unref();
  }

  private tick(): void {
    this.timer = undefined;
    if (this.closed) return;
    this.flush();
    // fail() may have armed the back-off timer already.
    if (!this.timer && (this.buffer.length > 0 || !this.db)) {
      this.schedule(this.failing ? this.retryMs : this.o.flushMs);
    }
  }

  /** Writes the buffer now, in one transaction. Returns false if the database could not take it. */
  flush(): boolean {
    if (!this.db && !this.connect()) return false;
    if (this.buffer.length === 0) return true;
    const items = this.buffer;
    try {
      this.prepared!.insertAll(items);
    } catch (error) {
      this.fail('write', error);
      return false;
    }
    // Rows appended during the (synchronous) write cannot exist; the slice is for clarity only.
    this.buffer = this.buffer.slice(items.length);
    this.counts.written += items.length;
    this.counts.transactions++;
    this.recovered();
    if (Date.now() - this.lastRetention >= this.o.retentionEveryMs) this.applyRetention();
    return true;
  }

  /**
   * Deletes rows past maxAgeDays and beyond maxRows (per table), a bounded chunk per pass so a
   * lowered limit never blocks the event loop for long; the next pass continues.
   */
  applyRetention(now = Date.now()): { tasks: number; events: number } {
    const removed = { tasks: 0, events: 0 };
    const db = this.db;
    if (!db) return removed;
    this.lastRetention = now;
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
      this.fail('retention', error);
    }
    if (removed.tasks >= RETENTION_CHUNK || removed.events >= RETENTION_CHUNK) this.lastRetention = 0;
    return removed;
  }

  /** Newest first; undefined while the database cannot be read. */
  recentTasks(last = 100): TaskRow[] | undefined {
    if (!this.flush() || !this.prepared) return undefined;
    try {
      return this.prepared.recentTasks.all(last).map((r) => taskFromRow(r as Record<string, unknown>));
    } catch (error) {
      this.fail('read', error);
      return undefined;
    }
  }

  /** The newest `limit` memory events, oldest first; undefined while the database cannot be read. */
  memoryEvents(limit = 200_000): MemoryEventRow[] | undefined {
    if (!this.flush() || !this.prepared) return undefined;
    try {
      return this.prepared.events.all(limit).map((r) => eventFromRow(r as Record<string, unknown>));
    } catch (error) {
      this.fail('read', error);
      return undefined;
    }
  }

  taskCounts(): TaskCount[] | undefined {
    if (!this.flush() || !this.db) return undefined;
    try {
      const rows = this.db
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
    } catch (error) {
      this.fail('read', error);
      return undefined;
    }
  }

  /** Deletes every row, buffered ones included; returns how many (tasks + events). Throws if it cannot. */
  clear(): number {
    if (!this.flush()) {
      throw new Error(`history database unavailable (${this.lastError?.code ?? 'unknown'}): nothing cleared`);
    }
    const db = this.db!;
    let removed = 0;
    db.transaction(() => {
      removed += db.prepare('DELETE FROM tasks').run().changes;
      removed += db.prepare('DELETE FROM memory_events').run().changes;
    })();
    db.pragma('wal_checkpoint(TRUNCATE)');
    return removed;
  }

  health(): HistoryHealth {
    return {
      state: this.closed ? 'closed' : this.failing || !this.db ? 'failing' : 'open',
      path: this.o.path,
      pending: this.buffer.length,
      ...this.counts,
      lastError: this.lastError,
    };
  }

  /** Writes what is buffered and closes; what still cannot be written is reported, not kept. */
  close(): void {
    if (this.closed) return;
    clearTimeout(this.timer);
    this.timer = undefined;
    if (!this.flush() && this.buffer.length > 0) {
      this.o.log.warn(
        { path: this.o.path, lost: this.buffer.length, code: this.lastError?.code },
        'history store closed with rows it could not write',
      );
    }
    this.closed = true;
    this.buffer = [];
    this.disconnect();
  }

  private connect(): boolean {
    if (this.closed) return false;
    let db: Database | undefined;
    try {
      mkdirSync(dirname(this.o.path), { recursive: true });
      db = openDatabase(this.o.path, { timeout: this.o.busyTimeoutMs });
      db.pragma('journal_mode = WAL');
      db.pragma('synchronous = NORMAL');
      migrate(db);
      const insertTask = db.prepare(INSERT_TASK);
      const insertEvent = db.prepare(INSERT_EVENT);
      const insertAll = db.transaction((items: Pending[]) => {
        for (const item of items) {
          if (item.table === 'tasks') insertTask.run(...taskParams(item.row));
          else insertEvent.run(...eventParams(item.row));
        }
      });
      this.prepared = {
        insertAll,
        recentTasks: db.prepare<[number]>(SELECT_TASKS),
        events: db.prepare<[number]>(SELECT_EVENTS),
      };
      this.db = db;
      this.recovered();
      return true;
    } catch (error) {
      try {
        db?.close();
      } catch {
        // closing a connection that failed to set up: nothing more to learn
      }
      this.fail('open', error);
      return false;
    }
  }

  private disconnect(): void {
    try {
      this.db?.close();
    } catch {
      // already unusable; the next connect() starts over
    }
    this.db = undefined;
    this.prepared = undefined;
  }

  private fail(op: string, error: unknown): void {
    const code = errorCode(error);
    const message = error instanceof Error ? error.message : String(error);
    this.counts.failures++;
    this.lastError = { code, message };
    this.retryMs = this.failing ? Math.min(this.retryMs * 2, this.o.retryMaxMs) : this.o.retryMinMs;
    if (!this.failing) {
      this.failing = true;
      this.o.log.warn(
        { path: this.o.path, op, code, err: message, pending: this.buffer.length, retryMs: this.retryMs },
        'history database unavailable: tasks keep flowing, rows wait in memory, retrying with back-off',
      );
    }
    if (!KEEP_CONNECTION.has(code)) this.disconnect();
    if (!this.timer && !this.closed) this.schedule(this.retryMs);
  }

  private recovered(): void {
    if (!this.failing) return;
    this.failing = false;
    this.dropWarned = false;
    this.retryMs = 0;
    this.o.log.info(
      { path: this.o.path, failures: this.counts.failures, dropped: this.counts.dropped },
      'history database writable again',
    );
  }
}
