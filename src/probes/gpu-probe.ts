import { execa } from 'execa';
import {
  APPS_QUERY_ARGS,
  GPU_QUERY_ARGS,
  classifySmiFailure,
  parseComputeAppsCsv,
  parseGpuCsv,
  type GpuDevice,
  type GpuProcess,
  type SmiFailure,
} from './nvidia-smi-parse.js';

export interface GpuSnapshot {
  /** Increases by one per reading: "a reading started after X" is a comparison of seq numbers. */
  seq: number;
  startedAt: number;
  devices: GpuDevice[];
  processes: GpuProcess[];
}

export interface GpuProbeOptions {
  command: string;
  timeoutMs: number;
  /** Readings are coalesced: at most one nvidia-smi run (two queries) per this interval. */
  minIntervalMs: number;
}

export type GpuProbeState = 'unknown' | 'available' | 'unavailable';

/**
 * Runs nvidia-smi (through execa) and keeps its latest reading. Spawning nvidia-smi costs tens of
 * milliseconds, so readings are never per task: callers ask for "a reading that started after now",
 * and every caller waiting at that moment shares the same one, at most one per `minIntervalMs`.
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

  constructor(private readonly options: GpuProbeOptions) {}

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
  }

  private async schedule(): Promise<GpuSnapshot | undefined> {
    // One nvidia-smi at a time, and no more often than minIntervalMs.
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
    const run = (args: readonly string[]) =>
      execa(this.options.command, [...args], {
        timeout: this.options.timeoutMs,
        reject: false,
        stdin: 'ignore',
      });
    const [gpus, apps] = await Promise.all([run(GPU_QUERY_ARGS), run(APPS_QUERY_ARGS)]);
    this.cost.readings++;
    this.cost.totalMs += performance.now() - started;
    const failed = [gpus, apps].find((r) => r.failed);
    if (failed) {
      this.cost.failures++;
      this.failure = classifySmiFailure({
        exitCode: failed.exitCode,
        stdout: String(failed.stdout ?? ''),
        stderr: String(failed.stderr ?? ''),
        errorCode: failed.code,
        timedOut: failed.timedOut,
      });
      // Nothing to measure on this host (no binary, no driver, no device), or nothing that worked at
      // start: stop trying. Once a GPU has been seen, a slow or odd reading is only skipped.
      const transient = this.failure.kind === 'timeout' || this.failure.kind === 'failed';
      if (this.state === 'unknown' || !transient) this.state = 'unavailable';
      return undefined;
    }
    const devices = parseGpuCsv(String(gpus.stdout)).items;
    if (devices.length === 0) {
      this.failure = { kind: 'no-devices', message: 'nvidia-smi listed no GPU' };
      this.state = 'unavailable';
      return undefined;
    }
    this.state = 'available';
    this.failure = undefined;
    const snapshot: GpuSnapshot = {
      seq,
      startedAt,
      devices,
      processes: parseComputeAppsCsv(String(apps.stdout)).items,
    };
    this.latest = snapshot;
    return snapshot;
  }
}
