/**
 * The piscina task function of the thread backend. One piscina (maxThreads 1) per pool slot, so every
 * call lands in the same thread and the worker module's state (sessions) lives across tasks, exactly
 * as in a worker process. Each call carries one pool message and returns the worker's answer.
 */
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { types } from 'node:util';
import { MessagePort, threadId } from 'node:worker_threads';
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
 * What in a task's value structured clone refuses (a function, a symbol, a Proxy, a WeakMap, a
 * WeakRef, a promise, a port...), named by its path; undefined when the value can be posted. Checked
 * here because piscina posts the answer where nothing can catch the failure: the thread would die and
 * the task look like a crash (and be retried). The path is built only on the way back from a find.
 */
function uncloneable(value: unknown): string | undefined {
  try {
    const found = refusedPart(value, new Set(), 0);
    return found && `value${found.at} is ${found.what}`;
  } catch (error) {
    // A getter that throws: posting the value would throw the same.
    return `value cannot be read: ${(error as Error).message}`;
  }
}

type Refused = { at: string; what: string };

/** What cannot be cloned at all, whatever it holds (util.types sees across realms). */
function refusedKind(value: object): string | undefined {
  if (types.isProxy(value)) return 'a Proxy';
  if (types.isWeakMap(value) || types.isWeakSet(value)) return 'a weak collection';
  if (types.isPromise(value)) return 'a Promise';
  if (types.isGeneratorObject(value) || types.isMapIterator(value) || types.isSetIterator(value))
    return 'an iterator';
  if (types.isSymbolObject(value)) return 'a boxed symbol';
  if (types.isModuleNamespaceObject(value)) return 'a module namespace';
  if (value instanceof MessagePort) return 'a MessagePort';
  // Brand checks, not toStringTag (which any object may claim). A failed one throws, so they are
  // spared arrays and plain objects, which are never WeakRefs (short of a rewritten prototype).
  if (Array.isArray(value)) return undefined;
  const proto = Object.getPrototypeOf(value) as unknown;
  if (proto === Object.prototype || proto === null) return undefined;
  if (branded(() => WeakRef.prototype.deref.call(value as WeakRef<object>))) return 'a WeakRef';
  if (
    branded(() => FinalizationRegistry.prototype.unregister.call(value as FinalizationRegistry<unknown>, {}))
  )
    return 'a FinalizationRegistry';
  return undefined;
}

function branded(call: () => unknown): boolean {
  try {
    call();
    return true;
  } catch {
    return false;
  }
}

function refusedPart(value: unknown, seen: Set<object>, depth: number): Refused | undefined {
  if (typeof value === 'function') return { at: '', what: 'a function' };
  if (typeof value === 'symbol') return { at: '', what: 'a symbol' };
  if (typeof value !== 'object' || value === null || seen.has(value)) return undefined;
  // Deeper than this the post itself may overflow the stack: refused before it is tried.
  if (depth > 1000) return { at: '', what: 'nested deeper than 1000 levels' };
  const kind = refusedKind(value);
  if (kind) return { at: '', what: kind };
  if (
    ArrayBuffer.isView(value) ||
    types.isAnyArrayBuffer(value) ||
    types.isDate(value) ||
    types.isRegExp(value)
  )
    return undefined;
  seen.add(value);
  const inner = (item: unknown, step: () => string): Refused | undefined => {
    const found = refusedPart(item, seen, depth + 1);
    return found && { at: step() + found.at, what: found.what };
  };
  // An error is cloned as its message, stack and cause: nothing else of it is posted.
  if (types.isNativeError(value)) return inner((value as Error).cause, () => '.cause');
  if (types.isMap(value) || types.isSet(value)) {
    let i = 0;
    for (const item of types.isMap(value)
      ? [...(value as Map<unknown, unknown>)].flat()
      : (value as Set<unknown>)) {
      const found = inner(item, () => `<entry ${i}>`);
      if (found) return found;
      i++;
    }
    return undefined;
  }
  // Own enumerable keys, an array's extra ones included (they are posted too).
  for (const key in value) {
    if (!Object.hasOwn(value, key)) continue;
    const found = inner((value as Record<string, unknown>)[key], () =>
      Array.isArray(value) ? `[${key}]` : `.${key}`,
    );
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
