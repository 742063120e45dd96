import { pino, type Logger, type LevelWithSilent } from 'pino';

export type { Logger };

/**
 * Log lines wait in memory while whatever reads stdout falls behind; past this much they are dropped
 * rather than let a log flood (a client sending bad frames, a crash loop) grow the process without end.
 */
const LOG_BUFFER_MAX_BYTES = 16 * 1024 * 1024;

/**
 * One JSON event per line on stdout (pino), so logs from the supervisor and its workers interleave
 * safely in one stream and every line can be parsed. Pipe through `pino-pretty` for humans.
 */
export function createLogger(level: LevelWithSilent, bindings: Record<string, unknown> = {}): Logger {
  const destination = pino.destination({
    dest: process.stdout.fd ?? 1,
    sync: false,
    maxLength: LOG_BUFFER_MAX_BYTES,
  });
  return pino({ level, base: bindings, timestamp: pino.stdTimeFunctions.isoTime }, destination);
}
