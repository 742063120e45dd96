/**
 * What a worker does, whatever it runs in (a child process or a thread): load the worker module, run
 * one task, clean up, collect garbage. The two entries (runtime.ts for a process, thread-entry.ts for
 * a piscina thread) only carry these answers over their own channel.
 */
import { pathToFileURL } from 'node:url';
import { getHeapStatistics } from 'node:v8';
import type { LevelWithSilent } from 'pino';
import { workerErrorShape } from '../protocol/errors.js';
import type { FromWorker, ToWorker } from '../protocol/worker-messages.js';
import { lazyLogger } from '../logging/logger.js';
import type { WorkerContext, WorkerModule } from './types.js';
import { ownRssReader } from '../probes/own-rss.js';
import { openOwnGpu, type OwnGpu } from './own-gpu.js';

type GcOptions = { type: 'major' | 'minor'; execution: 'sync' };
export type Gc = (options?: GcOptions) => void;

/** This process's RSS in bytes (a thread reads the whole process's: its memory scope is the process). */
const ownRss = ownRssReader();
let workerModule: WorkerModule | undefined;
let context: WorkerContext | undefined;
let lightGcMinBytes = 0;
/** Set when the parent reads GPU memory through NVML: this worker then reads its own around cleanups. */
let ownGpu: OwnGpu | undefined;
/** V8 heap plus external (ArrayBuffer) memory after the last collection: what a task's garbage adds to. */
let heldAfterGc = 0;

function heldBytes(): number {
  const heap = getHeapStatistics();
  return heap.used_heap_size + heap.external_memory;
}

function isWorkerModule(value: unknown): value is WorkerModule {
  return typeof value === 'object' && value !== null && typeof (value as WorkerModule).run === 'function';
}

export async function initWorker(
  message: Extract<ToWorker, { kind: 'init' }>,
  bindings: Record<string, unknown>,
): Promise<Extract<FromWorker, { kind: 'ready' | 'setup-failed' }>> {
  const started = performance.now();
  lightGcMinBytes = message.lightGcMinKiB * 1024;
  if (message.nvmlLibrary) ownGpu = await openOwnGpu(message.nvmlLibrary);
  const log = lazyLogger(message.logLevel as LevelWithSilent, {
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

const MIB = 1024 * 1024;
const toMiB = (bytes: number): number => Math.round((bytes / MIB) * 10) / 10;

/**
 * Runs the module's cleanup hook and a collection. With `measure`, reads this process's RSS before and
 * after: the same kernel counter the parent would read from /proc, without two /proc round trips and
 * an IPC round trip per task (a thread reads the whole process's RSS: its memory scope is the process).
 */
export async function cleanUp(
  force: boolean,
  gc: Gc | undefined,
  measure = false,
): Promise<Extract<FromWorker, { kind: 'cleaned' }>> {
  const rssBefore = measure ? ownRss() : 0;
  const gpuBefore = measure ? ownGpu?.readMiB() : undefined;
  const started = performance.now();
  if (workerModule && context) {
    try {
      await workerModule.cleanup?.(context, { force });
    } catch (error) {
      context.log.warn({ err: error }, 'worker cleanup hook failed');
    }
  }
  // Light cleanup collects the young generation (where a task's garbage and tensor wrappers live), but
  // only when the task left enough to matter: a scavenge costs ~0.3-0.5 ms, more than a small task, and
  // V8 scavenges a full nursery by itself anyway. Forced cleanup always runs a full mark-compact.
  const held = heldBytes();
  if (force || held - heldAfterGc >= lightGcMinBytes) {
    gc?.({ type: force ? 'major' : 'minor', execution: 'sync' });
    heldAfterGc = heldBytes();
  } else {
    // V8 may have collected on its own since: measure growth from the lowest point seen.
    heldAfterGc = Math.min(heldAfterGc, held);
  }
  const ms = performance.now() - started;
  if (!measure) return { kind: 'cleaned', ms };
  const rssAfter = ownRss();
  const gpuAfter = gpuBefore === undefined ? undefined : ownGpu?.readMiB();
  return {
    kind: 'cleaned',
    ms,
    rssBeforeMiB: toMiB(rssBefore),
    rssAfterMiB: toMiB(rssAfter),
    ...(gpuBefore !== undefined && gpuAfter !== undefined
      ? { gpuBeforeMiB: gpuBefore, gpuAfterMiB: gpuAfter }
      : {}),
  };
}
