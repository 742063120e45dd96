import type { MemoryEventRow, TaskRow } from './schema.js';
import type { Database } from './sqlite.js';
import { closeConnection, openConnection, stillInPlace, type Connection } from './connection.js';
import type { HistoryLog } from './history-log.js';
import { Outage, type HistoryError } from './outage.js';
import {
  deleteAll,
  selectMemoryEvents,
  selectRecentTasks,
  selectTaskCounts,
  type TaskCount,
} from './queries.js';
import { Retention } from './retention.js';
import { WriteBuffer, type Pending } from './write-buffer.js';

export type { TaskCount } from './queries.js';

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
  lastError: HistoryError | undefined;
}

const noLog: HistoryLog = { warn: () => undefined, info: () => undefined };

/**
 * Task and memory-event history in SQLite. Writers only append to a buffer (the hot path never
 * touches the disk); a timer writes the buffer in one transaction. A disk that fails (read-only,
 * full, locked, corrupt) costs one warning and a counter: rows wait in the capped buffer, and the
 * store retries with back-off until it can write again.
 */
export class HistoryStore {
  private readonly o: Required<Omit<HistoryStoreOptions, 'log'>> & { log: HistoryLog };
  private readonly buffer: WriteBuffer;
  private readonly retention: Retention;
  private readonly outage: Outage;
  private connection: Connection | undefined;
  private timer: NodeJS.Timeout | undefined;
  private closed = false;
  private written = 0;
  private transactions = 0;

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
    const { path, maxBuffer, maxAgeDays, maxRows, retentionEveryMs, retryMinMs, retryMaxMs, log } = this.o;
    this.buffer = new WriteBuffer({ path, maxBuffer, log });
    this.retention = new Retention({ maxAgeDays, maxRows, everyMs: retentionEveryMs });
    this.outage = new Outage({ path, retryMinMs, retryMaxMs, log });
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

  private get db(): Database | undefined {
    return this.connection?.db;
  }

  addTask(row: TaskRow): void {
    this.append({ table: 'tasks', row });
  }

  addEvent(row: MemoryEventRow): void {
    this.append({ table: 'events', row });
  }

  private append(item: Pending): void {
    if (this.closed) return;
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
      this.schedule(this.outage.failing ? this.outage.retryMs : this.o.flushMs);
    }
  }

  /** Writes the buffer now, in one transaction. Returns false if the database could not take it. */
  flush(): boolean {
    if (!this.db && !this.connect()) return false;
    if (this.buffer.length === 0) {
      // Open with nothing to write: as good as it gets (a read-only file shows at the next write).
      this.recovered();
      return true;
    }
    if (this.connection && !stillInPlace(this.connection)) {
      // SQLite reports nothing: rows would go on into the removed file and be lost with it.
      this.o.log.warn({ path: this.o.path }, 'history database file removed or replaced: opening it again');
      this.disconnect();
      if (!this.connect()) return false;
    }
    const items = this.buffer.all();
    try {
      this.connection!.insertAll(items);
    } catch (error) {
      this.fail('write', error);
      return false;
    }
    this.buffer.written(items.length);
    this.written += items.length;
    this.transactions++;
    this.recovered();
    if (this.retention.due()) this.applyRetention();
    return true;
  }

  /** One retention pass now (see Retention); a no-op while the database is not open. */
  applyRetention(now = Date.now()): { tasks: number; events: number } {
    const db = this.db;
    if (!db) return { tasks: 0, events: 0 };
    return this.retention.run(db, now, (error) => this.fail('retention', error));
  }

  /** Newest first; undefined while the database cannot be read. */
  recentTasks(last = 100): TaskRow[] | undefined {
    return this.read((c) => selectRecentTasks(c, last));
  }

  /** The newest `limit` memory events, oldest first; undefined while the database cannot be read. */
  memoryEvents(limit = 200_000): MemoryEventRow[] | undefined {
    return this.read((c) => selectMemoryEvents(c, limit));
  }

  taskCounts(): TaskCount[] | undefined {
    return this.read((c) => selectTaskCounts(c.db));
  }

  /** Reads see buffered rows too: the buffer is written first. */
  private read<T>(query: (connection: Connection) => T): T | undefined {
    if (!this.flush() || !this.connection) return undefined;
    try {
      return query(this.connection);
    } catch (error) {
      this.fail('read', error);
      return undefined;
    }
  }

  /** Deletes every row, buffered ones included; returns how many (tasks + events). Throws if it cannot. */
  clear(): number {
    if (this.flush()) return deleteAll(this.db!);
    // Read after the flush: its failure is the one to report.
    const code = this.outage.lastError?.code ?? 'unknown';
    throw new Error(`history database unavailable (${code}): nothing cleared`);
  }

  health(): HistoryHealth {
    return {
      state: this.closed ? 'closed' : this.outage.failing || !this.db ? 'failing' : 'open',
      path: this.o.path,
      pending: this.buffer.length,
      written: this.written,
      dropped: this.buffer.dropped,
      failures: this.outage.failures,
      transactions: this.transactions,
      lastError: this.outage.lastError,
    };
  }

  /** Writes what is buffered and closes; what still cannot be written is reported, not kept. */
  close(): void {
    if (this.closed) return;
    clearTimeout(this.timer);
    this.timer = undefined;
    if (!this.flush() && this.buffer.length > 0) {
      this.o.log.warn(
        { path: this.o.path, lost: this.buffer.length, code: this.outage.lastError?.code },
        'history store closed with rows it could not write',
      );
    }
    this.closed = true;
    this.buffer.clear();
    this.disconnect();
  }

  private connect(): boolean {
    if (this.closed) return false;
    try {
      // Not a recovery yet: SQLite opens a file it cannot write read-only, and only a write tells.
      this.connection = openConnection(this.o.path, this.o.busyTimeoutMs);
      return true;
    } catch (error) {
      this.fail('open', error);
      return false;
    }
  }

  private disconnect(): void {
    closeConnection(this.connection);
    this.connection = undefined;
  }

  private fail(op: string, error: unknown): void {
    if (this.outage.fail(op, error, this.buffer.length)) this.disconnect();
    if (!this.timer && !this.closed) this.schedule(this.outage.retryMs);
  }

  private recovered(): void {
    if (this.outage.recovered(this.buffer.dropped)) this.buffer.rearmWarning();
  }
}
