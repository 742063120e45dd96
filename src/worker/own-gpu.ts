import { readFileSync } from 'node:fs';

/**
 * A worker's own GPU memory, read by the worker itself through NVML around each measured cleanup, as
 * it reads its RSS: only the worker knows where a cleanup ends and its next task begins, so only its
 * own readings bracket a cleanup when tasks are sent ahead (pipelining). The NVML calls are
 * synchronous here, in the worker's process: one that hangs stalls this worker only, and
 * cleanup.timeoutMs ends it. Loaded on demand: a worker not asked to read loads neither koffi nor NVML.
 */
export interface OwnGpu {
  /** This process's GPU MiB, or undefined (not listed: no CUDA context, or another PID namespace). */
  readMiB(): number | undefined;
}

/**
 * In a PID namespace NVML lists host pids, and a host process whose pid equals ours would pass for us:
 * there the parent's readings (with their attribution check) remain.
 */
function inPidNamespace(): boolean {
  try {
    const line = /^NSpid:\s*(.*)$/m.exec(readFileSync('/proc/self/status', 'utf8'));
    return line !== null && line[1]!.trim().split(/\s+/).length > 1;
  } catch {
    return false;
  }
}

export async function openOwnGpu(library: string): Promise<OwnGpu | undefined> {
  if (inPidNamespace()) return undefined;
  try {
    const [{ bindNvml }, { NvmlReading }] = await Promise.all([
      import('../probes/nvml-binding.js'),
      import('../probes/nvml-read.js'),
    ]);
    const nvml = bindNvml(library);
    if (nvml.init() !== 0) return undefined;
    const reading = new NvmlReading(nvml);
    return {
      readMiB: () => {
        try {
          return reading.processMiB(process.pid);
        } catch {
          return undefined; // a failed call costs this cleanup its figures, nothing more
        }
      },
    };
  } catch {
    return undefined; // no koffi for this platform, or no library: the parent's readings remain
  }
}
