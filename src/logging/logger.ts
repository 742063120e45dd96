import { createRequire } from 'node:module';
import type { Logger, LevelWithSilent, pino as Pino } from 'pino';

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
  // Loaded on first use: a worker that never logs starts ~25 ms sooner (pino is most of its start-up).
  const { pino } = createRequire(import.meta.url)('pino') as { pino: typeof Pino };
  const destination = pino.destination({
    dest: process.stdout.fd ?? 1,
    sync: false,
    maxLength: LOG_BUFFER_MAX_BYTES,
  });
  return pino({ level, base: bindings, timestamp: pino.stdTimeFunctions.isoTime }, destination);
}

/** pino's numbers for its standard levels (pino itself is what a lazy logger avoids loading). */
const LEVEL_VALUES: Record<string, number> = {
  trace: 10,
  debug: 20,
  info: 30,
  warn: 40,
  error: 50,
  fatal: 60,
};
const skip = (): void => undefined;

/**
 * A logger made on its first line at an enabled level: what a worker hands its module, which may never
 * log (a recycled worker's start-up is on the pool's critical path). A call below the level is skipped
 * without making it: a debug line in every start would otherwise load pino in every start.
 */
export function lazyLogger(level: LevelWithSilent, bindings: Record<string, unknown>): Logger {
  let logger: Logger | undefined;
  const threshold = level === 'silent' ? Infinity : (LEVEL_VALUES[level] ?? 0);
  const real = (): Logger => (logger ??= createLogger(level, bindings));
  return new Proxy({} as Logger, {
    get: (_target, property) => {
      const value = typeof property === 'string' ? LEVEL_VALUES[property] : undefined;
      if (logger === undefined && value !== undefined && value < threshold) return skip;
      const found: unknown = Reflect.get(real(), property);
      return typeof found === 'function' ? (found as (...args: unknown[]) => unknown).bind(real()) : found;
    },
  });
}
