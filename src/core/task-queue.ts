/**
 * The one place tasks wait for a worker, and whether a task its worker ended goes back into it
 * (`retryVerdict`).
 *
 * The queue: a binary heap by priority (higher first), first come first
 * served within a priority. A task handed back (its worker died before it started it, or a retry)
 * keeps its priority and its place in line (its original sequence number), so it runs before tasks
 * of the same priority that came after it.
 *
 * Our own heap rather than p-queue: the scheduler pulls a task whenever a worker has room, and
 * p-queue pushes work through a promise per task under a fixed concurrency that would have to track
 * the pool's changing capacity; the heap costs no promise, no closure and no signal per task.
 * Removal of an answered task is lazy: `has` says it left, the heap skips it when it comes up.
 */
export interface Queued {
  readonly priority: number;
  /** Order of arrival, set once when first queued. */
  seq: number;
}

export class TaskQueue<T extends Queued> {
  private readonly heap: T[] = [];
  private readonly live = new Set<T>();
  private nextSeq = 0;

  /** Tasks waiting now (withdrawn ones excluded). */
  get size(): number {
    return this.live.size;
  }

  has(task: T): boolean {
    return this.live.has(task);
  }

  /** Queues a new task (a fresh place in line) or one handed back (`again`: its old place). */
  push(task: T, again = false): void {
    if (!again) task.seq = this.nextSeq++;
    this.live.add(task);
    this.heap.push(task);
    this.up(this.heap.length - 1);
  }

  /** Takes the task waiting longest at the highest priority, or undefined. */
  shift(): T | undefined {
    for (;;) {
      const top = this.heap[0];
      if (top === undefined) return undefined;
      const last = this.heap.pop()!;
      if (this.heap.length > 0) {
        this.heap[0] = last;
        this.down(0);
      }
      if (this.live.delete(top)) return top;
    }
  }

  /** The next task `shift` would return, without taking it. */
  peek(): T | undefined {
    while (this.heap.length > 0 && !this.live.has(this.heap[0]!)) {
      const last = this.heap.pop()!;
      if (this.heap.length > 0) {
        this.heap[0] = last;
        this.down(0);
      }
    }
    return this.heap[0];
  }

  /** Withdraws a waiting task (answered while it waited); false if it was not waiting. */
  remove(task: T): boolean {
    return this.live.delete(task);
  }

  /** Takes every waiting task, in order. */
  drain(): T[] {
    const all: T[] = [];
    for (let task = this.shift(); task; task = this.shift()) all.push(task);
    return all;
  }

  private before(a: T, b: T): boolean {
    return a.priority > b.priority || (a.priority === b.priority && a.seq < b.seq);
  }

  private up(index: number): void {
    const { heap } = this;
    const item = heap[index]!;
    while (index > 0) {
      const parent = (index - 1) >> 1;
      if (!this.before(item, heap[parent]!)) break;
      heap[index] = heap[parent]!;
      index = parent;
    }
    heap[index] = item;
  }

  private down(index: number): void {
    const { heap } = this;
    const item = heap[index]!;
    const n = heap.length;
    for (;;) {
      const left = 2 * index + 1;
      if (left >= n) break;
      const right = left + 1;
      const child = right < n && this.before(heap[right]!, heap[left]!) ? right : left;
      if (!this.before(heap[child]!, item)) break;
      heap[index] = heap[child]!;
      index = child;
    }
    heap[index] = item;
  }
}

/**
 * What becomes of a task whose worker ended it: answered, requeued (its worker died before it started
 * it: as good as new, not an attempt), or retried (`retries`: its worker died under it). Never a retry
 * after the handler itself failed, a timeout, or a death the task caused for certain (its own input
 * exhausted the heap): those would fail the same way again.
 */
export interface EndedTask {
  ok: boolean;
  error?: { code: string };
  unsent?: true;
  requeue?: true;
  retryable?: false;
}

export type RetryVerdict = 'answer' | 'requeue' | 'retry';

const CRASHED = 'E_WORKER_CRASHED';

export function retryVerdict(outcome: EndedTask, attempts: number, retries: number): RetryVerdict {
  if (outcome.ok || outcome.unsent) return 'answer';
  if (outcome.requeue) return 'requeue';
  const crashed = outcome.error?.code === CRASHED && outcome.retryable !== false;
  return crashed && attempts <= retries ? 'retry' : 'answer';
}
