import {
  detectAttribution,
  pidExistsHere,
  usageOf,
  type Attribution,
  type GpuUsage,
  type PidExists,
} from './gpu-attribution.js';
import type { GpuProbe, GpuSnapshot } from './gpu-probe.js';
import { roundMiB } from './process-memory.js';

/**
 * NVML readings are not rate-limited (minIntervalMs 0), so the reclaim wait paces itself: with process
 * attribution a poll every this often sees the pid leave the list within that much. With device
 * attribution "stopped falling" compares two readings, so they are spaced as the sampler's (the
 * driver may not have begun to free a dead process's memory 10 ms after its exit).
 */
const NVML_RECLAIM_POLL_MS = 10;

export interface ReclaimResult {
  /** GPU MiB the exit gave back: the process's whole usage, or the device's drop. */
  freedMiB: number;
  /** Time from the exit until the driver was seen to have reclaimed it (or the timeout). */
  ms: number;
  reclaimed: boolean;
  attribution: Attribution;
}

/**
 * Per-worker GPU figures from the probe's readings: which attribution applies, a worker's usage,
 * and the wait until the driver has reclaimed a dead worker's memory.
 */
export class GpuMeter {
  attribution: Attribution = 'process';

  constructor(
    readonly probe: GpuProbe,
    private readonly workerPids: () => number[],
    private readonly pidExists: PidExists = pidExistsHere,
  ) {}

  private observe(snapshot: GpuSnapshot): void {
    this.attribution = detectAttribution(snapshot, this.workerPids(), this.pidExists);
  }

  /** Takes a reading (coalesced with any other caller's) and updates the attribution. */
  async refresh(): Promise<GpuSnapshot | undefined> {
    const snapshot = await this.probe.fresh();
    if (snapshot) this.observe(snapshot);
    return snapshot;
  }

  /** Usage from a reading that starts now (shared with other callers). */
  async usage(pid: number, gpuIndex: number | undefined): Promise<GpuUsage | undefined> {
    const snapshot = await this.refresh();
    return snapshot ? usageOf(snapshot, pid, gpuIndex, this.attribution) : undefined;
  }

  /** Usage from the latest reading already taken (no wait). */
  cached(pid: number, gpuIndex: number | undefined): GpuUsage | undefined {
    const snapshot = this.probe.latest;
    return snapshot ? usageOf(snapshot, pid, gpuIndex, this.attribution) : undefined;
  }

  /**
   * After `pid` exited: waits until its memory is back with the driver. With process attribution,
   * until the pid is no longer listed; with device attribution, until the device's used memory stops
   * falling. Bounded by `timeoutMs`.
   */
  async waitReclaimed(
    pid: number,
    gpuIndex: number | undefined,
    before: GpuUsage,
    timeoutMs: number,
  ): Promise<ReclaimResult> {
    const started = performance.now();
    let last: number | undefined;
    const pause = !this.probe.readsPerCleanup
      ? 0
      : before.attribution === 'process'
        ? NVML_RECLAIM_POLL_MS
        : Math.max(NVML_RECLAIM_POLL_MS, this.probe.sampleIntervalMs);
    for (let polls = 0; ; polls++) {
      if (polls > 0 && pause > 0) await new Promise((resolve) => setTimeout(resolve, pause));
      const snapshot = await this.probe.fresh();
      const elapsed = performance.now() - started;
      if (snapshot) {
        const usage = usageOf(snapshot, pid, gpuIndex, before.attribution);
        if (before.attribution === 'process') {
          const listed = snapshot.processes.some((p) => p.pid === pid);
          if (!listed)
            return { freedMiB: before.miB, ms: Math.round(elapsed), reclaimed: true, attribution: 'process' };
        } else if (usage) {
          if (last !== undefined && usage.miB >= last) {
            return {
              freedMiB: roundMiB(before.miB - usage.miB),
              ms: Math.round(elapsed),
              reclaimed: true,
              attribution: 'device',
            };
          }
          last = usage.miB;
        }
      }
      if (elapsed >= timeoutMs || !snapshot) {
        const freed = before.attribution === 'device' && last !== undefined ? roundMiB(before.miB - last) : 0;
        return {
          freedMiB: freed,
          ms: Math.round(elapsed),
          reclaimed: false,
          attribution: before.attribution,
        };
      }
    }
  }
}
