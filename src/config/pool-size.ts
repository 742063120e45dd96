import { ConfigError } from './errors.js';

export interface PoolSizeConfig {
  workers: number;
  minWorkers: number | null;
  maxWorkers: number | null;
}

/**
 * The elastic pool's bounds: minWorkers and maxWorkers default to `workers`, and must keep
 * min <= workers <= max. Throws a one-line ConfigError naming the keys and values otherwise.
 */
export function resolvePoolSize(config: PoolSizeConfig): { minWorkers: number; maxWorkers: number } {
  const minWorkers = config.minWorkers ?? config.workers;
  const maxWorkers = config.maxWorkers ?? config.workers;
  if (minWorkers > config.workers || config.workers > maxWorkers) {
    throw new ConfigError(
      `invalid config: minWorkers (${minWorkers}) <= workers (${config.workers}) <= maxWorkers (${maxWorkers}) must hold`,
    );
  }
  return { minWorkers, maxWorkers };
}

/**
 * Tasks one worker may hold at once. Only a worker process is sent tasks ahead: a thread's tasks go
 * through piscina one at a time, and its dispatch costs no IPC round trip to hide.
 */
export function effectivePipelineDepth(config: {
  backend: 'process' | 'thread';
  pipelineDepth: number;
}): number {
  return config.backend === 'process' ? config.pipelineDepth : 1;
}
