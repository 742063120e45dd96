import type { SupervisorConfig } from '../config/schema.js';
import type { SupervisorEvents } from '../events.js';
import type { Logger } from '../logging/logger.js';
import { GpuMeter } from '../probes/gpu-meter.js';
import type { GpuProbe } from '../probes/gpu-probe.js';
import { chooseGpuProbe } from '../probes/gpu-probe-choice.js';

/**
 * GPU measurement, when enabled (cleanup.gpu): one probe reading decides. No GPU is a normal state
 * (a CPU host): one info line, then no further attempts. `probe` is whatever was opened (the caller
 * closes it), `meter` is set only when a GPU answered.
 */
export async function startGpuMeter(
  config: SupervisorConfig,
  log: Logger,
  events: SupervisorEvents,
  workerPids: () => number[],
): Promise<{ meter: GpuMeter | undefined; probe: GpuProbe | undefined }> {
  if (!config.cleanup.gpu) return { meter: undefined, probe: undefined };
  const { probe, nvmlFailure } = await chooseGpuProbe(config.gpuProbe);
  const fallback = nvmlFailure ? { nvml: `${nvmlFailure.kind}: ${nvmlFailure.message}` } : {};
  if (probe.state === 'available') {
    const devices = probe.latest?.devices ?? [];
    log.info(
      {
        gpus: devices.map((d) => `${d.index}: ${d.name}`),
        probe: probe.kind,
        readingMs: probe.averageMs,
        ...fallback,
      },
      'GPU probe ready',
    );
    return { meter: new GpuMeter(probe, workerPids), probe };
  }
  const failure = probe.failure ?? { kind: 'failed', message: 'unknown' };
  events.emit('gpu-unavailable', failure);
  log.info({ kind: failure.kind, reason: failure.message, ...fallback }, 'no GPU: GPU measurement off');
  return { meter: undefined, probe };
}
