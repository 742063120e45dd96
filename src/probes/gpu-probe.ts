import type { GpuDevice, GpuProcess, SmiFailure } from './nvidia-smi-parse.js';
import type { GpuProbeKind, GpuReader } from './gpu-reader.js';
import { NvidiaSmiReader } from './nvidia-smi-reader.js';

export type { GpuProbeKind } from './gpu-reader.js';

export interface GpuSnapshot {
  /** Increases by one per reading: "a reading started after X" is a comparison of seq numbers. */
  seq: number;
  startedAt: number;
  devices: GpuDevice[];
  processes: GpuProcess[];
}

export interface GpuProbeOptions {
  /** The nvidia-smi to run when no `reader` is given. */
  command: string;
  timeoutMs: number;
  /** Readings are coalesced: at most one reading per this interval (0: back to back). */
  minIntervalMs: number;
  /**
   * While tasks run, the sampler waits this long between readings (0: it is paced by minIntervalMs
   * alone, as nvidia-smi is). With NVML, readings are cheap enough to take per cleanup, so minIntervalMs
   * is 0 and this is what keeps the sampler from spinning.
   */
  sampleIntervalMs?: number;
}

export type GpuProbeState = 'unknown' | 'available' | 'unavailable';

/**
 * Takes GPU readings through a reader (NVML, or nvidia-smi by default) and keeps the latest one.
 * Callers ask for "a reading that started after now", and every caller waiting at that moment shares
 * the same one, at most one per `minIntervalMs`. Spawning nvidia-smi costs tens of milliseconds, so
 * its readings are never per task; an NVML reading is a few calls, so it is (`readsPerCleanup`).
 * No GPU is a normal state: the first failure that says so makes the probe `unavailable` for good.
 */
export class GpuProbe {
  state: GpuProbeState = 'unknown';
  failure: SmiFailure | undefined;
  latest: GpuSnapshot | undefined;
  readonly cost = { readings: 0, totalMs: 0, failures: 0 };
  private seq = 0;
  /** The next reading: scheduled but not started yet, so any caller may still join it. */
  private next: Promise<GpuSnapshot | undefined> | undefined;
  /** The reading executing now: too old for a caller arriving after it started. */
  private running: Promise<GpuSnapshot | undefined> | undefined;
  private lastStart = 0;
  private closed = false;

  private readonly reader: GpuReader;

  constructor(
    private readonly options: GpuProbeOptions,
    reader?: GpuReader,
  ) {
    this.reader = reader ?? new NvidiaSmiReader(options.command);
  }

  /** Which reader takes the readings (`stats.gpu.probe.kind`). */
  get kind(): GpuProbeKind {
    return this.reader.kind;
  }

  /** Readings are cheap enough (NVML) that each cleanup and each dispatch takes its own. */
  get readsPerCleanup(): boolean {
    return this.reader.kind === 'nvml';
  }

  get sampleIntervalMs(): number {
    return this.options.sampleIntervalMs ?? 0;
  }

  /** First reading: decides whether this host has a usable GPU. */
  async init(): Promise<boolean> {
    await this.fresh();
    return this.state === 'available';
  }

  get averageMs(): number {
    return this.cost.readings ? Math.round((this.cost.totalMs / this.cost.readings) * 10) / 10 : 0;
  }

  /** A reading that starts after this call, shared with every caller waiting for one. */
  fresh(): Promise<GpuSnapshot | undefined> {
    if (this.state === 'unavailable' || this.closed) return Promise.resolve(undefined);
    this.next ??= this.schedule();
    return this.next;
  }

  close(): void {
    this.closed = true;
    this.reader.close();
  }

  private async schedule(): Promise<GpuSnapshot | undefined> {
    // One reading at a time, and no more often than minIntervalMs.
    await this.running;
    const wait = this.lastStart + this.options.minIntervalMs - Date.now();
    if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait));
    this.next = undefined;
    if (this.state === 'unavailable' || this.closed) return undefined;
    this.lastStart = Date.now();
    const reading = this.read(++this.seq);
    this.running = reading;
    try {
      return await reading;
    } finally {
      if (this.running === reading) this.running = undefined;
    }
  }

  private async read(seq: number): Promise<GpuSnapshot | undefined> {
    const startedAt = Date.now();
    const started = performance.now();
    const reading = await this.reader.read(this.options.timeoutMs);
    this.cost.readings++;
    this.cost.totalMs += performance.now() - started;
    if (!reading.ok) {
      this.cost.failures++;
      this.failure = reading.failure;
      // Nothing to measure on this host (no binary, no driver, no device): the first reading says so,
      // and the probe stops trying. Once a GPU has been seen, a failed reading (slow, odd output, a
      // driver busy for a moment) is only skipped: one bad answer must not end GPU measurement.
      if (this.state === 'unknown') this.state = 'unavailable';
      return undefined;
    }
    this.state = 'available';
    this.failure = undefined;
    const snapshot: GpuSnapshot = { seq, startedAt, devices: reading.devices, processes: reading.processes };
    this.latest = snapshot;
    return snapshot;
  }
}
