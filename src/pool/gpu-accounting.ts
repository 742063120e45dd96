import { roundMiB } from '../probes/process-memory.js';
import type { GpuMeter } from '../probes/gpu-meter.js';
import type { GpuUsage } from '../probes/gpu-attribution.js';
import type { SupervisorEventMap } from '../events.js';
import type { WorkerHandle } from './worker-handle.js';

type Reclaim = Awaited<ReturnType<GpuMeter['waitReclaimed']>> & {
  /** Another exit's reclaim ran on the same GPU meanwhile: a device's drop was not this one's alone. */
  overlapped?: true;
};

/** How soon after being asked an NVML "after" reading must start to still bracket a cleanup. */
const PROMPT_MS = 2;

/**
 * The pool's GPU side: readings while tasks run, the figures of a cleanup and of a recycle, and the
 * `gpu` policy signal. Only a worker process has GPU memory of its own: a thread shares the
 * supervisor's process (and CUDA context), so nothing here applies to threads.
 */
export class GpuAccounting {
  private sampling = false;
  /** Reclaim waits under way, per GPU (undefined: unpinned, every GPU), and whether each saw another. */
  private readonly reclaiming = new Map<number | undefined, Set<{ overlapped: boolean }>>();
  /** When the latest reclaim wait, or exit, on each GPU ended (ms since epoch). */
  private readonly reclaimEndedAt = new Map<number | undefined, number>();
  /** Workers being stopped, per GPU: their memory may go back (a released session, then the exit). */
  private readonly leavers = new Map<number | undefined, Set<WorkerHandle>>();
  /** Workers a fresh reading was taken for because the latest one predated their ready. */
  private readonly refreshing = new WeakMap<WorkerHandle, 'pending' | 'done'>();

  constructor(
    readonly meter: GpuMeter | undefined,
    private readonly reclaimTimeoutMs: number,
  ) {}

  private applies(handle: WorkerHandle): GpuMeter | undefined {
    return handle.backend === 'process' ? this.meter : undefined;
  }

  /**
   * GPU readings while tasks run, one at a time: the "before" figure of each cleanup is the last of
   * these, so it reflects the task's memory (where the worker does not read its own). With nvidia-smi
   * at most one per gpuProbe.minIntervalMs (never per task); with NVML one per gpuProbe.nvmlIntervalMs.
   */
  sampleWhile(active: () => boolean): void {
    const gpu = this.meter;
    if (!gpu || this.sampling) return;
    this.sampling = true;
    const pause = gpu.probe.sampleIntervalMs;
    void (async () => {
      try {
        while (active() && gpu.probe.state === 'available') {
          await gpu.refresh();
          if (pause > 0) await new Promise((resolve) => setTimeout(resolve, pause));
        }
      } finally {
        this.sampling = false;
      }
    })();
  }

  /**
   * A worker is being stopped (`leaving`) or is gone (`left`), whatever the reason (a recycle, an idle
   * retire, a spare or successor let go, a crash): a cleanup on its GPU whose readings straddle that
   * claims no drop, since the drop may be the leaver's.
   */
  leaving(handle: WorkerHandle): void {
    if (!this.applies(handle)) return;
    const set = this.leavers.get(handle.gpuIndex) ?? new Set();
    this.leavers.set(handle.gpuIndex, set.add(handle));
  }

  left(handle: WorkerHandle): void {
    if (!this.applies(handle)) return;
    this.leavers.get(handle.gpuIndex)?.delete(handle);
    this.reclaimEndedAt.set(handle.gpuIndex, Date.now());
  }

  /** The last reading taken while the worker's latest task ran, if any: a cleanup's GPU "before". */
  readingDuringTask(handle: WorkerHandle): GpuUsage | undefined {
    const cached = this.applies(handle)?.cached(handle.pid, handle.gpuIndex);
    return cached && cached.at >= handle.lastRunAt ? cached : undefined;
  }

  /**
   * GPU side of a cleanup, off the worker's path: a reading started after it, added to `measured`
   * when it brackets the cleanup. Resolves with the worker's own GPU memory (process attribution
   * only), the fact the `gpu` rule judges. `sharing`: how many workers are on its GPU, itself
   * included (asked only where a device's readings are used).
   */
  async afterCleanup(
    handle: WorkerHandle,
    measured: SupervisorEventMap['cleanup'],
    before: GpuUsage | undefined,
    runsAtCleanup: number,
    sharing: () => number = () => 1,
  ): Promise<number | undefined> {
    const gpu = this.applies(handle);
    // The worker read its own GPU memory around the cleanup (NVML): nothing to bracket from here.
    if (measured.gpuAfterMiB !== undefined && measured.attribution === 'process') return measured.gpuAfterMiB;
    const sharedBy = sharing();
    // Asked now, before the scheduler dispatches anything else: whether a next task was already on its
    // way to this worker is known at the asking, not after the reading.
    const sentWhenAsked = handle.sent;
    const askedAt = Date.now();
    // An exit's memory going back to the driver on this GPU between the readings is that exit's drop.
    const reclaimDuring = (): boolean =>
      (this.reclaiming.get(handle.gpuIndex)?.size ?? 0) > 0 ||
      (this.leavers.get(handle.gpuIndex)?.size ?? 0) > 0 ||
      (this.reclaimEndedAt.get(handle.gpuIndex) ?? 0) >= (before?.at ?? askedAt);
    const after = await gpu?.usage(handle.pid, handle.gpuIndex);
    // Figures are logged only when the readings bracket this cleanup: the "after" reading started
    // before the worker's next task did. Under load that is not always so, and a figure that mixes
    // in the next task would be a wrong number, not an approximate one. An nvidia-smi reading starts
    // tens of ms later, so it must have started before the next task was sent. An NVML reading starts
    // within microseconds of being asked: one asked before the next task was sent, and started within
    // PROMPT_MS of it, read the worker before that task reached it (IPC alone takes longer).
    const nextTaskStarted = gpu?.probe.readsPerCleanup
      ? sentWhenAsked > runsAtCleanup ||
        (handle.sent > runsAtCleanup && (after?.at ?? Infinity) - askedAt > PROMPT_MS)
      : handle.sent > runsAtCleanup + 1 ||
        (handle.sent > runsAtCleanup && handle.lastRunAt <= (after?.at ?? 0));
    if (after && !nextTaskStarted) {
      measured.gpuAfterMiB = after.miB;
      measured.attribution = after.attribution;
      if (before && before.attribution === after.attribution) {
        measured.gpuBeforeMiB = before.miB;
        // A device's drop is this worker's only if no other worker shares the device: with others, each
        // cleanup bracketed by the same readings would claim it, and totals would count it twice.
        if (after.attribution === 'process' || (sharedBy <= 1 && !reclaimDuring()))
          measured.gpuFreedMiB = roundMiB(before.miB - after.miB);
      }
    }
    return after && after.attribution === 'process' ? after.miB : undefined;
  }

  /** The worker's GPU usage read now (an in-place session release's before and after). */
  usageNow(handle: WorkerHandle): Promise<GpuUsage | undefined> {
    return this.applies(handle)?.usage(handle.pid, handle.gpuIndex) ?? Promise.resolve(undefined);
  }

  /**
   * The GPU half of an early start's budget beside `handle`, from the latest reading (no wait: the
   * sampler keeps one fresh while tasks run): its device's free memory, and its own GPU memory, which
   * its successor will need too. Under device attribution its own memory is not known: the device's
   * use shared by the `sharing` workers placed on it stands in. Undefined where nothing is measured;
   * 'stale' when the latest reading predates the worker's ready (its memory is not in it): a fresh one
   * is taken, and `again` runs once it is in.
   */
  prespawnFacts(
    handle: WorkerHandle,
    sharing: number,
    again: () => void,
  ): { freeMiB: number; footprintMiB: number } | 'stale' | undefined {
    const gpu = this.applies(handle);
    if (!gpu || gpu.probe.state !== 'available') return undefined;
    const snapshot = gpu.probe.latest;
    if (!snapshot || snapshot.startedAt < handle.readyAt) {
      // One fresh reading per worker: if even that one failed, its memory is not measured.
      const asked = this.refreshing.get(handle);
      if (asked === 'done') return undefined;
      if (asked === undefined) {
        this.refreshing.set(handle, 'pending');
        void gpu.refresh().then(() => {
          this.refreshing.set(handle, 'done');
          again();
        });
      }
      return 'stale';
    }
    // Unpinned, a worker's CUDA context goes to the first device it sees.
    const index = handle.gpuIndex ?? snapshot.devices[0]?.index;
    const device = snapshot.devices.find((d) => d.index === index);
    if (!device || device.usedMiB === null || device.totalMiB === null) return undefined;
    const own = gpu.cached(handle.pid, index);
    const footprintMiB =
      own?.attribution === 'process' ? own.miB : roundMiB(device.usedMiB / Math.max(1, sharing));
    return { freeMiB: device.totalMiB - device.usedMiB, footprintMiB };
  }

  /** The retiring worker's usage: read fresh while it lives, the last reading once it is gone. */
  async beforeStop(handle: WorkerHandle): Promise<GpuUsage | undefined> {
    const gpu = this.applies(handle);
    if (!gpu) return undefined;
    return handle.state === 'exited'
      ? gpu.cached(handle.pid, handle.gpuIndex)
      : gpu.usage(handle.pid, handle.gpuIndex);
  }

  /**
   * Only a process exit certainly returns GPU memory. Waits for the driver to reclaim it, so a
   * device-level figure is not mixed with the replacement's CUDA context.
   */
  async reclaimed(handle: WorkerHandle, before: GpuUsage | undefined): Promise<Reclaim | undefined> {
    const gpu = this.applies(handle);
    if (!gpu || !before) return undefined;
    const waits = this.reclaiming.get(handle.gpuIndex) ?? new Set();
    this.reclaiming.set(handle.gpuIndex, waits);
    const mine = { overlapped: waits.size > 0 };
    for (const other of waits) other.overlapped = true;
    waits.add(mine);
    try {
      const reclaim = await gpu.waitReclaimed(handle.pid, handle.gpuIndex, before, this.reclaimTimeoutMs);
      return mine.overlapped ? { ...reclaim, overlapped: true } : reclaim;
    } finally {
      waits.delete(mine);
      this.reclaimEndedAt.set(handle.gpuIndex, Date.now());
    }
  }

  /** The recycle line's GPU figures: what the old worker held and gave back, the new one's baseline. */
  async recycleFigures(
    fresh: WorkerHandle | undefined,
    before: GpuUsage | undefined,
    reclaim: Reclaim | undefined,
  ): Promise<Partial<SupervisorEventMap['recycle']>> {
    const figures: Partial<SupervisorEventMap['recycle']> = {};
    if (before && reclaim) {
      // Two exits reclaimed on one device at once both see its whole drop: neither may claim it.
      const shared = reclaim.attribution === 'device' && reclaim.overlapped === true;
      Object.assign(figures, {
        gpuBeforeMiB: before.miB,
        ...(shared ? {} : { gpuFreedMiB: reclaim.freedMiB }),
        gpuReclaimMs: reclaim.ms,
        gpuReclaimed: reclaim.reclaimed,
        attribution: reclaim.attribution,
      });
    }
    const baseline = fresh ? await this.applies(fresh)?.usage(fresh.pid, fresh.gpuIndex) : undefined;
    // A baseline of another kind than the figures above (the worker's own vs its device's) is left out:
    // one event's figures are all of one kind.
    if (baseline && (figures.attribution === undefined || baseline.attribution === figures.attribution))
      Object.assign(figures, { gpuBaselineMiB: baseline.miB, attribution: baseline.attribution });
    return figures;
  }
}
