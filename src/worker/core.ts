/**
 * What a worker does, whatever it runs in (a child process or a thread): load the worker module, run
 * one task, clean up, collect garbage. The two entries (runtime.ts for a process, thread-entry.ts for
 * a piscina thread) only carry these answers over their own channel.
 */
import { pathToFileURL } from 'node:url';
import type { LevelWithSilent } from 'pino';
import { workerErrorShape } from '../protocol/errors.js';
import type { FromWorker, ToWorker } from '../pool/worker-protocol.js';
import { createLogger } from '../logging/logger.js';
import type { WorkerContext, WorkerModule } from './types.js';

type GcOptions = { type: 'major' | 'minor'; execution: 'sync' };
export type Gc = (options?: GcOptions) => void;

let workerModule: WorkerModule | undefined;
let context: WorkerContext | undefined;

function isWorkerModule(value: unknown): value is WorkerModule {
  return typeof value === 'object' && value !== null && typeof (value as WorkerModule).run === 'function';
}

export async function initWorker(
  message: Extract<ToWorker, { kind: 'init' }>,
  bindings: Record<string, unknown>,
): Promise<Extract<FromWorker, { kind: 'ready' | 'setup-failed' }>> {
  const started = performance.now();
  const log = createLogger(message.logLevel as LevelWithSilent, {
    role: 'worker',
    ...bindings,
    workerId: message.workerId,
  });
  try {
    const loaded: unknown = await import(pathToFileURL(message.modulePath).href);
    if (!isWorkerModule(loaded)) {
      throw new Error(`worker module ${message.modulePath} must export a run(payload, context) function`);
    }
    workerModule = loaded;
    context = { workerId: message.workerId, config: message.config, log };
    await workerModule.setup?.(context);
    return { kind: 'ready', setupMs: performance.now() - started };
  } catch (error) {
    return { kind: 'setup-failed', error: workerErrorShape(error) };
  }
}

export async function runTask(
  taskId: string,
  payload: unknown,
): Promise<Extract<FromWorker, { kind: 'result' }>> {
  if (!workerModule || !context) {
    return {
      kind: 'result',
      taskId,
      ok: false,
      error: workerErrorShape(new Error('worker not initialised')),
    };
  }
  try {
    const value = await workerModule.run(payload, context);
    return { kind: 'result', taskId, ok: true, value };
  } catch (error) {
    return { kind: 'result', taskId, ok: false, error: workerErrorShape(error) };
  }
}

export async function cleanUp(
  force: boolean,
  gc: Gc | undefined,
): Promise<Extract<FromWorker, { kind: 'cleaned' }>> {
  const started = performance.now();
  if (workerModule && context) {
    try {
      await workerModule.cleanup?.(context, { force });
    } catch (error) {
      context.log.warn({ err: error }, 'worker cleanup hook failed');
    }
  }
  // Light cleanup collects the young generation (where a task's garbage and tensor wrappers live, ~0.1 ms);
  // forced cleanup runs a full mark-compact, which costs milliseconds once ORT is loaded.
  gc?.({ type: force ? 'major' : 'minor', execution: 'sync' });
  return { kind: 'cleaned', ms: performance.now() - started };
}
