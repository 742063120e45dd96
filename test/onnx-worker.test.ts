// The default ONNX Runtime worker, end to end: real sessions in worker processes must give the same
// numbers as onnxruntime-node used directly, whatever form the tensors travel in.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { Supervisor, type SupervisorEventMap } from 'gpu-supervisor';
import { mlpReference } from '../dist/models/mlp.js';
import { SupervisorProcess, sileroInputs, sileroReference } from './helpers.js';

type Outputs = { outputs: Record<string, { type: string; dims: number[]; data: ArrayLike<number> }> };

function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  assert.equal(a.length, b.length);
  let max = 0;
  for (let i = 0; i < a.length; i++) max = Math.max(max, Math.abs(a[i]! - b[i]!));
  return max;
}

describe('onnx worker', () => {
  let sup: Supervisor;
  const cleanups: SupervisorEventMap['cleanup'][] = [];
  before(async () => {
    sup = new Supervisor({ workers: 2, logLevel: 'silent', recycleEveryTasks: 0 });
    sup.events.on('cleanup', (e) => cleanups.push(e));
    await sup.start();
  });
  after(() => sup.shutdown());

  test('silero-vad gives the same outputs as an in-process session, for typed and JSON-style inputs', async () => {
    const expected = await sileroReference(1024);
    for (const form of ['typed', 'json'] as const) {
      const value = (await sup.run({ model: 'silero-vad', inputs: sileroInputs(1024, form) })) as Outputs;
      for (const name of ['output', 'hn', 'cn']) {
        assert.deepEqual(value.outputs[name]!.dims, [...expected[name]!.dims]);
        assert.ok(
          maxAbsDiff(value.outputs[name]!.data, expected[name]!.data as Float32Array) < 1e-5,
          `${form} ${name}`,
        );
      }
    }
  });

  test('mlp matches the JS reference forward pass (batch 3), and `outputs` selects outputs', async () => {
    const batch = 3;
    const x = Float32Array.from({ length: batch * 512 }, (_, i) => Math.cos(i / 7));
    const value = (await sup.run({
      model: 'mlp',
      inputs: { x: { type: 'float32', dims: [batch, 512], data: x } },
      outputs: ['y'],
    })) as Outputs;
    const y = value.outputs.y!;
    assert.deepEqual(y.dims, [batch, 512]);
    const reference = mlpReference(x, batch, {});
    assert.ok(maxAbsDiff(y.data, reference) < 1e-3);
    assert.ok(Array.from(y.data).some((v) => v !== 0));
  });

  test('an unknown requested output is E_BAD_REQUEST naming the outputs it has', async () => {
    const x = { type: 'float32', dims: [1, 512], data: new Float32Array(512) };
    await assert.rejects(sup.run({ model: 'mlp', inputs: { x }, outputs: ['logits'] }), {
      code: 'E_BAD_REQUEST',
      message: /unknown output "logits" for model "mlp"; it has y/,
    });
    await assert.rejects(sup.run({ model: 'mlp', inputs: { x }, outputs: [] }), {
      code: 'E_BAD_REQUEST',
      message: /"outputs" must be a non-empty array/,
    });
  });

  test('cleanup runs after every task, errors included, and is measured', async () => {
    const before = cleanups.length;
    await sup.run({ model: 'silero-vad', inputs: sileroInputs(512) });
    await assert.rejects(sup.run({ model: 'mlp', inputs: {} }), { code: 'E_BAD_REQUEST' });
    await new Promise((r) => setTimeout(r, 300));
    assert.ok(cleanups.length >= before + 2);
    assert.ok(cleanups.slice(before).every((c) => c.mode === 'light' && c.rssBeforeMiB > 20));
  });
});

describe('onnx worker options', () => {
  test('cleanup.force releases sessions after each task; tasks still succeed (sessions are re-created)', async () => {
    const sup = new Supervisor({ workers: 1, logLevel: 'silent', cleanup: { force: true } });
    const modes: string[] = [];
    sup.events.on('cleanup', (e) => modes.push(e.mode));
    await sup.start();
    for (let i = 0; i < 3; i++) {
      const value = (await sup.run({ model: 'silero-vad', inputs: sileroInputs(512) })) as Outputs;
      assert.deepEqual(value.outputs.output!.dims, [1, 1]);
    }
    await new Promise((r) => setTimeout(r, 200));
    assert.ok(modes.length >= 2 && modes.every((m) => m === 'force'));
    await sup.shutdown();
  });

  test('asking for CUDA without the CUDA provider installed: one warning naming the fix, then CPU', async () => {
    const sup = SupervisorProcess.fork([
      '--workers',
      '1',
      '--execution-providers',
      'cuda,cpu',
      '--log-level',
      'info',
    ]);
    await sup.ready();
    for (let i = 0; i < 2; i++) {
      const answer = await sup.request({
        type: 'task',
        id: `cuda-${i}`,
        payload: { model: 'silero-vad', inputs: sileroInputs(512, 'json') },
      });
      assert.ok(answer.type === 'result' && answer.ok, JSON.stringify(answer));
    }
    const warnings = sup.logs.filter(
      (l) => typeof l.msg === 'string' && l.msg.includes('CUDA execution provider is not installed'),
    );
    assert.equal(warnings.length, 1);
    assert.match(warnings[0]!.msg!, /ONNXRUNTIME_NODE_INSTALL=cuda12/);
    assert.equal(warnings[0]!.role, 'worker');
    await sup.stop();
  });
});
