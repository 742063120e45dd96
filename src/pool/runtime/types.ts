import type { WorkerConfig } from '../../protocol/worker-messages.js';
import type { FromWorker, ToWorker } from '../../protocol/worker-messages.js';

/** Where a worker runs: its own child process, or a worker thread inside the supervisor's process. */
export type Backend = 'process' | 'thread';

export interface RuntimeStartOptions {
  slot: number;
  modulePath: string;
  config: WorkerConfig;
  execArgv: readonly string[];
  /** The GPU this worker is pinned to (CUDA_VISIBLE_DEVICES), process backend only. */
  gpuIndex?: number | undefined;
}

export interface RuntimeExit {
  code: number | null;
  signal: NodeJS.Signals | null;
  /** V8 aborted the worker at its heap limit (process backend: read from its stderr). */
  heapLimit?: true;
}

/**
 * The runtime adapter (tinypool's idea): the one seam between a WorkerHandle's state machine and the
 * thing that runs the worker module. The handle speaks pool messages; the adapter carries them.
 */
export interface WorkerRuntime {
  readonly backend: Backend;
  /** The OS process the worker runs in: its own for a process, the supervisor's for a thread. */
  readonly pid: number;
  /** The worker thread's id (thread backend), undefined for a process. */
  readonly threadId: number | undefined;
  /**
   * Sends one message. A payload that cannot be serialized either throws at once (process, the first
   * task of a tick) or comes back as an `unsent` message (thread; process, a task batched behind the
   * first); a worker that is gone drops it (the exit listener answers).
   */
  send(message: ToWorker): void;
  onMessage(listener: (message: FromWorker) => void): void;
  offMessage(listener: (message: FromWorker) => void): void;
  onExit(listener: (exit: RuntimeExit) => void): void;
  offExit(listener: (exit: RuntimeExit) => void): void;
  /** 'term' asks it to end (after its stop message); 'kill' ends it now. */
  end(how: 'term' | 'kill'): void;
  /**
   * Resident memory to compare before and after a cleanup or recycle (MiB). For a thread this is the
   * whole process's RSS (threads share one): `memoryScope` says which.
   */
  rssMiB(): Promise<number | undefined>;
  readonly memoryScope: 'worker' | 'process';
}
