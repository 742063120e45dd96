/**
 * The scale-out commands (issue 8): `stats --cluster` reads every live host's row from Redis, and
 * `submit --queue` sends one task through BullMQ instead of the local socket.
 */
import { Queue, type ConnectionOptions, type RedisOptions } from 'bullmq';
import type { SupervisorError } from '../protocol/errors.js';
import { formatClusterStats, hostKeyPattern, scanHostStats } from '../queue/cluster-stats.js';
import { submitToQueue } from '../queue/queue-client.js';
import { connectionOptions, redact } from '../queue/redis-url.js';
import { UnreachableError, UsageError, type CliContext } from './context.js';
import { printOutputs, submitPayload, type SubmitFlags } from './submit.js';

export const QUEUE_OPTIONS = {
  redis: { type: 'string' },
  queue: { type: 'string' },
  prefix: { type: 'string' },
} as const;

export const CLUSTER_OPTIONS = { cluster: { type: 'boolean' }, ...QUEUE_OPTIONS } as const;

type QueueFlags = { redis?: string; queue?: string; prefix?: string };

/** How long a command waits for Redis to answer before it says so and exits 3. */
export const REDIS_WAIT_MS = 5_000;

/** The same environment variables the daemon reads for --redis and --queue. */
const ENV = { redis: 'GPU_SUPERVISOR_REDIS_URL', queue: 'GPU_SUPERVISOR_QUEUE' } as const;

interface Target {
  url: string;
  connection: ConnectionOptions;
  queue: string;
  prefix?: string;
}

function target(command: string, flags: QueueFlags, env: NodeJS.ProcessEnv): Target {
  const url = flags.redis ?? (env[ENV.redis] || undefined);
  const queue = flags.queue ?? (env[ENV.queue] || undefined);
  if (!url) throw new UsageError(`${command} needs --redis URL (or env ${ENV.redis})`);
  if (!queue) throw new UsageError(`${command} needs --queue NAME (or env ${ENV.queue})`);
  if (queue.includes(':')) throw new UsageError(`--queue must not contain ':' (BullMQ's key separator)`);
  if (flags.prefix === '') throw new UsageError('--prefix must not be empty');
  let connection: ConnectionOptions;
  try {
    connection = connectionOptions(url);
  } catch (error) {
    throw new UsageError(`--redis: ${(error as SupervisorError).message}`);
  }
  return { url, connection, queue, ...(flags.prefix ? { prefix: flags.prefix } : {}) };
}

/**
 * A Queue whose connection gives up after a few failed attempts (BullMQ's own would retry forever),
 * resolved once Redis answers, or UnreachableError within REDIS_WAIT_MS.
 */
async function openQueue(t: Target, waitMs = REDIS_WAIT_MS): Promise<Queue> {
  // connectionOptions() builds plain host/port options from the URL, never a cluster or a client.
  const connection: RedisOptions = {
    ...(t.connection as RedisOptions),
    connectTimeout: Math.ceil(waitMs / 2),
    maxRetriesPerRequest: 1,
    retryStrategy: (times: number) => (times > 2 ? null : 250),
  };
  const queue = new Queue(t.queue, { connection, ...(t.prefix ? { prefix: t.prefix } : {}) });
  let lastError: Error | undefined;
  // Without a listener BullMQ prints every connection error's stack: keep the last for the one line.
  queue.on('error', (error) => (lastError = error));
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`no answer within ${waitMs} ms`)), waitMs);
  });
  try {
    await Promise.race([queue.waitUntilReady(), deadline]);
    return queue;
  } catch (error) {
    await queue.disconnect().catch(() => undefined);
    const reason = lastError?.message || (error as Error).message || String(error);
    throw new UnreachableError(`cannot reach Redis at ${redact(t.url)}: ${reason}`);
  } finally {
    clearTimeout(timer);
  }
}

/** `stats --cluster`: every live host consuming the queue, one table (or the rows as JSON). */
export async function clusterStats(context: CliContext, flags: QueueFlags): Promise<void> {
  const t = target('stats --cluster', flags, context.env);
  const queue = await openQueue(t);
  try {
    // What readClusterStats does, on the connection that gives up instead of retrying forever.
    const rows = await scanHostStats(await queue.client, hostKeyPattern(t.queue, t.prefix));
    context.out(context.json ? JSON.stringify(rows, null, 2) : formatClusterStats(rows));
  } finally {
    await queue.close().catch(() => undefined);
  }
}

/** `submit --queue Q`: the task goes through BullMQ; any host consuming Q runs it. */
export async function submitQueued(context: CliContext, flags: SubmitFlags & QueueFlags): Promise<void> {
  const { payload, timeoutMs } = submitPayload(flags);
  // Only the --queue flag picks this path (never env GPU_SUPERVISOR_QUEUE, which a daemon's shell may
  // export): a plain submit keeps going to the local socket.
  const t = target('submit --queue', flags, context.env);
  // Checked first so a wrong URL fails fast; the client itself then reconnects as BullMQ does.
  await (await openQueue(t)).close();
  const started = Date.now();
  const value = await submitToQueue(
    { connection: t.connection, queue: t.queue, ...(t.prefix ? { prefix: t.prefix } : {}) },
    payload,
    timeoutMs === undefined ? {} : { timeoutMs },
  );
  const ms = Date.now() - started;
  printOutputs(context, value, { queue: t.queue, ms }, `(queue ${t.queue}, ${ms} ms round trip)`);
}

/** True for `stats --cluster`; --redis, --queue or --prefix without it are usage errors, not ignored. */
export function wantsCluster(flags: { cluster?: boolean } & QueueFlags): boolean {
  if (flags.cluster) return true;
  const stray = (['redis', 'queue', 'prefix'] as const).find((k) => flags[k] !== undefined);
  if (stray) throw new UsageError(`stats --${stray} needs --cluster`);
  return false;
}

/** True for `submit --queue`; --redis or --prefix without it are usage errors. */
export function wantsQueue(flags: QueueFlags): boolean {
  if (flags.queue !== undefined) return true;
  const stray = (['redis', 'prefix'] as const).find((k) => flags[k] !== undefined);
  if (stray) throw new UsageError(`submit --${stray} needs --queue NAME`);
  return false;
}
