import { execa } from 'execa';
import {
  APPS_QUERY_ARGS,
  GPU_QUERY_ARGS,
  classifySmiFailure,
  parseComputeAppsCsv,
  parseGpuCsv,
} from './nvidia-smi-parse.js';
import type { GpuReader, GpuReading } from './gpu-reader.js';

/** Readings from nvidia-smi: two CSV queries per reading, each a process spawn (tens of ms). */
export class NvidiaSmiReader implements GpuReader {
  readonly kind = 'nvidia-smi';

  constructor(private readonly command: string) {}

  async read(timeoutMs: number): Promise<GpuReading> {
    const run = (args: readonly string[]) =>
      execa(this.command, [...args], { timeout: timeoutMs, reject: false, stdin: 'ignore' });
    const [gpus, apps] = await Promise.all([run(GPU_QUERY_ARGS), run(APPS_QUERY_ARGS)]);
    const failed = [gpus, apps].find((r) => r.failed);
    if (failed) {
      const failure = classifySmiFailure({
        exitCode: failed.exitCode,
        stdout: String(failed.stdout ?? ''),
        stderr: String(failed.stderr ?? ''),
        errorCode: failed.code,
        timedOut: failed.timedOut,
      });
      return { ok: false, failure };
    }
    const devices = parseGpuCsv(String(gpus.stdout)).items;
    if (devices.length === 0) {
      return { ok: false, failure: { kind: 'no-devices', message: 'nvidia-smi listed no GPU' } };
    }
    return { ok: true, devices, processes: parseComputeAppsCsv(String(apps.stdout)).items };
  }

  close(): void {
    // Nothing held between readings: each one is its own process.
  }
}
