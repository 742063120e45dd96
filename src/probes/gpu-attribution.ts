import type { GpuSnapshot } from './gpu-probe.js';

/**
 * Who a reading's GPU memory belongs to. 'process': nvidia-smi lists our workers' pids, so each
 * worker's own usage is known. 'device': inside a PID namespace (a container without --pid=host)
 * nvidia-smi shows host pids that never match our workers', so only whole-device figures are usable.
 */
export type Attribution = 'process' | 'device';

export interface GpuUsage {
  miB: number;
  attribution: Attribution;
  /** When the reading it comes from started (ms since epoch). */
  at: number;
}

export type PidExists = (pid: number) => boolean;

export function pidExistsHere(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    // EPERM: it exists, it just is not ours to signal.
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * A listed pid that does not exist in our PID namespace means nvidia-smi speaks host pids: device
 * attribution. Listed pids that exist here but are not our workers are other programs sharing the GPU:
 * our workers simply hold no GPU memory (process attribution, 0 MiB each).
 */
export function detectAttribution(
  snapshot: GpuSnapshot,
  workerPids: readonly number[],
  pidExists: PidExists,
): Attribution {
  if (snapshot.processes.some((p) => workerPids.includes(p.pid))) return 'process';
  return snapshot.processes.some((p) => !pidExists(p.pid)) ? 'device' : 'process';
}

/** Used MiB on the given GPU (by index), or on all GPUs when the worker is not pinned to one. */
export function deviceUsedMiB(snapshot: GpuSnapshot, gpuIndex: number | undefined): number | undefined {
  const devices = snapshot.devices.filter((d) => gpuIndex === undefined || d.index === gpuIndex);
  if (devices.length === 0 || devices.some((d) => d.usedMiB === null)) return undefined;
  return devices.reduce((sum, d) => sum + (d.usedMiB ?? 0), 0);
}

/** A process's own GPU memory over every GPU it uses (0 when it is not listed). */
export function processUsedMiB(snapshot: GpuSnapshot, pid: number): number | undefined {
  const entries = snapshot.processes.filter((p) => p.pid === pid);
  if (entries.some((p) => p.usedMiB === null)) return undefined;
  return entries.reduce((sum, p) => sum + (p.usedMiB ?? 0), 0);
}

export function usageOf(
  snapshot: GpuSnapshot,
  pid: number,
  gpuIndex: number | undefined,
  attribution: Attribution,
): GpuUsage | undefined {
  const miB = attribution === 'process' ? processUsedMiB(snapshot, pid) : deviceUsedMiB(snapshot, gpuIndex);
  return miB === undefined ? undefined : { miB, attribution, at: snapshot.startedAt };
}
