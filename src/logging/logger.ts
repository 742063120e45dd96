import { pino, type Logger, type LevelWithSilent } from 'pino';

export type { Logger };

/**
 * One JSON event per line on stdout (pino), so logs from the supervisor and its workers interleave
 * safely in one stream and every line can be parsed. Pipe through `pino-pretty` for humans.
 */
export function createLogger(level: LevelWithSilent, bindings: Record<string, unknown> = {}): Logger {
  return pino({ level, base: bindings, timestamp: pino.stdTimeFunctions.isoTime });
}
