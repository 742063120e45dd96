/**
 * The piscina task function of the thread backend. One piscina (maxThreads 1) per pool slot, so every
 * call lands in the same thread and the worker module's state (sessions) lives across tasks, exactly
 * as in a worker process. Each call carries one pool message and returns the worker's answer.
 */
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { threadId } from 'node:worker_threads';
import { move } from 'piscina';
import type { FromWorker, ToWorker } from '../protocol/worker-messages.js';
import { cleanUp, initWorker, releaseSession, runTask, type Gc } from './core.js';

// Worker threads refuse --expose-gc in execArgv ("invalid execArgv flags"); the V8 flag set at run time
// works, and a fresh context then exposes `gc`. It is per process, but the collection runs on the
// calling thread's own isolate: only this thread's heap.
setFlagsFromString('--expose-gc');
const runGc = runInNewContext('gc') as Gc;

const TRANSFERABLE = Symbol.for('Piscina.transferable');
const VALUE = Symbol.for('Piscina.valueOf');

/**
 * ArrayBuffers of the typed arrays in a task's value (tensor data), to move rather than copy. Only a
 * buffer a view covers whole: moving a shared pool (small Buffers) would take memory that is not ours.
 */
function transferables(value: unknown, found: ArrayBuffer[] = [], depth = 0): ArrayBuffer[] {
  if (depth > 6 || typeof value !== 'object' || value === null) return found;
  if (ArrayBuffer.isView(value)) {
    const buffer = value.buffer;
    if (buffer instanceof ArrayBuffer && buffer.byteLength === value.byteLength && !found.includes(buffer))
      found.push(buffer);
    return found;
  }
  for (const item of Array.isArray(value) ? value : Object.values(value))
    transferables(item, found, depth + 1);
  return found;
}

export default async function handle(message: ToWorker): Promise<FromWorker | object | undefined> {
  switch (message.kind) {
    case 'init':
      return initWorker(message, { pid: process.pid, threadId });
    case 'run': {
      const answer = await runTask(message.taskId, message.payload);
      const buffers = answer.ok ? transferables(answer.value) : [];
      if (buffers.length === 0) return answer;
      const movable = { [TRANSFERABLE]: buffers, [VALUE]: answer };
      return move(movable as unknown as Parameters<typeof move>[0]);
    }
    case 'cleanup':
      return cleanUp(message.force, runGc, message.measure);
    case 'release':
      return releaseSession(message, runGc);
    case 'skip':
    case 'batch':
      return undefined; // never sent to a thread: it holds one task at a time
    case 'stop':
      await cleanUp(true, runGc).catch(() => undefined);
      return undefined;
  }
}
