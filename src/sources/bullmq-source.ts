/**
 * The BullMQ consumer (issue 8): many hosts, one queue. Each job's data is a task payload; the job
 * completes with the task's value or fails with "CODE: message", retried or not by the code
 * (queue/job-errors.ts). Binary values travel base64-encoded (queue/job-codec.ts).
 */
import { DelayedError, UnrecoverableError, Worker, type Job } from 'bullmq';
import type { BullmqSourceConfig } from '../config/schema.js';
import { ErrorCode, SupervisorError, type ErrorShape } from '../protocol/errors.js';
import { checkSize, decodeJob, encodeValue, storedBytes } from '../queue/job-codec.js';
import { failureAction, failureMessage } from '../queue/job-errors.js';
import { connectionOptions, redact } from '../queue/redis-url.js';
import type { Front, FrontContext } from '../transport/front.js';
import { bullmqTaskId } from '../transport/session.js';
import { consumerSettings, SOURCE_DEFAULTS } from './source-settings.js';
import { StatsPublisher } from './stats-publisher.js';

/** Starts the consumer when `source.type` is 'bullmq'; the connection is made in the background. */
export function startBullmqSource(context: FrontContext): Promise<Front | undefined> {
  const source = context.config.source;
  if (source?.type !== 'bullmq') return Promise.resolve(undefined);
  return Promise.resolve(new BullmqSource(context, source));
}

class BullmqSource implements Front {
  readonly name = 'bullmq';
  private readonly worker: Worker;
  private readonly stats: StatsPublisher;
  private readonly log: FrontContext['log'];
  /** Task ids of the jobs running here: a job redelivered while its first run is alive gets another. */
  private readonly active = new Set<string>();
  private counts = { completed: 0, failed: 0 };
  private seq = 0;
  private redisDown = false;
  private closing: Promise<void> | undefined;

  constructor(
    private readonly context: FrontContext,
    source: BullmqSourceConfig,
  ) {
    const settings = consumerSettings(source, context.config);
    this.log = context.log.child({ front: 'bullmq', queue: source.queue });
    this.worker = new Worker(source.queue, (job, token) => this.process(job, token), {
      connection: connectionOptions(source.connection),
      ...(source.prefix ? { prefix: source.prefix } : {}),
      concurrency: settings.concurrency,
      lockDuration: settings.lockDurationMs,
      stalledInterval: settings.stalledIntervalMs,
      maxStalledCount: settings.maxStalledCount,
    });
    this.watchConnection();
    this.stats = new StatsPublisher(
      this.worker.client,
      context.supervisor,
      () => ({ active: this.active.size, ...this.counts }),
      {
        queue: source.queue,
        ...(source.prefix ? { prefix: source.prefix } : {}),
        intervalMs: settings.statsIntervalMs,
        ttlMs: settings.statsTtlMs,
      },
      this.log,
    );
    this.stats.start();
    // Shut down by another path (admin command, the parent gone): stop pulling jobs too.
    void context.supervisor.closed.then(() => this.close());
    this.log.info({ redis: redact(source.connection), ...settings }, 'bullmq source started');
  }

  /** Logs a lost connection once and its return once; BullMQ and ioredis do the reconnecting. */
  private watchConnection(): void {
    const lost = (error?: unknown): void => {
      if (this.redisDown || this.closing) return;
      this.redisDown = true;
      this.log.warn({ err: error }, 'bullmq: redis connection lost, reconnecting');
    };
    // An unhandled 'error' would crash the process; connection errors repeat on every retry.
    this.worker.on('error', (error) => {
      if (this.redisDown) this.log.debug({ err: error }, 'bullmq: error while reconnecting');
      else if (/ECONN|EPIPE|ETIMEDOUT|Connection is closed/.test(error.message)) lost(error);
      else this.log.warn({ err: error }, 'bullmq: worker error');
    });
    void this.worker.client.then((client) => {
      client.on('close', () => lost());
      client.on('ready', () => {
        if (!this.redisDown) return;
        this.redisDown = false;
        this.log.info('bullmq: redis connection back');
      });
    });
    this.worker.on('stalled', (jobId) =>
      this.log.warn({ jobId }, 'bullmq: a stalled job went back to the queue (its host stopped renewing it)'),
    );
  }

  private async process(job: Job, token: string | undefined): Promise<unknown> {
    // BullMQ may still hand us a job it fetched as close() began: give it back to the queue unrun.
    if (this.closing && token) return this.handBack(job, token, 0);
    let id = bullmqTaskId(job.id, job.attemptsStarted);
    if (this.active.has(id)) id = bullmqTaskId(job.id, job.attemptsStarted, ++this.seq);
    this.active.add(id);
    try {
      const outcome = await this.runJob(id, job);
      if (outcome.ok) {
        this.counts.completed++;
        return outcome.value;
      }
      return await this.fail(job, token, outcome.error);
    } finally {
      this.active.delete(id);
    }
  }

  private async runJob(
    id: string,
    job: Job,
  ): Promise<{ ok: true; value: unknown } | { ok: false; error: ErrorShape }> {
    let task;
    try {
      checkSize(job.data, this.context.config.maxMessageBytes, 'job data');
      task = decodeJob(job.data);
    } catch (error) {
      return { ok: false, error: shapeOf(error) };
    }
    const options = task.timeoutMs === undefined ? {} : { timeoutMs: task.timeoutMs };
    const outcome = await this.context.supervisor.submit(id, task.payload, options);
    if (!outcome.ok) return outcome;
    let value: unknown;
    try {
      value = encodeValue(outcome.value);
    } catch (error) {
      // A result the queue cannot store fails once: running it again would give the same value.
      return { ok: false, error: shapeOf(error) };
    }
    const bytes = storedBytes(value);
    if (bytes > this.context.config.maxMessageBytes) {
      const message = `result is ${bytes} bytes once encoded, over maxMessageBytes (${this.context.config.maxMessageBytes})`;
      return { ok: false, error: { code: ErrorCode.BAD_REQUEST, message } };
    }
    return { ok: true, value };
  }

  private async fail(job: Job, token: string | undefined, error: ErrorShape): Promise<never> {
    const message = failureMessage(error);
    const action = failureAction(error.code);
    this.log.debug({ jobId: job.id, code: error.code, action }, 'bullmq: task failed');
    if (action === 'hand-back' && token) {
      const shuttingDown = error.code === ErrorCode.SHUTTING_DOWN;
      if (shuttingDown) void this.close();
      return this.handBack(job, token, shuttingDown ? 0 : SOURCE_DEFAULTS.handBackDelayMs, message);
    }
    this.counts.failed++;
    throw action === 'fail' ? new UnrecoverableError(message) : new Error(message);
  }

  /** Back to the queue for another host (or this one, later), without spending one of its attempts. */
  private async handBack(job: Job, token: string, delayMs: number, reason = 'host closing'): Promise<never> {
    try {
      await job.moveToDelayed(Date.now() + delayMs, token);
    } catch (moveError) {
      this.log.warn({ err: moveError, jobId: job.id }, 'bullmq: could not hand a job back');
      this.counts.failed++;
      throw new Error(reason);
    }
    this.log.debug({ jobId: job.id, reason }, 'bullmq: job handed back');
    throw new DelayedError(reason);
  }

  /** No new jobs; the active ones finish and answer their jobs. */
  close(): Promise<void> {
    this.closing ??= (async () => {
      this.log.info({ active: this.active.size }, 'bullmq source closing: no new jobs');
      // Stats first: the key is removed over the worker's connection, which close() ends.
      await this.stats.stop();
      await this.worker.close();
      this.log.info(this.counts, 'bullmq source closed');
    })();
    return this.closing;
  }
}

function shapeOf(error: unknown): ErrorShape {
  if (error instanceof SupervisorError) return error.toJSON();
  return { code: ErrorCode.BAD_REQUEST, message: error instanceof Error ? error.message : String(error) };
}
