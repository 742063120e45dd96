/**
 * The piscina task function of the thread backend. One piscina (maxThreads 1) per pool slot, so every
 * call lands in the same thread and the worker module's state (sessions) lives across tasks, exactly
 * as in a worker process. Each call carries one pool message and returns the worker's answer.
 */
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { threadId } from 'node:worker_threads';
import { move } from 'piscina';
import { ErrorCode } from '../protocol/errors.js';
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

/**
 * What in a task's value structured clone refuses (a function, a symbol, a WeakMap...), named by its
 * path; undefined when the value can be posted. Checked here because piscina posts the answer where
 * nothing can catch the failure: the thread would die and the task look like a crash (and be retried).
 * The path is built only on the way back from a find, so a clean value costs one visit per part.
 */
function uncloneable(value: unknown): string | undefined {
  const found = refusedPart(value, new Set(), 0);
  return found && `value${found.at} is ${found.what}`;
}

function refusedPart(
  value: unknown,
  seen: Set<object>,
  depth: number,
): { at: string; what: string } | undefined {
  if (typeof value === 'function') return { at: '', what: 'a function' };
  if (typeof value === 'symbol') return { at: '', what: 'a symbol' };
  if (typeof value !== 'object' || value === null || seen.has(value) || depth > 1000) return undefined;
  if (ArrayBuffer.isView(value) || value instanceof ArrayBuffer || value instanceof Date) return undefined;
  if (value instanceof WeakMap || value instanceof WeakSet || value instanceof Promise)
    return { at: '', what: `a ${value.constructor.name}` };
  seen.add(value);
  const inner = (item: unknown, step: () => string): { at: string; what: string } | undefined => {
    const found = refusedPart(item, seen, depth + 1);
    return found && { at: step() + found.at, what: found.what };
  };
  if (Array.isArray(value)) {
    for (let i = 0; i < value.length; i++) {
      const found = inner(value[i], () => `[${i}]`);
      if (found) return found;
    }
    return undefined;
  }
  if (value instanceof Map || value instanceof Set) {
    let i = 0;
    for (const item of value instanceof Map ? [...value].flat() : value) {
      const found = inner(item, () => `<entry ${i}>`);
      if (found) return found;
      i++;
    }
    return undefined;
  }
  for (const key in value) {
    if (!Object.hasOwn(value, key)) continue;
    const found = inner((value as Record<string, unknown>)[key], () => `.${key}`);
    if (found) return found;
  }
  return undefined;
}

export default async function handle(message: ToWorker): Promise<FromWorker | object | undefined> {
  switch (message.kind) {
    case 'init':
      return initWorker(message, { pid: process.pid, threadId });
    case 'run': {
      const answer = await runTask(message.taskId, message.payload);
      const refused = answer.ok ? uncloneable(answer.value) : undefined;
      if (refused) {
        const error = {
          code: ErrorCode.TASK_FAILED,
          message: `the worker module's result cannot be sent: ${refused}`,
        };
        return { kind: 'result', taskId: message.taskId, ok: false, error } satisfies FromWorker;
      }
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
