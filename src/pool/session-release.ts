import type { Attribution } from '../probes/gpu-attribution.js';
import type { GpuAccounting } from './gpu-accounting.js';
import type { WorkerHandle } from './worker-handle.js';

/** One worker's in-place session release (admin clear-cache { model, mode: 'light' }), measured. */
export interface InPlaceRelease {
  pid: number;
  model: string;
  /** Whether it held that session (absent when its module cannot tell). */
  held?: boolean;
  ms: number;
  /** Its RSS around the release and collection, as the worker read it (when cleanup.measure). */
  rssBeforeMiB?: number;
  rssAfterMiB?: number;
  /** Its GPU memory read before and after, when both readings are of the same kind. */
  gpuBeforeMiB?: number;
  gpuAfterMiB?: number;
  /** Whose GPU memory those are: the worker's own, or its whole device's. */
  attribution?: Attribution;
  /** The GPU the worker is pinned to (`gpus`); absent when it sees every GPU. */
  gpuIndex?: number;
  memoryScope: 'worker' | 'process';
}

/**
 * Has `handle` release `model`'s session in place, with its GPU memory read before and after (the
 * release waits behind the tasks the worker holds, so "before" may include a task's memory).
 */
export async function releaseMeasured(
  handle: WorkerHandle,
  model: string,
  gpu: GpuAccounting,
  measure: boolean,
): Promise<InPlaceRelease | undefined> {
  const gpuBefore = await gpu.usageNow(handle);
  const report = await handle.releaseSession(model, measure);
  if (!report) return undefined;
  const gpuAfter = gpuBefore ? await gpu.usageNow(handle) : undefined;
  const release: InPlaceRelease = { pid: handle.pid, ...report, memoryScope: handle.memoryScope };
  if (gpuBefore && gpuAfter && gpuBefore.attribution === gpuAfter.attribution) {
    release.gpuBeforeMiB = gpuBefore.miB;
    release.gpuAfterMiB = gpuAfter.miB;
    release.attribution = gpuAfter.attribution;
    if (handle.gpuIndex !== undefined) release.gpuIndex = handle.gpuIndex;
  }
  return release;
}
