import { Worker } from 'node:worker_threads';
import type { GpuFailure, GpuReader, GpuReading } from './gpu-reader.js';
import type { NvmlReply, NvmlRequest, NvmlThreadData } from './nvml-messages.js';

const THREAD = new URL('./nvml-thread.js', import.meta.url);
/**
 * The first reading also starts the thread, loads koffi and the library and runs nvmlInit (seconds on
 * a large machine): it gets at least this long, whatever gpuProbe.timeoutMs says about later ones.
 */
const FIRST_READING_MS = 5_000;

interface Pending {
  id: number;
  since: number;
  settle: (reading: GpuReading) => void;
}

/**
 * Readings through NVML, taken in a worker thread of their own (nvml-thread.ts). NVML calls are
 * synchronous and a driver can block in one (a GPU falling off the bus, a driver reload): on the main
 * thread that would stall every worker's IPC. Here a reading that does not answer within `timeoutMs`
 * is reported as a timeout and the thread is left to finish its call; until it does, each reading
 * answers at once with a timeout too, so at most one NVML call is ever outstanding and nothing queues
 * behind a hung driver. The thread is unref'ed: a hung call never keeps the process alive.
 */
export class NvmlReader implements GpuReader {
  readonly kind = 'nvml';
  /** Time spent inside NVML calls (in the thread), against the round trip the probe measures. */
  readonly nvml = { readings: 0, totalMs: 0 };
  private thread: Worker | undefined;
  private pending: Pending | undefined;
  private broken: GpuFailure | undefined;
  private nextId = 0;

  constructor(private readonly library: string) {}

  read(timeoutMs: number): Promise<GpuReading> {
    if (this.broken) return Promise.resolve({ ok: false, failure: this.broken });
    const thread = (this.thread ??= this.start());
    if (this.pending) {
      const ms = Math.round(performance.now() - this.pending.since);
      const message = `an NVML call has not returned for ${ms} ms (driver busy or hung?)`;
      return Promise.resolve({ ok: false, failure: { kind: 'timeout', message } });
    }
    const id = ++this.nextId;
    const bound = id === 1 ? Math.max(timeoutMs, FIRST_READING_MS) : timeoutMs;
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        const message = `NVML did not answer within ${bound} ms (driver busy or hung?)`;
        resolve({ ok: false, failure: { kind: 'timeout', message } });
      }, bound);
      this.pending = {
        id,
        since: performance.now(),
        settle: (reading) => {
          clearTimeout(timer);
          resolve(reading);
        },
      };
      thread.postMessage({ kind: 'read', id } satisfies NvmlRequest);
    });
  }

  close(): void {
    const thread = this.thread;
    this.broken ??= { kind: 'failed', message: 'the NVML reader is closed' };
    if (!thread) return;
    // nvmlShutdown, then the thread ends; a thread stuck in a call is simply left (it is unref'ed).
    thread.postMessage({ kind: 'close' } satisfies NvmlRequest);
    this.finish({ ok: false, failure: this.broken });
  }

  private start(): Worker {
    const data: NvmlThreadData = { library: this.library };
    // execArgv []: the thread runs built JS and needs none of the parent's loaders (a test runner's
    // --import tsx would add a tenth of a second to every start on a host without NVML).
    const thread = new Worker(THREAD, { workerData: data, execArgv: [], stdout: false, stderr: false });
    thread.unref();
    thread.on('message', (reply: NvmlReply) => {
      // A late answer (its reading already reported as a timeout) only frees the way for the next.
      if (reply.id !== this.pending?.id) return;
      if (reply.kind === 'failed') return this.finish({ ok: false, failure: reply.failure });
      this.nvml.readings++;
      this.nvml.totalMs += reply.nvmlMs;
      const reading: GpuReading =
        reply.devices.length === 0
          ? { ok: false, failure: { kind: 'no-devices', message: 'NVML found no NVIDIA devices' } }
          : { ok: true, devices: reply.devices, processes: reply.processes };
      this.finish(reading);
    });
    // The thread could not start (koffi missing for this platform, say) or died: NVML is not usable.
    thread.on('error', (error) => {
      this.broken ??= { kind: 'not-installed', message: `the NVML thread failed: ${error.message}` };
      this.finish({ ok: false, failure: this.broken });
    });
    thread.on('exit', (code) => {
      this.broken ??= { kind: 'failed', message: `the NVML thread exited (code ${code})` };
      this.finish({ ok: false, failure: this.broken });
    });
    return thread;
  }

  private finish(reading: GpuReading): void {
    const pending = this.pending;
    this.pending = undefined;
    pending?.settle(reading);
  }
}
