// The IPC contract, checked from outside the way a user's app sees it: a raw child_process.fork of
// dist/supervisor.js, real workers, real ONNX Runtime sessions.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { ECHO_WORKER, SupervisorProcess, sileroInputs } from './helpers.js';
import { fileURLToPath } from 'node:url';

for (const serialization of ['json', 'advanced'] as const) {
  describe(`fork channel with serialization '${serialization}'`, () => {
    let sup: SupervisorProcess;
    before(async () => {
      sup = SupervisorProcess.fork(['--workers', '2', '--recycle-every', '0'], { serialization });
      await sup.ready();
    });
    after(async () => {
      const { code } = await sup.stop();
      assert.equal(code, 0);
    });

    test('ready message names the supervisor pid and worker count', async () => {
      const ready = await sup.ready();
      assert.deepEqual(ready, { type: 'ready', pid: sup.child.pid, workers: 2 });
    });

    test('silero-vad runs and returns tensors in the form the channel carries', async () => {
      const inputs = sileroInputs(512, serialization === 'json' ? 'json' : 'typed');
      const answer = await sup.request({
        type: 'task',
        id: 'vad-1',
        payload: { model: 'silero-vad', inputs },
      });
      assert.equal(answer.type, 'result');
      assert.ok(answer.type === 'result' && answer.ok, JSON.stringify(answer));
      assert.equal(typeof answer.workerPid, 'number');
      assert.ok(answer.ms > 0);
      const outputs = (
        answer.value as { outputs: Record<string, { type: string; dims: number[]; data: ArrayLike<number> }> }
      ).outputs;
      assert.deepEqual(Object.keys(outputs).sort(), ['cn', 'hn', 'output']);
      assert.deepEqual(outputs.output!.dims, [1, 1]);
      assert.deepEqual(outputs.hn!.dims, [2, 1, 64]);
      if (serialization === 'json') assert.ok(Array.isArray(outputs.output!.data));
      else assert.ok(outputs.output!.data instanceof Float32Array);
      const p = outputs.output!.data[0]!;
      assert.ok(p >= 0 && p <= 1, `speech probability ${p}`);
    });

    test('mlp returns y [batch, 512]', async () => {
      const batch = 2;
      const data = Array.from({ length: batch * 512 }, (_, i) => Math.sin(i));
      const x = {
        type: 'float32',
        dims: [batch, 512],
        data: serialization === 'json' ? data : Float32Array.from(data),
      };
      const answer = await sup.request({
        type: 'task',
        id: 'mlp-1',
        payload: { model: 'mlp', inputs: { x } },
      });
      assert.ok(answer.type === 'result' && answer.ok, JSON.stringify(answer).slice(0, 300));
      const y = (answer.value as { outputs: { y: { dims: number[]; data: ArrayLike<number> } } }).outputs.y;
      assert.deepEqual(y.dims, [batch, 512]);
      assert.equal(y.data.length, batch * 512);
    });

    test('malformed messages get E_BAD_REQUEST and the supervisor keeps serving', async () => {
      sup.send('not an object');
      sup.send({ type: 'explode', id: 'm1' });
      sup.send({ type: 'task', payload: 1 });
      const errors = await sup.waitFor(() => {
        const e = sup.messages.filter((m) => m.type === 'error');
        return e.length >= 3 ? e : undefined;
      }, 'three protocol errors');
      for (const e of errors) assert.ok(e.type === 'error' && e.error.code === 'E_BAD_REQUEST');
      assert.match(JSON.stringify(errors), /unknown message type \\"explode\\"/);
      const noPayload = await sup.request({ type: 'task', id: 'm2' });
      assert.ok(noPayload.type === 'result' && !noPayload.ok && noPayload.error.code === 'E_BAD_REQUEST');
      assert.match(noPayload.type === 'result' && !noPayload.ok ? noPayload.error.message : '', /payload/);
      const badTimeout = await sup.request({ type: 'task', id: 'm3', payload: {}, timeoutMs: -5 });
      assert.ok(badTimeout.type === 'result' && !badTimeout.ok && /timeoutMs/.test(badTimeout.error.message));
      const badAdmin = await sup.request({ type: 'admin', id: 'm4', command: 'reboot' });
      assert.ok(badAdmin.type === 'admin-result' && !badAdmin.ok && badAdmin.error.code === 'E_BAD_REQUEST');
      const still = await sup.request({ type: 'admin', id: 'm5', command: 'stats' });
      assert.ok(still.type === 'admin-result' && still.ok);
    });

    test('unknown models, wrong names, dtypes and shapes are E_MODEL_NOT_FOUND / E_BAD_REQUEST naming the input', async () => {
      const cases: Array<[unknown, string, RegExp]> = [
        [{ model: 'whisper-xxl', inputs: {} }, 'E_MODEL_NOT_FOUND', /unknown model "whisper-xxl"/],
        [{ model: '../../etc/passwd', inputs: {} }, 'E_MODEL_NOT_FOUND', /unknown model/],
        [{ model: '__proto__', inputs: {} }, 'E_MODEL_NOT_FOUND', /unknown model/],
        [
          { model: 'mlp', inputs: { x: { type: 'float32', dims: [1, 511], data: new Array(511).fill(0) } } },
          'E_BAD_REQUEST',
          /input "x": dims \[1,511\] do not match the model's shape \[batch, 512\]/,
        ],
        [
          { model: 'mlp', inputs: { x: { type: 'int32', dims: [1, 512], data: new Array(512).fill(0) } } },
          'E_BAD_REQUEST',
          /input "x": type int32 given, the model expects float32/,
        ],
        [
          { model: 'mlp', inputs: { x: { type: 'float32', dims: [1, 512], data: [1, 2] } } },
          'E_BAD_REQUEST',
          /input "x": data has 2 elements, dims need 512/,
        ],
        [
          { model: 'mlp', inputs: { z: { type: 'float32', dims: [1], data: [1] } } },
          'E_BAD_REQUEST',
          /unknown input "z" for model "mlp"; it takes x/,
        ],
        [{ model: 'mlp', inputs: {} }, 'E_BAD_REQUEST', /missing input "x" \(float32 \[batch, 512\]\)/],
        [
          { model: 'mlp', inputs: { x: { type: 'float32', dims: [-1, 512], data: [] } } },
          'E_BAD_REQUEST',
          /non-negative integers/,
        ],
        [
          { model: 'mlp', inputs: { x: { type: 'float64', dims: [1, 512], data: [] } } },
          'E_BAD_REQUEST',
          /type "float64" is not one of/,
        ],
        ['just a string', 'E_BAD_REQUEST', /payload must be an object/],
      ];
      let i = 0;
      for (const [payload, code, message] of cases) {
        const answer = await sup.request({ type: 'task', id: `bad-${i++}`, payload });
        assert.ok(answer.type === 'result' && !answer.ok, JSON.stringify(answer));
        assert.equal(answer.error.code, code, answer.error.message);
        assert.match(answer.error.message, message);
      }
    });

    test('a duplicate in-flight id gets E_DUPLICATE_ID; the first still gets its own answer', async () => {
      const inputs = sileroInputs(512, serialization === 'json' ? 'json' : 'typed');
      sup.send({ type: 'task', id: 'dup', payload: { model: 'silero-vad', inputs } });
      sup.send({ type: 'task', id: 'dup', payload: { model: 'silero-vad', inputs } });
      await sup.waitFor(() => (sup.answersFor('dup').length >= 2 ? true : undefined), 'two answers for dup');
      const answers = sup.answersFor('dup');
      assert.equal(answers.filter((a) => a.type === 'result' && a.ok).length, 1);
      assert.equal(
        answers.filter((a) => a.type === 'result' && !a.ok && a.error.code === 'E_DUPLICATE_ID').length,
        1,
      );
    });

    test('admin stats has the documented shape', async () => {
      const answer = await sup.request({ type: 'admin', id: 'stats-1', command: 'stats' });
      assert.ok(answer.type === 'admin-result' && answer.ok);
      const stats = answer.value as {
        supervisor: { pid: number; rssMiB: number; heapUsedMiB: number };
        workers: Array<{ pid: number; state: string; tasksDone: number; rssMiB: number; uptimeMs: number }>;
        queue: { size: number; pending: number };
        totals: { tasks: number; recycles: number; freedMiB: number };
      };
      assert.equal(stats.supervisor.pid, sup.child.pid);
      assert.ok(stats.supervisor.rssMiB > 10 && stats.supervisor.heapUsedMiB > 0);
      assert.equal(stats.workers.length, 2);
      for (const w of stats.workers) {
        assert.equal(typeof w.pid, 'number');
        assert.ok(['ready', 'busy', 'cleaning'].includes(w.state), w.state);
        assert.ok(w.rssMiB > 20, `worker rss ${w.rssMiB}`);
        assert.ok(w.uptimeMs >= 0);
      }
      assert.ok(stats.totals.tasks >= 3);
      assert.deepEqual(Object.keys(stats.queue).sort(), ['pending', 'size']);
    });
  });
}

describe('cancel over IPC', () => {
  test('{ type: "cancel" } drops a queued task and ends a running one; both answer E_CANCELLED', async () => {
    const sup = SupervisorProcess.fork(['--workers', '1', '--worker', ECHO_WORKER]);
    await sup.ready();
    sup.send({ type: 'task', id: 'running', payload: { op: 'hang' } });
    sup.send({ type: 'task', id: 'queued', payload: { op: 'echo', value: 1 } });
    await new Promise((r) => setTimeout(r, 200));
    sup.send({ type: 'cancel', id: 'queued' });
    sup.send({ type: 'cancel', id: 'running' });
    for (const id of ['queued', 'running']) {
      const answer = await sup.answer(id);
      assert.ok(
        answer.type === 'result' && !answer.ok && answer.error.code === 'E_CANCELLED',
        JSON.stringify(answer),
      );
    }
    const after = await sup.request({ type: 'task', id: 'after', payload: { op: 'echo', value: 2 } });
    assert.ok(after.type === 'result' && after.ok && after.value === 2);
    assert.equal(sup.answersFor('running').length, 1);
    await sup.stop();
  });
});

describe('queue limits and shutdown', () => {
  // Tasks sent ahead to a worker (pipelineDepth, default 2) are held by it, not queued.
  for (const depth of [1, 2]) {
    test(`E_QUEUE_FULL past maxQueue (pipelineDepth ${depth}); shutdown drains queued tasks, then refuses with E_SHUTTING_DOWN and exits 0`, async () => {
      const sup = SupervisorProcess.fork([
        '--workers',
        '1',
        '--worker',
        ECHO_WORKER,
        '--max-queue',
        '2',
        '--pipeline-depth',
        String(depth),
      ]);
      await sup.ready();
      // 1 running, depth - 1 sent ahead and 2 queued fill it; the next one is refused.
      const accepted = depth + 2;
      for (let i = 0; i <= accepted; i++)
        sup.send({ type: 'task', id: `q${i}`, payload: { op: 'sleep', ms: 150, value: i } });
      const refused = await sup.answer(`q${accepted}`);
      assert.ok(
        refused.type === 'result' && !refused.ok && refused.error.code === 'E_QUEUE_FULL',
        JSON.stringify(refused),
      );
      sup.send({ type: 'admin', id: 'bye', command: 'shutdown' });
      sup.send({ type: 'task', id: 'late', payload: { op: 'echo', value: 1 } });
      const late = await sup.answer('late');
      assert.ok(late.type === 'result' && !late.ok && late.error.code === 'E_SHUTTING_DOWN');
      for (let i = 0; i < accepted; i++) {
        const answer = await sup.answer(`q${i}`);
        assert.ok(answer.type === 'result' && answer.ok && answer.value === i, JSON.stringify(answer));
      }
      const { code } = await sup.exit;
      assert.equal(code, 0);
    });
  }

  test('tasks still running at shutdownTimeoutMs are answered E_SHUTTING_DOWN', async () => {
    const sup = SupervisorProcess.fork([
      '--workers',
      '1',
      '--worker',
      ECHO_WORKER,
      '--shutdown-timeout',
      '200',
    ]);
    await sup.ready();
    sup.send({ type: 'task', id: 'long', payload: { op: 'sleep', ms: 10_000 } });
    await sup.waitFor(() => sup.logs.find((l) => l.msg === 'worker ready'), 'worker log');
    await new Promise((r) => setTimeout(r, 100));
    sup.child.kill('SIGTERM');
    const answer = await sup.answer('long');
    assert.ok(
      answer.type === 'result' && !answer.ok && answer.error.code === 'E_SHUTTING_DOWN',
      JSON.stringify(answer),
    );
    assert.equal((await sup.exit).code, 0);
  });
});

describe('worker module logging', () => {
  test("a worker module's context.log lines come out as JSON with the worker's pid and id, at the set level", async () => {
    const worker = fileURLToPath(new URL('./fixtures/logging-worker.mjs', import.meta.url));
    const sup = SupervisorProcess.fork(['--workers', '1', '--worker', worker, '--log-level', 'info']);
    await sup.ready();
    const setup = await sup.waitFor(
      () => sup.logs.find((l) => l.msg === 'worker module set up'),
      'the setup line',
    );
    assert.equal(setup.role, 'worker');
    assert.equal(setup.phase, 'setup');
    assert.equal(typeof setup.pid, 'number');
    assert.equal(setup.workerId, 0);
    const debug = await sup.request({ type: 'task', id: 'd', payload: { level: 'debug', value: 1 } });
    assert.ok(debug.type === 'result' && debug.ok && debug.value === false, JSON.stringify(debug));
    const warn = await sup.request({ type: 'task', id: 'w', payload: { level: 'warn', value: 2 } });
    assert.ok(warn.type === 'result' && warn.ok && warn.value === true, JSON.stringify(warn));
    const ran = await sup.waitFor(() => sup.logs.find((l) => l.msg === 'worker module ran'), 'the warn line');
    assert.equal(ran.value, 2, 'the debug line was not written');
    assert.equal(ran.pid, setup.pid);
    await sup.stop();
  });
});
