import { limitsOn, type HardLimits, type LimitReading } from '../core/hard-limits.js';
import type { GpuMeter } from '../probes/gpu-meter.js';
import { StatmReader } from '../probes/statm-reader.js';
import type { WorkerHandle } from './worker-handle.js';

export interface LimitWatchOptions extends HardLimits {
  /** ms between two RSS readings of a worker that holds a task (limits.intervalMs). */
  intervalMs: number;
}

interface Watched {
  /** Its statm, opened at its first task and kept open until it exits. */
  readonly statm: StatmReader | undefined;
  timer: NodeJS.Timeout | undefined;
  /** It holds a task now. The timer outlives a gap between two tasks by up to one interval. */
  holding: boolean;
  /** When its current stretch of holding tasks began: GPU readings older than that are not its task's. */
  since: number;
  /** The GPU reading already passed on (one verdict per reading, at the probe's own cadence). */
  gpuAt: number;
}

/**
 * Reads the memory of workers while they hold tasks, for the hard limits: RSS from /proc/<pid>/statm
 * every `intervalMs`, GPU memory from the GPU probe's latest reading (taken by the pool's sampler at
 * the probe's cadence, never here). It judges nothing: each reading goes to `reading`, and the
 * scheduler asks the core whether it is over a limit. Only worker processes are watched (a thread's
 * memory is the whole supervisor's); every timer is unref'd and ends at its first tick after its worker
 * holds nothing.
 */
export class LimitWatch {
  private readonly watched = new Map<WorkerHandle, Watched>();
  readonly on: boolean;

  constructor(
    private readonly options: LimitWatchOptions,
    private readonly gpu: () => GpuMeter | undefined,
    private readonly reading: (handle: WorkerHandle, reading: LimitReading) => void,
  ) {
    this.on = limitsOn(options);
  }

  /** The worker took a task while it held none: readings start. */
  start(handle: WorkerHandle): void {
    if (!this.on || handle.memoryScope !== 'worker' || !handle.alive) return;
    let watched = this.watched.get(handle);
    if (!watched) {
      const statm = this.options.rssMiB > 0 ? StatmReader.open(handle.pid) : undefined;
      watched = { statm, timer: undefined, holding: false, since: 0, gpuAt: 0 };
      this.watched.set(handle, watched);
    }
    if (watched.holding) return;
    watched.holding = true;
    watched.since = Date.now();
    // A worker between two tasks keeps its timer: arming one per task would cost more than the readings.
    if (watched.timer) return;
    const entry = watched;
    entry.timer = setInterval(() => this.tick(handle, entry), this.options.intervalMs).unref();
  }

  /** The worker holds nothing any more: no more readings; its timer ends at its next tick. */
  stop(handle: WorkerHandle): void {
    const watched = this.watched.get(handle);
    if (watched) watched.holding = false;
  }

  /** The worker exited (or was killed): its timer stops now and its statm is closed. */
  forget(handle: WorkerHandle): void {
    const watched = this.watched.get(handle);
    if (!watched) return;
    clearInterval(watched.timer);
    watched.statm?.close();
    this.watched.delete(handle);
  }

  close(): void {
    for (const handle of [...this.watched.keys()]) this.forget(handle);
  }

  private tick(handle: WorkerHandle, watched: Watched): void {
    if (watched.holding) return this.read(handle, watched);
    clearInterval(watched.timer);
    watched.timer = undefined;
  }

  private read(handle: WorkerHandle, watched: Watched): void {
    const rssMiB = watched.statm?.rssMiB();
    let gpuMiB: number | undefined;
    if (this.options.gpuMiB > 0) {
      const usage = this.gpu()?.cached(handle.pid, handle.gpuIndex);
      // Per-process figures only: a device-level one is every process's memory, not this worker's.
      if (usage && usage.attribution === 'process' && usage.at >= watched.since && usage.at > watched.gpuAt) {
        watched.gpuAt = usage.at;
        gpuMiB = usage.miB;
      }
    }
    if (rssMiB !== undefined || gpuMiB !== undefined) this.reading(handle, { rssMiB, gpuMiB });
  }
}
