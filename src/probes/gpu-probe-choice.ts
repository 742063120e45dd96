import { GpuProbe } from './gpu-probe.js';
import type { GpuFailure } from './gpu-reader.js';
import { NvmlReader } from './nvml-reader.js';

/** The `gpuProbe` config section. */
export interface GpuProbeChoice {
  kind: 'auto' | 'nvml' | 'nvidia-smi';
  nvmlLibrary: string;
  nvmlIntervalMs: number;
  command: string;
  timeoutMs: number;
  minIntervalMs: number;
}

export interface ChosenGpuProbe {
  probe: GpuProbe;
  /** Why NVML is not the one in use, when 'auto' fell back to nvidia-smi. */
  nvmlFailure?: GpuFailure;
}

/**
 * The GPU probe for `gpuProbe.kind`, already initialized: 'auto' tries NVML and falls back to
 * nvidia-smi when the library cannot load, init or list a device; 'nvml' and 'nvidia-smi' use that
 * reader only. Whether a usable GPU is there is the returned probe's `state`.
 */
export async function chooseGpuProbe(config: GpuProbeChoice): Promise<ChosenGpuProbe> {
  const { kind, command, timeoutMs, minIntervalMs, nvmlLibrary, nvmlIntervalMs } = config;
  const smi = () => new GpuProbe({ command, timeoutMs, minIntervalMs });
  if (kind === 'nvidia-smi') {
    const probe = smi();
    await probe.init();
    return { probe };
  }
  // NVML readings are cheap: none is held back for coalescing (minIntervalMs 0), and the sampler
  // that runs while tasks do paces itself with nvmlIntervalMs instead.
  const nvml = new GpuProbe(
    { command, timeoutMs, minIntervalMs: 0, sampleIntervalMs: nvmlIntervalMs },
    new NvmlReader(nvmlLibrary),
  );
  if ((await nvml.init()) || kind === 'nvml') return { probe: nvml };
  const nvmlFailure = nvml.failure;
  nvml.close();
  const probe = smi();
  await probe.init();
  return { probe, ...(nvmlFailure ? { nvmlFailure } : {}) };
}
