import type { MemoryEventRow, TaskRow } from './schema.js';
import type { HistoryLog } from './history-log.js';

/** One row waiting for the disk, tagged with the table it goes to. */
export type Pending = { table: 'tasks'; row: TaskRow } | { table: 'events'; row: MemoryEventRow };

export interface WriteBufferOptions {
  path: string;
  /** Rows held while the disk cannot take them; past this the oldest are dropped (and counted). */
  maxBuffer: number;
  log: HistoryLog;
}

/**
 * The rows appended since the last successful write. Capped: while the disk refuses writes the
 * oldest rows go first, counted, with one warning per outage.
 */
export class WriteBuffer {
  private items: Pending[] = [];
  private droppedRows = 0;
  private warned = false;

  constructor(private readonly o: WriteBufferOptions) {}

  get length(): number {
    return this.items.length;
  }

  /** Rows dropped for want of room, since the store opened. */
  get dropped(): number {
    return this.droppedRows;
  }

  push(item: Pending): void {
    if (this.items.length >= this.o.maxBuffer) {
      // Drop a tenth at once: shifting one row per append would make a stalled disk cost O(n) per task.
      const drop = Math.max(1, Math.floor(this.o.maxBuffer / 10));
      this.items.splice(0, drop);
      this.droppedRows += drop;
      if (!this.warned) {
        this.warned = true;
        this.o.log.warn(
          { path: this.o.path, maxBuffer: this.o.maxBuffer, dropped: this.droppedRows },
          'history buffer full: dropping the oldest rows until the database takes writes again',
        );
      }
    }
    this.items.push(item);
  }

  /** Everything buffered, oldest first; it stays buffered until `written` confirms it. */
  all(): Pending[] {
    return this.items;
  }

  /** The first `count` rows reached the disk. */
  written(count: number): void {
    // Rows appended during the (synchronous) write cannot exist; the slice is for clarity only.
    this.items = this.items.slice(count);
  }

  clear(): void {
    this.items = [];
  }

  /** The disk takes writes again: the next overflow is a new outage and earns a new warning. */
  rearmWarning(): void {
    this.warned = false;
  }
}
