import { fork, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { readRssMiB } from '../../probes/process-memory.js';
import type { FromWorker, ToWorker } from '../../protocol/worker-messages.js';
import type { RuntimeExit, RuntimeStartOptions, WorkerRuntime } from './types.js';

/** A tiny entry that notes its first line and then loads worker/runtime.js (start phases). */
const RUNTIME_PATH = fileURLToPath(new URL('../../worker/process-entry.js', import.meta.url));
/** What V8 prints on stderr when it aborts at the heap limit (--max-old-space-size). */
const HEAP_OOM = /Reached heap limit|JavaScript heap out of memory/;
const STDERR_TAIL_CHARS = 8192;
/** How long an abort waits for the rest of its stderr, which can arrive after 'exit'. */
const STDERR_DRAIN_MS = 500;

/**
 * What a worker process inherits: the supervisor's environment without its admin token (a worker
 * module is not the operator), and its GPU when it is pinned to one.
 */
function workerEnv(gpuIndex: number | undefined): NodeJS.ProcessEnv {
  const { GPU_SUPERVISOR_ADMIN_TOKEN: _token, ...env } = process.env;
  // One GPU per worker: inside the worker it is device 0, which is what the ORT CUDA provider uses.
  return gpuIndex === undefined ? env : { ...env, CUDA_VISIBLE_DEVICES: String(gpuIndex) };
}

/** A worker in its own child process: the only backend whose exit gives GPU memory back to the driver. */
export class ProcessRuntime implements WorkerRuntime {
  readonly backend = 'process' as const;
  readonly memoryScope = 'worker' as const;
  readonly threadId = undefined;
  readonly pid: number;

  /** The end of the worker's stderr (forwarded to ours as it comes): tells a heap-limit abort apart. */
  private stderrTail = '';
  private readonly stderrClosed: Promise<void>;

  private constructor(private readonly child: ChildProcess) {
    this.pid = child.pid!;
    // An IPC write to a dying child fails asynchronously; the 'exit' listener answers for it.
    child.on('error', () => undefined);
    const stderr = child.stderr;
    this.stderrClosed = stderr
      ? new Promise((resolve) => stderr.once('close', () => resolve()))
      : Promise.resolve();
    stderr?.on('data', (chunk: Buffer) => {
      process.stderr.write(chunk);
      this.stderrTail = (this.stderrTail + chunk.toString()).slice(-STDERR_TAIL_CHARS);
    });
  }

  static async start(options: RuntimeStartOptions): Promise<ProcessRuntime> {
    const child = fork(RUNTIME_PATH, [], {
      serialization: 'advanced',
      execArgv: ['--expose-gc', ...options.execArgv],
      // stderr is piped (and forwarded) so that a heap-limit abort can be told from other deaths.
      stdio: ['ignore', 'inherit', 'pipe', 'ipc'],
      env: workerEnv(options.gpuIndex),
    });
    if (child.pid === undefined) {
      // fork failed (EMFILE, EAGAIN...): the error arrives as an event; turn it into a rejection.
      const error = await new Promise<Error>((resolve) => child.once('error', resolve));
      throw new Error(`cannot fork a worker: ${error.message}`);
    }
    return new ProcessRuntime(child);
  }

  /** 'run' messages given after the first of this tick, sent together at its end (see `send`). */
  private batch: Array<Extract<ToWorker, { kind: 'run' }>> = [];
  /** A 'run' was written in this tick: the next ones wait for its end. */
  private tickOpen = false;
  private readonly listeners: Array<(message: FromWorker) => void> = [];

  /**
   * The first task of a tick is written at once: it leaves before the pool's verdict and bookkeeping
   * that follow the dispatch, and a lone task waits for nothing. Those given to this worker later in
   * the same tick (several, under load, with tasks sent ahead) go out as one message at its end: each
   * IPC write wakes the worker, and the writes were the supervisor's largest cost. Any other message
   * first sends the pending tasks, so order is kept.
   *
   * Throws when the first task cannot be serialized (the caller reports it unsent, as a thread's
   * postMessage would); a batched one is reported through the message listeners.
   */
  send(message: ToWorker): void {
    if (message.kind === 'run') {
      if (this.tickOpen) {
        this.batch.push(message);
        return;
      }
      // A task that cannot be serialized throws here, before the tick is marked as written to.
      if (this.child.connected) this.child.send(message);
      this.tickOpen = true;
      queueMicrotask(() => {
        this.tickOpen = false;
        this.flush();
      });
      return;
    }
    this.flush();
    if (this.child.connected) this.child.send(message);
  }

  private flush(): void {
    const runs = this.batch;
    if (runs.length === 0) return;
    this.batch = [];
    if (!this.child.connected) return; // gone: the exit listener answers for these tasks
    try {
      this.child.send(runs.length === 1 ? runs[0]! : { kind: 'batch', runs });
    } catch (error) {
      if (runs.length === 1) return this.unsent(runs[0]!, error);
      // One payload could not be serialized: send the others alone, and report that one once all
      // are written (a listener may send more at once, and must not overtake those still here).
      const failed: Array<[Extract<ToWorker, { kind: 'run' }>, unknown]> = [];
      for (const run of runs) {
        try {
          this.child.send(run);
        } catch (failure) {
          failed.push([run, failure]);
        }
      }
      for (const [run, failure] of failed) this.unsent(run, failure);
    }
  }

  private unsent(run: Extract<ToWorker, { kind: 'run' }>, error: unknown): void {
    const unsent: FromWorker = { kind: 'unsent', taskId: run.taskId, message: (error as Error).message };
    for (const listener of [...this.listeners]) listener(unsent);
  }

  onMessage(listener: (message: FromWorker) => void): void {
    this.listeners.push(listener);
    this.child.on('message', listener);
  }

  offMessage(listener: (message: FromWorker) => void): void {
    const index = this.listeners.indexOf(listener);
    if (index >= 0) this.listeners.splice(index, 1);
    this.child.off('message', listener);
  }

  private readonly exitListeners = new Map<(exit: RuntimeExit) => void, (...args: unknown[]) => void>();

  onExit(listener: (exit: RuntimeExit) => void): void {
    const wrapped = (code: unknown, signal: unknown): void => {
      let reported = false;
      const report = (): void => {
        if (reported) return;
        reported = true;
        const heapLimit = HEAP_OOM.test(this.stderrTail) ? { heapLimit: true as const } : {};
        listener({ code: code as number | null, signal: signal as NodeJS.Signals | null, ...heapLimit });
      };
      // V8's heap-limit abort (SIGABRT) prints its reason on stderr, which may still be in the pipe.
      if (signal !== 'SIGABRT' && code !== 134) return report();
      setTimeout(report, STDERR_DRAIN_MS).unref();
      void this.stderrClosed.then(report);
    };
    this.exitListeners.set(listener, wrapped);
    this.child.once('exit', wrapped);
  }

  offExit(listener: (exit: RuntimeExit) => void): void {
    const wrapped = this.exitListeners.get(listener);
    if (wrapped) this.child.off('exit', wrapped);
    this.exitListeners.delete(listener);
  }

  end(how: 'term' | 'kill'): void {
    if (this.child.exitCode === null && this.child.signalCode === null)
      this.child.kill(how === 'kill' ? 'SIGKILL' : 'SIGTERM');
  }

  rssMiB(): Promise<number | undefined> {
    return readRssMiB(this.pid);
  }
}
