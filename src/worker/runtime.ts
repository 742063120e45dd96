/**
 * The program every worker process runs: loads the worker module, answers tasks one at a time,
 * cleans up when the pool asks, and exits when its supervisor goes away (a worker must never outlive
 * it: an orphan would hold its GPU memory forever).
 */
import { Worker } from 'node:worker_threads';
import type { FromWorker, ToWorker } from '../pool/worker-protocol.js';
import { cleanUp, initWorker, runTask, type Gc } from './core.js';

// The pool forks workers with --expose-gc.
const runGc = (globalThis as { gc?: Gc }).gc;

function send(message: FromWorker): void {
  // A closed channel means the supervisor is gone; the 'disconnect' handler exits.
  if (process.connected) process.send?.(message);
}

async function init(message: Extract<ToWorker, { kind: 'init' }>): Promise<void> {
  const answer = await initWorker(message, { pid: process.pid });
  send(answer);
  if (answer.kind === 'setup-failed') {
    process.exitCode = 1;
    process.disconnect?.();
  }
}

async function stop(): Promise<void> {
  await cleanUp(true, runGc).catch(() => undefined);
  process.disconnect?.();
  process.exit(0);
}

async function handle(message: ToWorker): Promise<void> {
  switch (message.kind) {
    case 'init':
      return init(message);
    case 'run': {
      send(await runTask(message.taskId, message.payload));
      // The answer is out; clean up now rather than wait for the pool to ask.
      const { cleanup } = message;
      if (cleanup) send(await cleanUp(cleanup.force, runGc, cleanup.measure));
      return;
    }
    case 'cleanup':
      return void send(await cleanUp(message.force, runGc, message.measure));
    case 'stop':
      return stop();
  }
}

// One message at a time, in order: a task never starts while the previous one's cleanup still runs.
let inbox = Promise.resolve();
process.on('message', (message: ToWorker) => {
  inbox = inbox.then(() => handle(message)).catch(() => undefined);
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
