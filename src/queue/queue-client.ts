/**
 * The producer side: `run(payload, options)` over a BullMQ queue, the same API as SupervisorClient.
 * A BullMQ Queue adds jobs; one QueueEvents stream delivers every job's outcome, matched by job id.
 */
import { randomUUID } from 'node:crypto';
import type * as BullMQ from 'bullmq';
import type { JobsOptions, Queue, QueueEvents } from 'bullmq';
import { loadConfig } from '../config/load.js';
import { ErrorCode, SupervisorError } from '../protocol/errors.js';
import { decodeValue, encodeJob } from './job-codec.js';
import { errorFromFailedReason } from './job-errors.js';
import { connectionOptions, type RedisConnection } from './redis-url.js';

export interface QueueClientOptions {
  connection: RedisConnection;
  queue: string;
  prefix?: string;
  /** Largest job data accepted, once encoded (default: maxMessageBytes of config/default.json). */
  maxMessageBytes?: number;
  /** Default `attempts` for jobs (default 3): retries after E_WORKER_CRASHED, E_TIMEOUT and the like. */
  attempts?: number;
  /** Delay before the first retry, doubling after each (default 1000 ms). */
  backoffMs?: number;
}

export interface QueueRunOptions {
  /** Deadline for the whole task, time in the queue included. */
  timeoutMs?: number;
  /** Higher runs first (default 0). */
  priority?: number;
  attempts?: number;
  /** Aborting removes the job if no host has taken it yet; a running one finishes, unheard. */
  signal?: AbortSignal;
}

export const PRODUCER_DEFAULTS = {
  attempts: 3,
  backoffMs: 1_000,
  /**
   * Completed jobs are not removed after reading (that would cost a round trip per job): BullMQ drops
   * them itself past this age or count, which bounds what results keep in Redis.
   */
  removeOnComplete: { age: 3_600, count: 1_000 },
  removeOnFail: { age: 86_400, count: 10_000 },
} as const;

/** BullMQ: 1 is the highest priority, 2^21 the lowest. Ours: higher first, around 0. */
const BULLMQ_MID_PRIORITY = 2 ** 20;
function bullmqPriority(priority = 0): number {
  return Math.min(2 ** 21, Math.max(1, BULLMQ_MID_PRIORITY - Math.round(priority)));
}

type Pending = { resolve: (value: unknown) => void; reject: (error: SupervisorError) => void };

export class QueueClient {
  private readonly pending = new Map<string, Pending>();
  private eventsLost = false;

  private constructor(
    private readonly bullmq: typeof BullMQ,
    readonly queue: Queue,
    private readonly events: QueueEvents,
    private readonly options: Required<Omit<QueueClientOptions, 'prefix' | 'connection'>>,
  ) {
    events.on('completed', ({ jobId, returnvalue }) => this.settle(jobId, { value: returnvalue }));
    events.on('failed', ({ jobId, failedReason }) => this.settle(jobId, { failedReason }));
    // While the events connection is down, outcomes may pass unseen: ask for them once it is back.
    events.on('error', () => (this.eventsLost = true));
    void events.client.then((client) =>
      client.on('ready', () => {
        if (!this.eventsLost) return;
        this.eventsLost = false;
        void this.recheck();
      }),
    );
  }

  static async connect(options: QueueClientOptions): Promise<QueueClient> {
    // Loaded here, not when the library entry is imported: bullmq (and ioredis) cost every app that
    // never uses a queue their load time and memory.
    const bullmq = await import('bullmq');
    const { Queue, QueueEvents } = bullmq;
    const connection = connectionOptions(options.connection);
    const prefix = options.prefix ? { prefix: options.prefix } : {};
    const queue = new Queue(options.queue, { connection, ...prefix });
    // Read the events stream from a minute back, not from "now" ('$'): a job that completes before the
    // first XREAD reaches Redis would otherwise go unheard. Older events name unknown jobs and are
    // ignored; the minute also absorbs clock skew between this host and Redis.
    const lastEventId = `${Date.now() - 60_000}-0`;
    const events = new QueueEvents(options.queue, { connection, lastEventId, ...prefix });
    queue.on('error', () => undefined); // reconnects are BullMQ's; a failed add rejects its run()
    await Promise.all([queue.waitUntilReady(), events.waitUntilReady()]);
    const maxMessageBytes =
      options.maxMessageBytes ?? loadConfig({ env: {}, argv: [] }).config.maxMessageBytes;
    return new QueueClient(bullmq, queue, events, {
      queue: options.queue,
      maxMessageBytes,
      attempts: options.attempts ?? PRODUCER_DEFAULTS.attempts,
      backoffMs: options.backoffMs ?? PRODUCER_DEFAULTS.backoffMs,
    });
  }

  /** Runs a task on whichever host takes it; resolves with its value, rejects with SupervisorError. */
  async run(payload: unknown, options: QueueRunOptions = {}): Promise<unknown> {
    const { signal, timeoutMs } = options;
    if (signal?.aborted) throw new SupervisorError(ErrorCode.CANCELLED, 'cancelled before it was queued');
    const data = encodeJob(payload, {
      maxBytes: this.options.maxMessageBytes,
      ...(timeoutMs === undefined ? {} : { timeoutMs }),
    });
    const jobId = randomUUID();
    const jobOptions: JobsOptions = {
      jobId,
      priority: bullmqPriority(options.priority),
      attempts: options.attempts ?? this.options.attempts,
      backoff: { type: 'exponential', delay: this.options.backoffMs },
      removeOnComplete: PRODUCER_DEFAULTS.removeOnComplete,
      removeOnFail: PRODUCER_DEFAULTS.removeOnFail,
    };
    const outcome = new Promise<unknown>((resolve, reject) => this.pending.set(jobId, { resolve, reject }));
    const giveUp = (code: ErrorCode, message: string): void => {
      // Only a job no host has taken can be removed; a running one finishes and is ignored.
      void this.queue.remove(jobId).catch(() => undefined);
      this.settle(jobId, { error: new SupervisorError(code, message) });
    };
    const onAbort = (): void => giveUp(ErrorCode.CANCELLED, 'cancelled by the caller');
    signal?.addEventListener('abort', onAbort, { once: true });
    const timer =
      timeoutMs === undefined
        ? undefined
        : setTimeout(
            () => giveUp(ErrorCode.TIMEOUT, `job ${jobId} did not finish within ${timeoutMs} ms`),
            timeoutMs,
          );
    try {
      await this.queue.add('task', data, jobOptions);
    } catch (error) {
      this.settle(jobId, {
        error: new SupervisorError(
          ErrorCode.WORKERS_UNAVAILABLE,
          `could not queue the job: ${(error as Error).message}`,
        ),
      });
    }
    try {
      return await outcome;
    } finally {
      clearTimeout(timer);
      signal?.removeEventListener('abort', onAbort);
    }
  }

  private settle(
    jobId: string,
    outcome: { value: unknown } | { failedReason: string } | { error: SupervisorError },
  ): void {
    const pending = this.pending.get(jobId);
    if (!pending) return;
    this.pending.delete(jobId);
    if ('error' in outcome) return pending.reject(outcome.error);
    if ('failedReason' in outcome) return pending.reject(errorFromFailedReason(outcome.failedReason));
    try {
      pending.resolve(decodeValue(outcome.value));
    } catch (error) {
      pending.reject(error as SupervisorError);
    }
  }

  /** Reads the outcome of every pending job from its job hash (after missed events). */
  private async recheck(): Promise<void> {
    for (const jobId of [...this.pending.keys()]) {
      const job = await this.bullmq.Job.fromId(this.queue, jobId).catch(() => undefined);
      if (!job) continue;
      if (job.finishedOn && job.failedReason && (await job.isFailed()))
        this.settle(jobId, { failedReason: job.failedReason });
      else if (await job.isCompleted()) this.settle(jobId, { value: job.returnvalue });
    }
  }

  /** Pending runs reject with E_SHUTTING_DOWN; the jobs stay queued for the hosts to run. */
  async close(): Promise<void> {
    for (const jobId of [...this.pending.keys()]) {
      this.settle(jobId, { error: new SupervisorError(ErrorCode.SHUTTING_DOWN, 'queue client closed') });
    }
    await Promise.all([this.events.close(), this.queue.close()]);
  }
}

/** For `gpu-supervisor submit --queue`: one task through the queue, then disconnect. */
export async function submitToQueue(
  target: { connection: RedisConnection; queue: string; prefix?: string },
  payload: unknown,
  options: QueueRunOptions = {},
): Promise<unknown> {
  const client = await QueueClient.connect(target);
  try {
    return await client.run(payload, options);
  } finally {
    await client.close();
  }
}
