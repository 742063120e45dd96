import type { GpuDevice, GpuProcess, SmiFailure } from './nvidia-smi-parse.js';

/** How a GPU reading is taken: NVML through koffi (a call), or nvidia-smi through execa (a spawn). */
export type GpuProbeKind = 'nvml' | 'nvidia-smi';

/**
 * Why a reader got no reading. The same kinds for both readers ('not-installed': no nvidia-smi on PATH,
 * or no NVML library to load), so `gpu-unavailable` and the start line read the same either way.
 */
export type GpuFailure = SmiFailure;

export type GpuReading =
  { ok: true; devices: GpuDevice[]; processes: GpuProcess[] } | { ok: false; failure: GpuFailure };

/** One way of taking a whole reading (every device and every compute process). */
export interface GpuReader {
  readonly kind: GpuProbeKind;
  /** A reading, or why there is none; never throws, and answers within about `timeoutMs`. */
  read(timeoutMs: number): Promise<GpuReading>;
  close(): void;
}
