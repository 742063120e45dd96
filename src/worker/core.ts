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
import type { SessionStart, StartStep, WorkerStartPhases } from '../protocol/start-phases.js';
import { startMarks } from './start-clock.js';
import { ownRssReader } from '../probes/own-rss.js';
import { trimNativeHeap } from './native-heap.js';
import { openOwnGpu, type OwnGpu } from './own-gpu.js';

type GcOptions = { type: 'major' | 'minor'; execution: 'sync' };
export type Gc = (options?: GcOptions) => void;

/** This process's RSS in bytes (a thread reads the whole process's: its memory scope is the process). */
const ownRss = ownRssReader();
let workerModule: WorkerModule | undefined;
let context: WorkerContext | undefined;
let lightGcMinBytes = 0;
/**
 * Set when the parent reads GPU memory through NVML: this worker then reads its own around cleanups.
 * Opened once the worker is ready (koffi's load and nvmlInit cost no start), awaited by the first
 * measured cleanup.
 */
let ownGpu: Promise<OwnGpu | undefined> | undefined;
/** V8 heap plus external (ArrayBuffer) memory after the last collection: what a task's garbage adds to. */
let heldAfterGc = 0;
/** Tasks run since the last cleanup: what the next one covers (cleanup.everyTasks). */
let tasksSinceCleanup = 0;
/** The session list last reported to the parent (joined), so an unchanged list is not sent again. */
let reportedSessions: string | undefined;

/**
 * The models whose session the module holds, when that changed since the last report: the parent
 * keeps the last list it heard (which workers an admin `clear-cache { model }` concerns).
 */
function sessionsReport(): { sessions?: string[] } {
  if (!workerModule?.heldSessions || !context) return {};
  let sessions: string[];
  try {
    sessions = [...workerModule.heldSessions(context)].sort();
  } catch {
    return {};
  }
  const key = sessions.join('\n');
  if (key === reportedSessions) return {};
  reportedSessions = key;
  return { sessions };
}

/** Tasks run since the last cleanup (a cleanup owed after a skipped task runs only when some did). */
export function tasksSinceLastCleanup(): number {
  return tasksSinceCleanup;
}

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
  const log = lazyLogger(message.logLevel as LevelWithSilent, {
    role: 'worker',
    ...bindings,
    workerId: message.workerId,
  });
  const phases: WorkerStartPhases = {};
  const { firstLine, runtimeLoaded } = startMarks;
  // Process backend only: a thread has no boot of its own (its entry never marks).
  if (firstLine !== undefined && runtimeLoaded !== undefined) {
    phases.bootMs = firstLine;
    phases.runtimeMs = runtimeLoaded - firstLine;
    phases.initMs = started - runtimeLoaded;
  }
  let setupDone = false;
  const sessions: SessionStart[] = [];
  const steps: StartStep[] = [];
  try {
    const loaded: unknown = await import(pathToFileURL(message.modulePath).href);
    const imported = performance.now();
    phases.moduleMs = imported - started;
    if (!isWorkerModule(loaded)) {
      throw new Error(`worker module ${message.modulePath} must export a run(payload, context) function`);
    }
    workerModule = loaded;
    context = {
      workerId: message.workerId,
      config: message.config,
      log,
      start: {
        binding: (ms) => {
          if (!setupDone) phases.bindingMs = (phases.bindingMs ?? 0) + ms;
        },
        session: (start) => {
          if (!setupDone) sessions.push({ ...start });
        },
        step: (name, ms) => {
          if (!setupDone) steps.push({ name, ms });
        },
      },
    };
    await workerModule.setup?.(context);
    setupDone = true;
    const ready = performance.now();
    phases.setupMs = ready - imported;
    if (sessions.length > 0) phases.sessions = sessions;
    if (steps.length > 0) phases.steps = steps;
    if (phases.bootMs !== undefined) {
      // A process's own CPU since it started (a thread would read the whole supervisor's).
      const cpu = process.cpuUsage();
      phases.cpuMs = (cpu.user + cpu.system) / 1000;
    }
    const library = message.nvmlLibrary;
    if (library) ownGpu = new Promise((open) => setImmediate(() => open(openOwnGpu(library))));
    return { kind: 'ready', setupMs: ready - started, phases, ...sessionsReport() };
  } catch (error) {
    setupDone = true;
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
  tasksSinceCleanup++;
  try {
    const value = await workerModule.run(payload, context);
    return { kind: 'result', taskId, ok: true, value, ...sessionsReport() };
  } catch (error) {
    return { kind: 'result', taskId, ok: false, error: workerErrorShape(error), ...sessionsReport() };
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
  const gpu = measure ? await ownGpu : undefined;
  const gpuBefore = gpu?.readMiB();
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
  const tasks = tasksSinceCleanup > 0 ? { tasks: tasksSinceCleanup } : {};
  tasksSinceCleanup = 0;
  if (!measure) return { kind: 'cleaned', ms, ...tasks, ...sessionsReport() };
  const rssAfter = ownRss();
  const gpuAfter = gpuBefore === undefined ? undefined : gpu?.readMiB();
  return {
    kind: 'cleaned',
    ms,
    rssBeforeMiB: toMiB(rssBefore),
    rssAfterMiB: toMiB(rssAfter),
    ...(gpuBefore !== undefined && gpuAfter !== undefined
      ? { gpuBeforeMiB: gpuBefore, gpuAfterMiB: gpuAfter }
      : {}),
    ...tasks,
    ...sessionsReport(),
  };
}

/**
 * Releases one model's session in place (the module's `releaseSession` hook) and runs a full
 * collection, so what the session's JS side held goes too; RSS before and after when measured.
 * `held` says whether the module had that session (absent when it cannot tell).
 */
export async function releaseSession(
  message: Extract<ToWorker, { kind: 'release' }>,
  gc: Gc | undefined,
): Promise<Extract<FromWorker, { kind: 'released' }>> {
  const rssBefore = message.measure ? ownRss() : 0;
  const started = performance.now();
  let held: boolean | undefined;
  if (workerModule && context) {
    try {
      const sessions = workerModule.heldSessions?.(context);
      if (sessions) held = [...sessions].includes(message.model);
      await workerModule.releaseSession?.(message.model, context);
    } catch (error) {
      context.log.warn({ err: error, model: message.model }, 'worker releaseSession hook failed');
    }
  }
  gc?.({ type: 'major', execution: 'sync' });
  heldAfterGc = heldBytes();
  // What the session freed went back to malloc, not to the kernel: trim, or RSS would not move.
  await trimNativeHeap();
  const answer: Extract<FromWorker, { kind: 'released' }> = {
    kind: 'released',
    id: message.id,
    model: message.model,
    ms: performance.now() - started,
    ...(held === undefined ? {} : { held }),
    ...sessionsReport(),
  };
  if (message.measure) {
    answer.rssBeforeMiB = toMiB(rssBefore);
    answer.rssAfterMiB = toMiB(ownRss());
  }
  return answer;
}
