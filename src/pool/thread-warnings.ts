import type { PoolConfig } from './pool-config.js';

export type Warn = (fields: Record<string, unknown>, message: string) => void;

/** The thread backend's limits, said once at start where they matter. */
export function warnThreadLimits(config: PoolConfig, warn: Warn | undefined): void {
  const { backend, executionProviders, models, gpus } = config;
  if (backend !== 'thread' || !warn) return;
  const providers = [
    ...executionProviders,
    ...Object.values(models).flatMap((m) => m.executionProviders ?? []),
  ];
  if (providers.includes('cuda')) {
    warn(
      { backend, executionProviders },
      'cuda with backend "thread": threads share one process and one CUDA context, so no cleanup or ' +
        'recycle gives GPU memory back to the driver; use backend "process" on GPU hosts',
    );
  }
  if (gpus.length > 0) warn({ backend, gpus }, 'gpus pinning needs backend "process": ignored for threads');
}
