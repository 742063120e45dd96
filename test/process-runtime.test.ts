// How a worker process is written to: the first task of a tick leaves at once (before the pool's
// verdict and bookkeeping that follow a dispatch), the tasks given later in the same tick go out
// together at its end, and any other message keeps the order. Observed on a real child process by
// recording ChildProcess#send, the one call that writes to the IPC channel.
import { afterEach, describe, mock, test } from 'node:test';
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { ProcessRuntime } from '../src/pool/runtime/process-runtime.js';
import type { FromWorker, ToWorker } from '../src/protocol/worker-messages.js';
import { ECHO_WORKER } from './helpers.js';

type Run = Extract<ToWorker, { kind: 'run' }>;

const run = (taskId: string, payload: unknown = { op: 'echo', value: taskId }): Run => ({
  kind: 'run',
  taskId,
  payload,
});

const started: ProcessRuntime[] = [];
afterEach(() => {
  mock.restoreAll();
  for (const runtime of started.splice(0)) runtime.end('kill');
});

/** A real worker process (never configured: it answers runs with an error) and the writes made to it. */
async function recorded(): Promise<{ runtime: ProcessRuntime; writes: unknown[] }> {
  const runtime = await ProcessRuntime.start({
    slot: 0,
    modulePath: ECHO_WORKER,
    config: { models: {}, executionProviders: ['cpu'], sessionOptions: {}, options: {} },
    execArgv: [],
  });
  started.push(runtime);
  const writes: unknown[] = [];
  // Node sets `send` on each child it forks with a channel (not on the prototype): the one this
  // runtime writes to is its private `child`, reached here and nowhere else.
  const child = (runtime as unknown as { child: ChildProcess }).child;
  const send = child.send.bind(child) as (...args: unknown[]) => boolean;
  mock.method(child, 'send', (...args: unknown[]) => {
    // Recorded once written: a message that cannot be serialized throws and is not.
    const written = send(...args);
    writes.push(args[0]);
    return written;
  });
  return { runtime, writes };
}

const tick = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

describe('ProcessRuntime: writes to the worker', () => {
  test('the first task of a tick is written at once; the rest of the tick goes out as one batch at its end', async () => {
    const { runtime, writes } = await recorded();
    runtime.send(run('a'));
    assert.deepEqual(writes, [run('a')], 'written before send() returned');
    runtime.send(run('b'));
    runtime.send(run('c'));
    assert.equal(writes.length, 1, 'later tasks of the same tick wait for its end');
    await Promise.resolve();
    assert.deepEqual(writes, [run('a'), { kind: 'batch', runs: [run('b'), run('c')] }]);
    await tick();
    runtime.send(run('d'));
    assert.deepEqual(writes.at(-1), run('d'), 'a new tick writes its first task at once again');
  });

  test('a single task batched behind the first goes alone; another message first sends what is batched', async () => {
    const { runtime, writes } = await recorded();
    runtime.send(run('a'));
    runtime.send(run('b'));
    runtime.send({ kind: 'skip', taskId: 'a' });
    assert.deepEqual(writes, [run('a'), run('b'), { kind: 'skip', taskId: 'a' }], 'order kept');
    await tick();
    assert.equal(writes.length, 3, 'nothing left to send at the end of the tick');
  });

  test('an unserializable first task throws at once; a batched one comes back as unsent, the others still go', async () => {
    const { runtime, writes } = await recorded();
    const heard: FromWorker[] = [];
    runtime.onMessage((message) => heard.push(message));
    const unserializable = { op: 'echo', value: () => undefined };
    assert.throws(() => runtime.send(run('bad-first', unserializable)), /could not be cloned/);
    runtime.send(run('a'));
    assert.equal(writes.length, 1, 'the throw left the tick unwritten: the next task went at once');
    runtime.send(run('bad', unserializable));
    runtime.send(run('b'));
    await tick();
    const taskIds = writes.map((w) => (w as Run).taskId);
    assert.deepEqual(taskIds, ['a', 'b'], 'the serializable ones were written, each alone');
    const unsent = heard.filter((m) => m.kind === 'unsent');
    assert.deepEqual(
      unsent.map((m) => m.taskId),
      ['bad'],
    );
  });

  test('a task sent by whoever hears the unsent report goes after those of the batch still being written', async () => {
    const { runtime, writes } = await recorded();
    runtime.onMessage((message) => {
      if (message.kind === 'unsent') runtime.send(run('next'));
    });
    runtime.send(run('a'));
    runtime.send(run('bad', { op: 'echo', value: () => undefined }));
    runtime.send(run('b'));
    await tick();
    assert.deepEqual(
      writes.map((w) => (w as Run).taskId),
      ['a', 'b', 'next'],
    );
  });
});
