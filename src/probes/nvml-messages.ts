import type { GpuDevice, GpuProcess } from './nvidia-smi-parse.js';
import type { GpuFailure } from './gpu-reader.js';

/** What the supervisor hands the NVML thread at start. */
export interface NvmlThreadData {
  library: string;
}

export type NvmlRequest = { kind: 'read'; id: number } | { kind: 'close' };

export type NvmlReply =
  | { kind: 'reading'; id: number; devices: GpuDevice[]; processes: GpuProcess[]; nvmlMs: number }
  | { kind: 'failed'; id: number; failure: GpuFailure };
