#!/usr/bin/env node
/**
 * `node dist/supervisor.js`: flags + env + config file -> Supervisor -> IPC channel to the parent,
 * signals -> graceful shutdown. Exits 2 on a bad config (one line saying what is wrong), 1 when the
 * workers cannot start, 0 after a clean shutdown.
 */
import { ConfigError } from './config/errors.js';
import { loadConfig, usage } from './config/load.js';
import { createLogger, type Logger } from './logging/logger.js';
import { ErrorCode, SupervisorError } from './protocol/errors.js';
import { Supervisor } from './service/facade.js';
import { ForkChannel } from './transport/fork-channel.js';
import type { Front, FrontContext, StartFront } from './transport/front.js';

/** How long an exit waits for the last answers to be written to the parent. */
const FLUSH_TIMEOUT_MS = 10_000;

/**
 * Up before the workers start: /healthz answers while the process lives (a liveness probe must not
 * kill a pod whose models are still loading), /readyz says 503 until the pool is running.
 */
const EARLY_FRONTS: readonly StartFront[] = [
  // Loaded only when configured: prom-client and bullmq alone would add ~40 MiB to every supervisor.
  async (ctx) =>
    ctx.config.http.port === null
      ? undefined
      : (await import('./metrics/http-server.js')).startHttpFront(ctx),
];

/**
 * Fronts in start order, after the early ones; all close in reverse, so a queue source stops pulling
 * jobs (and lets its active ones finish) before the pool drains, and the socket and HTTP stay up to
 * answer until the end.
 */
const FRONTS: readonly StartFront[] = [
  async (ctx) => (await import('./transport/socket-server.js')).startSocketFront(ctx),
  async (ctx) =>
    ctx.config.source === null
      ? undefined
      : (await import('./sources/bullmq-source.js')).startBullmqSource(ctx),
];

async function startFronts(context: FrontContext, starts: readonly StartFront[]): Promise<Front[]> {
  const fronts: Front[] = [];
  for (const start of starts) {
    const front = await start(context);
    if (front) fronts.push(front);
  }
  return fronts;
}

async function closeFronts(fronts: readonly Front[], log: Logger): Promise<void> {
  for (const front of [...fronts].reverse()) {
    try {
      await front.close();
    } catch (error) {
      log.warn({ err: error, front: front.name }, 'front did not close cleanly');
    }
  }
}

async function main(): Promise<void> {
  let loaded;
  try {
    loaded = loadConfig({ argv: process.argv.slice(2), env: process.env });
  } catch (error) {
    if (!(error instanceof ConfigError)) throw error;
    process.stderr.write(`gpu-supervisor: ${error.message}\n`);
    process.send?.({ type: 'error', error: { code: ErrorCode.BAD_REQUEST, message: error.message } });
    process.exit(2);
  }
  if (loaded.help) {
    process.stdout.write(`${usage()}\n`);
    return;
  }
  const { config, sources } = loaded;
  const log = createLogger(config.logLevel, { role: 'supervisor', supervisorPid: process.pid });
  // Tokens are never logged: only whether one is set.
  const shown = { ...config, adminToken: config.adminToken === null ? null : '[set]' };
  log.debug({ config: shown, sources }, 'configuration');
  const forked = ForkChannel.available();
  // A standalone daemon keeps its history where `history.path: auto` says; a private child does not.
  const supervisor = new Supervisor(config, { logger: log, autoHistory: !forked });
  const channel = forked ? new ForkChannel(supervisor, log, config.ipcSerialization) : undefined;

  let fronts: Front[] = [];
  let sourcesClosed: Promise<void> | undefined;
  // Queue sources first (no new jobs, active ones finish), then the supervisor drains.
  const shutdown = (): void => {
    sourcesClosed ??= closeFronts(
      fronts.filter((f) => f.name === 'bullmq'),
      log,
    ).then(() => supervisor.shutdown());
  };

  let signals = 0;
  const stop = (signal: NodeJS.Signals): void => {
    if (++signals > 1) {
      log.warn({ signal }, 'second signal: exiting now');
      process.exit(1);
    }
    log.info({ signal }, 'signal received');
    shutdown();
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);

  const context: FrontContext = { supervisor, config, log, forked };
  const failedFront = (error: unknown): void => {
    log.fatal({ err: error }, 'cannot start a front');
    process.send?.({
      type: 'error',
      error: { code: ErrorCode.BAD_REQUEST, message: (error as Error).message },
    });
  };
  try {
    fronts = await startFronts(context, EARLY_FRONTS);
  } catch (error) {
    failedFront(error);
    process.exit(1);
  }
  let startedUp = true;
  try {
    await supervisor.start();
  } catch (error) {
    // Stopped by a signal while the workers started: a clean shutdown, not a failed start.
    const stopped = error instanceof SupervisorError && error.code === ErrorCode.SHUTTING_DOWN && signals > 0;
    if (!stopped) {
      log.fatal({ err: error }, 'cannot start');
      process.send?.({
        type: 'error',
        error: { code: ErrorCode.WORKERS_UNAVAILABLE, message: (error as Error).message },
      });
      process.exit(1);
    }
    startedUp = false;
  }
  // A signal meanwhile: no queue source starts pulling jobs for a supervisor that is shutting down.
  if (startedUp && signals === 0) {
    try {
      fronts = [...fronts, ...(await startFronts(context, FRONTS))];
    } catch (error) {
      failedFront(error);
      await supervisor.shutdown();
      process.exit(1);
    }
    if (channel) channel.ready();
    else if (fronts.length === 0)
      log.info('no IPC channel and no other front: serving no clients until stopped');
  }

  await supervisor.closed;
  await closeFronts(fronts, log);
  // The last answers (a large result finished during the drain) reach the parent before we exit.
  await channel?.flushed(FLUSH_TIMEOUT_MS);
  channel?.close();
  process.exit(0);
}

void main();
