import { execa } from 'execa';
import {
  APPS_QUERY_ARGS,
  GPU_QUERY_ARGS,
  classifySmiFailure,
  parseComputeAppsCsv,
  parseGpuCsv,
} from './nvidia-smi-parse.js';
import type { GpuReader, GpuReading } from './gpu-reader.js';

/** What one nvidia-smi call gave. */
interface SmiRun {
  failed: boolean;
  exitCode: number | undefined;
  stdout: string;
  stderr: string;
  code: string | undefined;
  timedOut: boolean;
}

/** How long past its timeout a killed call may take to hand back its output before it is left. */
const LEFT_AFTER_MS = 200;

/**
 * One call, over within `timeoutMs` (and a little): execa kills the command at its timeout but then
 * waits for its output pipes to close, which a process it started (or one stuck in the driver) may
 * hold open for good. Such a call is left behind, its pipes closed, and reported as timed out.
 */
async function bounded(command: string, args: readonly string[], timeoutMs: number): Promise<SmiRun> {
  const child = execa(command, [...args], { timeout: timeoutMs, reject: false, stdin: 'ignore' });
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<undefined>((resolve) => {
    timer = setTimeout(() => resolve(undefined), timeoutMs + LEFT_AFTER_MS);
  });
  const result = await Promise.race([child, late]);
  clearTimeout(timer);
  if (result === undefined) {
    child.kill('SIGKILL');
    child.stdout?.destroy();
    child.stderr?.destroy();
    return { failed: true, exitCode: undefined, stdout: '', stderr: '', code: 'ETIMEDOUT', timedOut: true };
  }
  return {
    failed: result.failed,
    exitCode: result.exitCode,
    stdout: String(result.stdout ?? ''),
    stderr: String(result.stderr ?? ''),
    code: result.code,
    timedOut: result.timedOut,
  };
}

/** Readings from nvidia-smi: two CSV queries per reading, each a process spawn (tens of ms). */
export class NvidiaSmiReader implements GpuReader {
  readonly kind = 'nvidia-smi';

  constructor(private readonly command: string) {}

  async read(timeoutMs: number): Promise<GpuReading> {
    const run = (args: readonly string[]) => bounded(this.command, args, timeoutMs);
    const [gpus, apps] = await Promise.all([run(GPU_QUERY_ARGS), run(APPS_QUERY_ARGS)]);
    const failed = [gpus, apps].find((r) => r.failed);
    if (failed) {
      const failure = classifySmiFailure({
        exitCode: failed.exitCode,
        stdout: failed.stdout,
        stderr: failed.stderr,
        errorCode: failed.code,
        timedOut: failed.timedOut,
      });
      return { ok: false, failure };
    }
    const devices = parseGpuCsv(gpus.stdout).items;
    if (devices.length === 0) {
      return { ok: false, failure: { kind: 'no-devices', message: 'nvidia-smi listed no GPU' } };
    }
    return { ok: true, devices, processes: parseComputeAppsCsv(apps.stdout).items };
  }

  close(): void {
    // Nothing held between readings: each one is its own process.
  }
}
