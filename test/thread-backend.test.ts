// The same pool suite against both backends (tinypool's describe.each idea): every behaviour a user
// relies on must hold whether workers are child processes or piscina worker threads. Process-only
// checks (SIGKILL of a worker or of the supervisor, orphan watchdog) live in lifecycle.test.ts: a
// thread has no pid of its own to kill and cannot outlive its process.
import { after, afterEach, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import type { SupervisorEventMap } from 'gpu-supervisor';
import { cancelRunningAndQueued, expectCode, sileroInputs, sileroReference, waitUntil } from './helpers.js';
import {
  BACKENDS,
  POOL_WORKER,
  collectingLogger,
  identity,
  supervisorFactory,
  type WhoAmI,
} from './fixtures/pool-helpers.js';

const { make, shutdownAll } = supervisorFactory({ worker: POOL_WORKER, workers: 2 });
afterEach(shutdownAll);
after(shutdownAll);

for (const backend of BACKENDS) {
  describe(`pool on the ${backend} backend`, () => {
    test('echo, typed arrays and the worker identity', async () => {
      const sup = make({ backend });
      await sup.start();
      assert.deepEqual(await sup.run({ op: 'echo', value: { a: [1, 'x'] } }), { a: [1, 'x'] });
      const typed = (await sup.run({ op: 'typed', n: 3 })) as { f32: Float32Array; i64: BigInt64Array };
      assert.deepEqual([...typed.f32], [1.5, 1.5, 1.5]);
      assert.deepEqual([...typed.i64], [1n, 2n]);
      const who = (await sup.run({ op: 'whoami' })) as WhoAmI;
      const { workers } = await sup.stats();
      assert.equal(workers.length, 2);
      if (backend === 'thread') {
        assert.equal(who.pid, process.pid, 'a thread runs in the supervisor process');
        assert.ok(workers.some((w) => w.threadId === who.threadId));
      } else {
        assert.notEqual(who.pid, process.pid);
        assert.ok(workers.some((w) => w.pid === who.pid));
      }
    });

    test('errors: handler throw, worker-raised E_BAD_REQUEST, unsendable payload; none costs a worker', async () => {
      const sup = make({ backend, workers: 1 });
      const exits: unknown[] = [];
      sup.events.on('worker-exit', (e) => exits.push(e));
      await sup.start();
      await expectCode(sup.run({ op: 'throw', message: 'nope' }), 'E_TASK_FAILED');
      await expectCode(sup.run({ op: 'bad-request' }), 'E_BAD_REQUEST');
      await expectCode(sup.run({ op: 'echo', value: () => 1 }), 'E_BAD_REQUEST');
      // A result that cannot go back (a function in it) fails its task alone, as in a process.
      for (const kind of [
        'function',
        'weakref',
        'proxy',
        'array-prop',
        'generator',
        'boxed-symbol',
        'deep-function',
      ])
        await expectCode(sup.run({ op: 'unsendable', kind }), 'E_TASK_FAILED', /result cannot be sent/);
      // An error goes back as its message and stack, whatever else it holds.
      const { error } = (await sup.run({ op: 'error-prop' })) as { error: Error };
      assert.ok(error instanceof Error && error.message === 'boom', String(error));
      assert.deepEqual(await sup.run({ op: 'tagged' }), { v: { x: 1 } });
      assert.equal(await sup.run({ op: 'echo', value: 'still here' }), 'still here');
      assert.equal(exits.length, 0);
    });

    test('a worker that exits mid-task: E_WORKER_CRASHED, replaced, pool full again', async () => {
      const sup = make({ backend });
      const recycles: SupervisorEventMap['recycle'][] = [];
      sup.events.on('recycle', (e) => recycles.push(e));
      await sup.start();
      await expectCode(sup.run({ op: 'exit', code: 7 }), 'E_WORKER_CRASHED');
      await waitUntil(() => recycles.some((r) => r.reason === 'crash'), 'crash replaced');
      await waitUntil(async () => (await sup.stats()).workers.every((w) => w.state === 'ready'), 'pool full');
      assert.equal(await sup.run({ op: 'echo', value: 42 }), 42);
    });

    test('a task over its timeout: the worker is ended (even a busy loop), E_TIMEOUT, replaced', async () => {
      const sup = make({ backend, workers: 1 });
      const recycles: string[] = [];
      sup.events.on('recycle', (e) => recycles.push(e.reason));
      await sup.start();
      const before = identity(backend, (await sup.run({ op: 'whoami' })) as WhoAmI);
      await expectCode(sup.run({ op: 'hang' }, { timeoutMs: 300 }), 'E_TIMEOUT');
      await waitUntil(() => recycles.includes('timeout'), 'recycle with reason timeout');
      const afterwards = identity(backend, (await sup.run({ op: 'whoami' })) as WhoAmI);
      assert.notEqual(afterwards, before);
    });

    test('cancellation: a queued task is dropped, a running one ends its worker', async () => {
      const sup = make({ backend, workers: 1 });
      await sup.start();
      await cancelRunningAndQueued(sup);
      assert.equal(await sup.run({ op: 'echo', value: 'next' }), 'next');
    });

    test('recycle every N: N tasks per worker, the last one drains, never back to ready', async () => {
      const sup = make({ backend, workers: 1, recycleEveryTasks: 3, logLevel: 'silent' });
      const transitions: string[] = [];
      sup.events.on('transition', (e) => transitions.push(`${e.from}->${e.to}`));
      const recycles: SupervisorEventMap['recycle'][] = [];
      sup.events.on('recycle', (e) => recycles.push(e));
      await sup.start();
      const ids: number[] = [];
      for (let i = 0; i < 7; i++) ids.push(identity(backend, (await sup.run({ op: 'whoami' })) as WhoAmI));
      assert.equal(new Set(ids.slice(0, 3)).size, 1);
      assert.equal(new Set(ids.slice(3, 6)).size, 1);
      assert.notEqual(ids[0], ids[3]);
      assert.notEqual(ids[3], ids[6]);
      await waitUntil(() => recycles.length >= 2, 'two recycles');
      assert.deepEqual(
        recycles.map((r) => [r.reason, r.tasksDone]),
        [
          ['every-n', 3],
          ['every-n', 3],
        ],
      );
      assert.ok(transitions.includes('busy->draining'), transitions.join(' '));
      const fromDraining = transitions.filter((t) => t.startsWith('draining->'));
      assert.ok(fromDraining.length >= 2);
      assert.ok(
        fromDraining.every((t) => t === 'draining->stopping' || t === 'draining->exited'),
        fromDraining.join(' '),
      );
    });

    test('every task is followed by a measured cleanup event, labelled with whose memory it measured', async () => {
      const sup = make({ backend, workers: 1, recycleEveryTasks: 0 });
      const cleanups: Array<SupervisorEventMap['cleanup'] & { memoryScope?: string }> = [];
      sup.events.on('cleanup', (e) => cleanups.push(e));
      await sup.start();
      await sup.run({ op: 'echo', value: 1 }, {});
      await sup.run({ op: 'echo', value: 2 });
      assert.deepEqual(await sup.run({ op: 'counts' }), { cleanups: 2, forced: 0, workerId: 0 });
      await waitUntil(() => cleanups.length >= 3, 'three cleanup events');
      for (const c of cleanups) {
        assert.equal(c.mode, 'light');
        assert.equal(typeof c.rssBeforeMiB, 'number');
        assert.equal(typeof c.ms, 'number');
        assert.equal(c.memoryScope, backend === 'thread' ? 'process' : 'worker');
      }
    });

    test('max-age for an idle worker: recycled on a timer, without waiting for a task', async () => {
      const sup = make({ backend, workers: 1, recycle: { maxAgeMs: 600 } });
      const recycles: SupervisorEventMap['recycle'][] = [];
      sup.events.on('recycle', (e) => recycles.push(e));
      await sup.start();
      const first = identity(backend, (await sup.run({ op: 'whoami' })) as WhoAmI);
      await waitUntil(() => recycles.length >= 1, 'an idle max-age recycle', 10_000);
      assert.equal(recycles[0]!.reason, 'max-age');
      assert.match(recycles[0]!.detail, /recycle\.maxAgeMs 600/);
      const next = identity(backend, (await sup.run({ op: 'whoami' })) as WhoAmI);
      assert.notEqual(next, first);
    });

    test('ONNX: silero-vad through the default worker gives the in-process outputs', async () => {
      const sup = make({ backend, worker: null, workers: 1, recycleEveryTasks: 2 });
      await sup.start();
      const expected = await sileroReference(1024);
      // Three runs: one across a recycle, so a fresh worker's session gives the same numbers.
      for (let i = 0; i < 3; i++) {
        const value = (await sup.run({ model: 'silero-vad', inputs: sileroInputs(1024) })) as {
          outputs: Record<string, { dims: number[]; data: ArrayLike<number> }>;
        };
        for (const name of ['output', 'hn', 'cn']) {
          const got = value.outputs[name]!;
          const want = expected[name]!.data as Float32Array;
          assert.deepEqual(got.dims, [...expected[name]!.dims]);
          assert.equal(got.data.length, want.length);
          for (let j = 0; j < want.length; j++)
            assert.ok(Math.abs(got.data[j]! - want[j]!) < 1e-5, `${name}[${j}]`);
        }
      }
    });
  });
}

describe('thread backend only', () => {
  test('cuda with threads: one warning at start that says GPU memory cannot go back; process: none', async () => {
    for (const backend of BACKENDS) {
      const { logger, lines } = collectingLogger();
      const sup = make(
        { backend, worker: null, workers: 2, executionProviders: ['cuda', 'cpu'] },
        { logger },
      );
      await sup.start();
      const warned = lines.filter((l) => typeof l.msg === 'string' && l.msg.includes('CUDA context'));
      assert.equal(warned.length, backend === 'thread' ? 1 : 0, JSON.stringify(lines));
      await sup.shutdown();
    }
  });
});
