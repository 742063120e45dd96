import { errorCode } from './sqlite.js';
import type { HistoryLog } from './history-log.js';

// Errors a fresh connection may cure (file replaced, made writable again, directory created).
// BUSY/LOCKED/FULL are waited out on the same connection.
const KEEP_CONNECTION = new Set(['SQLITE_BUSY', 'SQLITE_LOCKED', 'SQLITE_FULL']);

/** The last failure, as the store's health reports it. */
export interface HistoryError {
  code: string;
  message: string;
}

export interface OutageOptions {
  path: string;
  retryMinMs: number;
  retryMaxMs: number;
  log: HistoryLog;
}

/**
 * Failure handling for the store: one warning per outage (and one notice when it ends), a
 * doubling back-off between retries, and which errors call for reopening the database.
 */
export class Outage {
  private isFailing = false;
  private retry = 0;
  private count = 0;
  private last: HistoryError | undefined;

  constructor(private readonly o: OutageOptions) {}

  get failing(): boolean {
    return this.isFailing;
  }

  /** How long to wait before the next try. */
  get retryMs(): number {
    return this.retry;
  }

  get failures(): number {
    return this.count;
  }

  get lastError(): HistoryError | undefined {
    return this.last;
  }

  /** Records a failed `op`; returns true when the connection should be closed and reopened later. */
  fail(op: string, error: unknown, pending: number): boolean {
    const code = errorCode(error);
    const message = error instanceof Error ? error.message : String(error);
    this.count++;
    this.last = { code, message };
    this.retry = this.isFailing ? Math.min(this.retry * 2, this.o.retryMaxMs) : this.o.retryMinMs;
    if (!this.isFailing) {
      this.isFailing = true;
      this.o.log.warn(
        { path: this.o.path, op, code, err: message, pending, retryMs: this.retry },
        'history database unavailable: tasks keep flowing, rows wait in memory, retrying with back-off',
      );
    }
    return !KEEP_CONNECTION.has(code);
  }

  /** A write or open succeeded; returns true if that ended an outage. */
  recovered(dropped: number): boolean {
    if (!this.isFailing) return false;
    this.isFailing = false;
    this.retry = 0;
    this.o.log.info({ path: this.o.path, failures: this.count, dropped }, 'history database writable again');
    return true;
  }
}
