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
 * memory is the whole supervisor's); every timer is unref'd and runs only while its worker holds a task.
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
      watched = { statm, timer: undefined, since: 0, gpuAt: 0 };
      this.watched.set(handle, watched);
    }
    if (watched.timer) return;
    watched.since = Date.now();
    const entry = watched;
    entry.timer = setInterval(() => this.read(handle, entry), this.options.intervalMs).unref();
  }

  /** The worker holds nothing any more: readings pause (its statm stays open for its next task). */
  stop(handle: WorkerHandle): void {
    const watched = this.watched.get(handle);
    if (!watched?.timer) return;
    clearInterval(watched.timer);
    watched.timer = undefined;
  }

  /** The worker exited: its timer stops and its statm is closed. */
  forget(handle: WorkerHandle): void {
    this.stop(handle);
    this.watched.get(handle)?.statm?.close();
    this.watched.delete(handle);
  }

  close(): void {
    for (const handle of [...this.watched.keys()]) this.forget(handle);
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
