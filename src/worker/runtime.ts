/**
 * The program every worker process runs: loads the worker module, answers tasks one at a time,
 * cleans up when the pool asks, and exits when its supervisor goes away (a worker must never outlive
 * it: an orphan would hold its GPU memory forever).
 */
import { pathToFileURL } from 'node:url';
import { Worker } from 'node:worker_threads';
import { workerErrorShape } from '../protocol/errors.js';
import type { FromWorker, ToWorker } from '../pool/worker-protocol.js';
import { createLogger } from '../logging/logger.js';
import type { WorkerContext, WorkerModule } from './types.js';
import type { LevelWithSilent } from 'pino';

type GcOptions = { type: 'major' | 'minor'; execution: 'sync' };
const runGc: ((options?: GcOptions) => void) | undefined = (
  globalThis as { gc?: (options?: GcOptions) => void }
).gc;

let workerModule: WorkerModule | undefined;
let context: WorkerContext | undefined;

function send(message: FromWorker): void {
  // A closed channel means the supervisor is gone; the 'disconnect' handler exits.
  if (process.connected) process.send?.(message);
}

function isWorkerModule(value: unknown): value is WorkerModule {
  return typeof value === 'object' && value !== null && typeof (value as WorkerModule).run === 'function';
}

async function init(message: Extract<ToWorker, { kind: 'init' }>): Promise<void> {
  const started = performance.now();
  const log = createLogger(message.logLevel as LevelWithSilent, {
    role: 'worker',
    pid: process.pid,
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
    send({ kind: 'ready', setupMs: performance.now() - started });
  } catch (error) {
    send({ kind: 'setup-failed', error: workerErrorShape(error) });
    process.exitCode = 1;
    process.disconnect?.();
  }
}

async function run(taskId: string, payload: unknown): Promise<void> {
  if (!workerModule || !context) return;
  try {
    const value = await workerModule.run(payload, context);
    send({ kind: 'result', taskId, ok: true, value });
  } catch (error) {
    send({ kind: 'result', taskId, ok: false, error: workerErrorShape(error) });
  }
}

async function cleanup(force: boolean): Promise<void> {
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
  runGc?.({ type: force ? 'major' : 'minor', execution: 'sync' });
  send({ kind: 'cleaned', ms: performance.now() - started });
}

async function stop(): Promise<void> {
  await cleanup(true).catch(() => undefined);
  process.disconnect?.();
  process.exit(0);
}

process.on('message', (message: ToWorker) => {
  switch (message.kind) {
    case 'init':
      void init(message);
      break;
    case 'run':
      void run(message.taskId, message.payload);
      break;
    case 'cleanup':
      void cleanup(message.force);
      break;
    case 'stop':
      void stop();
      break;
  }
});

// A task blocked in native code (ORT's run) keeps this event loop from seeing the supervisor go away.
// A watchdog thread checks the parent pid on its own loop and ends the process if it was re-parented:
// an orphan would hold its GPU memory until someone noticed.
const watchdog = new Worker(
  `const { workerData } = require('node:worker_threads');
   setInterval(() => { if (process.ppid !== workerData.ppid) process.kill(workerData.pid, 'SIGKILL'); }, 500);`,
  { eval: true, workerData: { ppid: process.ppid, pid: process.pid } },
);
watchdog.unref();

// The supervisor died or closed the channel: leave now, so the driver reclaims our memory.
process.on('disconnect', () => process.exit(process.exitCode ?? 0));
// SIGTERM from the pool: same as a stop message (graceful, already cleaned up by the OS on exit).
process.on('SIGTERM', () => process.exit(0));
// A supervisor started from a terminal forwards Ctrl-C itself; workers must not die first.
process.on('SIGINT', () => undefined);
