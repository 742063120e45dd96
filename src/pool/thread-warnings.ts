import type { PoolOptions } from './pool-options.js';

/** The thread backend's limits, said once at start where they matter. */
export function warnThreadLimits(options: PoolOptions): void {
  const { backend, workerConfig, gpus, warn } = options;
  if (backend !== 'thread' || !warn) return;
  const providers = [
    ...workerConfig.executionProviders,
    ...Object.values(workerConfig.models).flatMap((m) => m.executionProviders ?? []),
  ];
  if (providers.includes('cuda')) {
    warn(
      { backend, executionProviders: workerConfig.executionProviders },
      'cuda with backend "thread": threads share one process and one CUDA context, so no cleanup or ' +
        'recycle gives GPU memory back to the driver; use backend "process" on GPU hosts',
    );
  }
  if (gpus.length > 0) warn({ backend, gpus }, 'gpus pinning needs backend "process": ignored for threads');
}
