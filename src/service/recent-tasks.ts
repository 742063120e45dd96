import type { TaskRecord } from '../events.js';

export type { TaskRecord };

/**
 * The supervisor's record of recent tasks: a fixed-size ring, so a supervisor running for months
 * holds a bounded amount of it; the SQLite store (history.path) keeps the long record.
 */
export class RecentTasks {
  private readonly ring: Array<TaskRecord | undefined>;
  private next = 0;
  private count = 0;

  constructor(readonly capacity: number) {
    this.ring = new Array<TaskRecord | undefined>(capacity).fill(undefined);
  }

  get size(): number {
    return this.count;
  }

  add(record: TaskRecord): void {
    if (this.capacity === 0) return;
    this.ring[this.next] = record;
    this.next = (this.next + 1) % this.capacity;
    this.count = Math.min(this.count + 1, this.capacity);
  }

  /** Oldest first; at most `limit` of the newest. */
  list(limit = this.count): TaskRecord[] {
    const out: TaskRecord[] = [];
    const n = Math.min(limit, this.count);
    for (let i = n; i > 0; i--) {
      const record = this.ring[(this.next - i + this.capacity) % this.capacity];
      if (record) out.push(record);
    }
    return out;
  }

  /** Empties the ring; returns how many records were removed. */
  clear(): number {
    const removed = this.count;
    this.ring.fill(undefined);
    this.next = 0;
    this.count = 0;
    return removed;
  }
}
