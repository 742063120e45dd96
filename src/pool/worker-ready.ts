import type { FromWorker, ToWorker } from '../protocol/worker-messages.js';
import { killedFromOutside } from '../core/admission.js';
import type { RuntimeExit, WorkerRuntime } from './runtime/types.js';

/**
 * A worker that did not become ready. `own`: by its own doing (its setup threw, it exited or crashed,
 * it took too long), which counts toward the crash-loop circuit; false when it was killed from outside.
 */
export class StartError extends Error {
  constructor(
    message: string,
    readonly own: boolean,
  ) {
    super(message);
    this.name = 'StartError';
  }
}

/** What the worker module is started with, and how long its setup may take. */
export type StartOptions = Omit<Extract<ToWorker, { kind: 'init' }>, 'kind'> & { startTimeoutMs: number };

export interface ReadyHooks {
  /** How messages name the worker ("123", "thread 4 (pid 123)"). */
  worker: string;
  /** The worker's setup finished (called before the promise resolves). */
  onReady: () => void;
  /** Setup did not finish in time: the worker must be ended (called before the promise rejects). */
  onTimeout: () => void;
}

/**
 * Sends the worker its module to load and resolves once the module reported its setup done; rejects
 * with the setup error, an exit during start, or after `startTimeoutMs`.
 */
export type ReadyMessage = Extract<FromWorker, { kind: 'ready' }>;

export function startWorker(
  runtime: WorkerRuntime,
  options: StartOptions,
  hooks: ReadyHooks,
): Promise<ReadyMessage> {
  const init: ToWorker = {
    kind: 'init',
    modulePath: options.modulePath,
    config: options.config,
    workerId: options.workerId,
    logLevel: options.logLevel,
    lightGcMinKiB: options.lightGcMinKiB,
    ...(options.rssCeilingMiB ? { rssCeilingMiB: options.rssCeilingMiB } : {}),
    ...(options.nvmlLibrary ? { nvmlLibrary: options.nvmlLibrary } : {}),
  };
  const ready = waitReady(runtime, options.startTimeoutMs, hooks);
  runtime.send(init);
  return ready;
}

/** Settles on 'ready', 'setup-failed', an exit or the timeout, whichever comes first. */
function waitReady(runtime: WorkerRuntime, timeoutMs: number, hooks: ReadyHooks): Promise<ReadyMessage> {
  return new Promise<ReadyMessage>((resolve, reject) => {
    const timer = setTimeout(() => {
      hooks.onTimeout();
      reject(new StartError(`worker ${hooks.worker} did not become ready within ${timeoutMs} ms`, true));
    }, timeoutMs);
    const onMessage = (message: FromWorker): void => {
      if (message.kind === 'ready') {
        finish();
        hooks.onReady();
        resolve(message);
      } else if (message.kind === 'setup-failed') {
        finish();
        // A process ends itself after a failed setup; a thread is ended here.
        if (runtime.backend === 'thread') runtime.end('kill');
        reject(new StartError(`worker setup failed: ${message.error.message}`, true));
      }
    };
    const onExit = ({ code, signal }: RuntimeExit): void => {
      finish();
      reject(
        new StartError(
          `worker ${hooks.worker} exited during start (code ${code}, signal ${signal})`,
          !killedFromOutside(signal),
        ),
      );
    };
    const finish = (): void => {
      clearTimeout(timer);
      runtime.offMessage(onMessage);
      runtime.offExit(onExit);
    };
    runtime.onMessage(onMessage);
    runtime.onExit(onExit);
  });
}
