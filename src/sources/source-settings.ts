import type { BullmqSourceConfig, SupervisorConfig } from '../config/schema.js';

/**
 * Defaults for the optional keys of `source` (config/default.json has `source: null`, so the defaults of
 * its optional keys cannot live there).
 */
export const SOURCE_DEFAULTS = {
  statsIntervalMs: 5_000,
  statsTtlMs: 15_000,
  /** A job whose host died goes back to the queue this often before BullMQ fails it as stalled. */
  maxStalledCount: 2,
  /** A job this host will not take (shutting down, queue full) goes back to the queue for this long. */
  handBackDelayMs: 1_000,
} as const;

/** Keys a deployment may add to `source` to set BullMQ's stalled-job check apart from the stats TTL. */
interface StalledKeys {
  lockDurationMs?: number;
  stalledIntervalMs?: number;
  maxStalledCount?: number;
}

export interface ConsumerSettings {
  concurrency: number;
  statsIntervalMs: number;
  statsTtlMs: number;
  lockDurationMs: number;
  stalledIntervalMs: number;
  maxStalledCount: number;
}

/**
 * One notion of liveness: a host is taken for dead once it has been silent for `statsTtlMs`. Its stats
 * key expires then, and so do its job locks (lockDuration = statsTtlMs; BullMQ renews a held lock every
 * half of it), and the other hosts look for such jobs every `statsIntervalMs` (stalledInterval).
 */
export function consumerSettings(source: BullmqSourceConfig, config: SupervisorConfig): ConsumerSettings {
  const extra = source as BullmqSourceConfig & StalledKeys;
  const statsIntervalMs = source.statsIntervalMs ?? SOURCE_DEFAULTS.statsIntervalMs;
  const statsTtlMs = source.statsTtlMs ?? SOURCE_DEFAULTS.statsTtlMs;
  return {
    // "As many jobs as worker slots": more would only queue inside this host while others sit idle.
    concurrency: source.concurrency || (config.maxWorkers ?? config.workers),
    statsIntervalMs,
    statsTtlMs,
    lockDurationMs: extra.lockDurationMs ?? statsTtlMs,
    stalledIntervalMs: extra.stalledIntervalMs ?? statsIntervalMs,
    maxStalledCount: extra.maxStalledCount ?? SOURCE_DEFAULTS.maxStalledCount,
  };
}
