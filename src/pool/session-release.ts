import type { SupervisorEventMap } from '../events.js';
import type { GpuAccounting } from './gpu-accounting.js';
import type { WorkerHandle } from './worker-handle.js';

/** One worker's in-place session release (admin clear-cache { model, mode: 'light' }), measured. */
export type InPlaceRelease = SupervisorEventMap['release'];

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
