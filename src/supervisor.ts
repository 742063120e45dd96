#!/usr/bin/env node
/**
 * `node dist/supervisor.js`: flags + env + config file -> Supervisor -> IPC channel to the parent,
 * signals -> graceful shutdown. Exits 2 on a bad config (one line saying what is wrong), 1 when the
 * workers cannot start, 0 after a clean shutdown.
 */
import { ConfigError } from './config/errors.js';
import { loadConfig, usage } from './config/load.js';
import { createLogger } from './logging/logger.js';
import { ErrorCode } from './protocol/errors.js';
import { Supervisor } from './supervisor/supervisor.js';
import { ForkChannel } from './transport/fork-channel.js';

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
  log.debug({ config, sources }, 'configuration');
  const supervisor = new Supervisor(config, { logger: log });
  const channel = ForkChannel.available()
    ? new ForkChannel(supervisor, log, config.ipcSerialization)
    : undefined;

  let signals = 0;
  const stop = (signal: NodeJS.Signals): void => {
    if (++signals > 1) {
      log.warn({ signal }, 'second signal: exiting now');
      process.exit(1);
    }
    log.info({ signal }, 'signal received');
    void supervisor.shutdown();
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);

  try {
    await supervisor.start();
  } catch (error) {
    log.fatal({ err: error }, 'cannot start');
    process.send?.({
      type: 'error',
      error: { code: ErrorCode.WORKERS_UNAVAILABLE, message: (error as Error).message },
    });
    process.exit(1);
  }
  if (channel) channel.ready();
  else log.info('no IPC channel (not forked): serving no clients until stopped');

  await supervisor.closed;
  channel?.close();
  process.exit(0);
}

void main();
