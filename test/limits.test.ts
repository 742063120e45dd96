// Bad input at the edges, through the real supervisor and the real ONNX worker: every mistake gets a
// typed answer naming the problem, nothing opens a file outside the registry, and the supervisor keeps
// serving. And a worker killed by its V8 heap limit is reported as such, without a retry storm.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { SupervisorMessage } from 'gpu-supervisor';
import { SupervisorProcess, ROOT, expectFailure, isAlive, sileroInputs, waitUntil } from './helpers.js';

const SOAK_WORKER = join(ROOT, 'test/fixtures/soak-worker.mjs');
const started: SupervisorProcess[] = [];
const dir = mkdtempSync(join(tmpdir(), 'gpu-sup-limits-'));
after(async () => {
  await Promise.all(started.map((sup) => sup.stop()));
  rmSync(dir, { recursive: true, force: true });
});

function start(args: string[], config: Record<string, unknown> = {}): SupervisorProcess {
  const file = join(dir, `config-${started.length}.json`);
  writeFileSync(file, JSON.stringify({ cleanup: { gpu: false }, ...config }));
  const sup = SupervisorProcess.fork(['--config', file, ...args], { serialization: 'advanced' });
  started.push(sup);
  return sup;
}

let seq = 0;
async function task(sup: SupervisorProcess, payload: unknown): Promise<SupervisorMessage> {
  return sup.request({ type: 'task', id: `t${++seq}`, payload }, 60_000);
}

async function expectError(
  sup: SupervisorProcess,
  payload: unknown,
  code: string,
  message: RegExp,
): Promise<void> {
  const answer = await task(sup, payload);
  assert.equal(answer.type, 'result', JSON.stringify(answer));
  expectFailure(answer, code, message);
}

const mlp = (x: Record<string, unknown>): unknown => ({ model: 'mlp', inputs: { x } });
const row = (): Float32Array => new Float32Array(512).fill(0.25);
const silero = (sr: unknown): unknown => ({
  model: 'silero-vad',
  inputs: { ...sileroInputs(), sr: { type: 'int64', dims: [], data: sr } },
});

describe('bad tensors, keys and model names through the ONNX worker', () => {
  let sup: SupervisorProcess;
  before(async () => {
    sup = start(['--workers', '1']);
    await sup.ready();
  });

  const cases: Array<[string, () => unknown, string, RegExp]> = [
    [
      'negative dim',
      () => mlp({ type: 'float32', dims: [-1, 512], data: row() }),
      'E_BAD_REQUEST',
      /"x".*-1.*non-negative integers/,
    ],
    [
      'fractional dim',
      () => mlp({ type: 'float32', dims: [1.5, 512], data: row() }),
      'E_BAD_REQUEST',
      /"x".*non-negative integers/,
    ],
    [
      'NaN dim',
      () => mlp({ type: 'float32', dims: [NaN, 512], data: row() }),
      'E_BAD_REQUEST',
      /"x".*non-negative integers/,
    ],
    [
      'bigint dim',
      () => mlp({ type: 'float32', dims: [1n, 512], data: row() }),
      'E_BAD_REQUEST',
      /"x".*1n.*non-negative integers/,
    ],
    [
      'dims not an array',
      () => mlp({ type: 'float32', dims: '1,512', data: row() }),
      'E_BAD_REQUEST',
      /"x": dims must be an array/,
    ],
    [
      'dims past 2^31 elements',
      () => mlp({ type: 'float32', dims: [2 ** 22, 512], data: row() }),
      'E_BAD_REQUEST',
      /"x".*more than 2147483647 elements/,
    ],
    [
      'dims overflowing a double',
      () => mlp({ type: 'float32', dims: [2 ** 40, 2 ** 40, 512], data: row() }),
      'E_BAD_REQUEST',
      /"x".*more than 2147483647 elements/,
    ],
    // 4 GiB described, 2 KiB sent: refused by the length check before anything that size is allocated.
    [
      'dims far beyond the data sent',
      () => mlp({ type: 'float32', dims: [2 ** 21, 512], data: row() }),
      'E_BAD_REQUEST',
      /"x": data has 512 elements, dims need 1073741824/,
    ],
    [
      'data shorter than dims',
      () => mlp({ type: 'float32', dims: [1, 512], data: new Float32Array(511) }),
      'E_BAD_REQUEST',
      /"x": data has 511 elements, dims need 512/,
    ],
    [
      'number array longer than dims',
      () => mlp({ type: 'float32', dims: [1, 512], data: new Array<number>(513).fill(0) }),
      'E_BAD_REQUEST',
      /"x": data has 513 elements, dims need 512/,
    ],
    [
      'wrong fixed dim',
      () => mlp({ type: 'float32', dims: [1, 511], data: new Float32Array(511) }),
      'E_BAD_REQUEST',
      /"x".*\[1,511\].*do not match the model's shape/,
    ],
    [
      'a string in float data',
      () => mlp({ type: 'float32', dims: [1, 512], data: [...row()].map((v, i) => (i === 7 ? 'x' : v)) }),
      'E_BAD_REQUEST',
      /"x": element 7 is not a number/,
    ],
    ['NaN in an int64 tensor', () => silero([NaN]), 'E_BAD_REQUEST', /"sr": element 0 is not an int64 value/],
    [
      'Infinity in an int64 tensor',
      () => silero([Infinity]),
      'E_BAD_REQUEST',
      /"sr": element 0 is not an int64 value/,
    ],
    [
      'a fraction in an int64 tensor',
      () => silero([16000.5]),
      'E_BAD_REQUEST',
      /"sr": element 0 is not an int64 value/,
    ],
    [
      'an integer past 2^53 as a number',
      () => silero([2 ** 60]),
      'E_BAD_REQUEST',
      /"sr": element 0 is not an int64 value/,
    ],
    [
      'a bigint past int64',
      () => silero([2n ** 64n + 16000n]),
      'E_BAD_REQUEST',
      /"sr": element 0 is not an int64 value/,
    ],
    [
      'int64 data as a Float64Array',
      () => silero(new Float64Array([16000])),
      'E_BAD_REQUEST',
      /"sr": int64 data must be a BigInt64Array/,
    ],
    [
      'unknown dtype',
      () => mlp({ type: 'float64', dims: [1, 512], data: row() }),
      'E_BAD_REQUEST',
      /"x": type "float64" is not one of float32, int64/,
    ],
    [
      'dtype not a string',
      () => mlp({ type: 7n, dims: [1, 512], data: row() }),
      'E_BAD_REQUEST',
      /"x": type "7n" is not one of/,
    ],
    [
      'dtype the model does not take',
      () => mlp({ type: 'int32', dims: [1, 512], data: new Int32Array(512) }),
      'E_BAD_REQUEST',
      /"x": type int32 given, the model expects float32/,
    ],
    [
      '__proto__ as an input name',
      () => ({
        model: 'mlp',
        inputs: JSON.parse(
          `{"__proto__": {"type": "float32", "dims": [1, 512], "data": []}, "x": ${JSON.stringify({ type: 'float32', dims: [1, 512], data: [...row()] })}}`,
        ) as unknown,
      }),
      'E_BAD_REQUEST',
      /unknown input "__proto__" for model "mlp"/,
    ],
    [
      'constructor as an input name',
      () => ({
        model: 'mlp',
        inputs: {
          constructor: { type: 'float32', dims: [1], data: [1] },
          x: { type: 'float32', dims: [1, 512], data: row() },
        },
      }),
      'E_BAD_REQUEST',
      /unknown input "constructor" for model "mlp"/,
    ],
    [
      '__proto__ carrying the model name',
      () => JSON.parse('{"__proto__": {"model": "mlp"}, "inputs": {}}') as unknown,
      'E_BAD_REQUEST',
      /"model" must be a non-empty string/,
    ],
    [
      'a tensor given as an array',
      () => ({ model: 'mlp', inputs: { x: [1, 2, 3] } }),
      'E_BAD_REQUEST',
      /input "x" must be \{ type, dims, data \}/,
    ],
    [
      'model "../models/mlp.onnx"',
      () => ({ model: '../models/mlp.onnx', inputs: {} }),
      'E_MODEL_NOT_FOUND',
      /unknown model "\.\.\/models\/mlp\.onnx"; this supervisor serves silero-vad, mlp/,
    ],
    [
      'model as an absolute path',
      () => ({ model: join(ROOT, 'models/mlp.onnx'), inputs: {} }),
      'E_MODEL_NOT_FOUND',
      /unknown model ".*models\/mlp\.onnx"/,
    ],
    [
      'model "__proto__"',
      () => ({ model: '__proto__', inputs: {} }),
      'E_MODEL_NOT_FOUND',
      /unknown model "__proto__"/,
    ],
    [
      'model "constructor"',
      () => ({ model: 'constructor', inputs: {} }),
      'E_MODEL_NOT_FOUND',
      /unknown model "constructor"/,
    ],
  ];

  for (const [name, payload, code, message] of cases) {
    test(`${name} -> ${code}`, () => expectError(sup, payload(), code, message));
  }

  test('bad task messages are answered under their id', async () => {
    const answers = await Promise.all([
      sup.request({ type: 'task', id: 'm1', payload: {}, timeoutMs: -5 }),
      sup.request({ type: 'task', id: 'm2', payload: {}, timeoutMs: 2 ** 31 }),
      sup.request({ type: 'task', id: 'm3', payload: {}, priority: 0.5 }),
      sup.request({ type: 'task', id: 'm4' }),
      sup.request({ type: 'admin', id: 'm5', command: 10n }),
    ]);
    for (const answer of answers) {
      assert.ok(answer.type === 'result' || answer.type === 'admin-result');
      assert.ok(!answer.ok && answer.error.code === 'E_BAD_REQUEST', JSON.stringify(answer));
    }
  });

  test('the supervisor and its worker keep serving after all of it', async () => {
    const answer = await task(sup, mlp({ type: 'float32', dims: [1, 512], data: row() }));
    assert.ok(answer.type === 'result' && answer.ok, JSON.stringify(answer).slice(0, 300));
    const y = (answer.value as { outputs: { y: { dims: number[]; data: Float32Array } } }).outputs.y;
    assert.deepEqual(y.dims, [1, 512]);
    assert.ok(y.data.every((v) => Number.isFinite(v)));
    // None of the above was a crash: the one worker that started is still the one serving.
    assert.equal(sup.logsWith('worker exited unexpectedly').length, 0);
    assert.ok(isAlive(sup.child.pid!));
  });
});

describe('results a client cannot receive', () => {
  test('a cyclic result to a JSON client is answered with an error, and the supervisor keeps serving', async () => {
    const file = join(dir, 'json-client.json');
    writeFileSync(file, JSON.stringify({ cleanup: { gpu: false } }));
    const sup = SupervisorProcess.fork(['--config', file, '--workers', '1', '--worker', SOAK_WORKER], {
      serialization: 'json',
    });
    started.push(sup);
    await sup.ready();
    const answer = await sup.request({ type: 'task', id: 'cyclic', payload: { op: 'cyclic', n: 1 } }, 30_000);
    assert.ok(answer.type === 'result' && !answer.ok, JSON.stringify(answer));
    assert.match(answer.error.message, /circular|cannot be (serialized|sent)/i);
    const next = await sup.request(
      { type: 'task', id: 'after', payload: { op: 'hash', n: 2, text: 'x' } },
      30_000,
    );
    assert.ok(next.type === 'result' && next.ok, JSON.stringify(next));
  });
});

describe('a worker killed by its V8 heap limit', () => {
  test('is answered E_WORKER_CRASHED naming the heap limit, and is not retried', async () => {
    const sup = start(['--workers', '2', '--worker', SOAK_WORKER], {
      workerExecArgv: ['--max-old-space-size=32'],
      retries: 2,
    });
    await sup.ready();
    const answer = await task(sup, { op: 'oom' });
    assert.ok(answer.type === 'result', JSON.stringify(answer));
    const error = expectFailure(answer, 'E_WORKER_CRASHED', /heap/i);
    assert.match(error.message, /--max-old-space-size=32/);
    // Retrying would only kill another worker the same way: one attempt, one dead worker.
    assert.equal(answer.attempts, undefined);
    // The pool refills and serves the next task.
    const next = await task(sup, { op: 'hash', n: 1, text: 'after' });
    assert.ok(next.type === 'result' && next.ok, JSON.stringify(next));
    await waitUntil(
      async () => {
        const stats = await sup.request({ type: 'admin', id: `s${++seq}`, command: 'stats' });
        const workers =
          stats.type === 'admin-result' && stats.ok
            ? (stats.value as { workers: Array<{ state: string }> }).workers
            : [];
        return workers.length === 2 && workers.every((w) => w.state === 'ready');
      },
      'pool back to 2 ready workers',
      30_000,
    );
    // Log lines travel on stdout, apart from the answers: by now the death has been logged.
    await waitUntil(() => sup.logsWith('worker exited unexpectedly').length > 0, 'the death logged');
    const deaths = sup.logsWith('worker exited unexpectedly');
    assert.equal(deaths.length, 1, JSON.stringify(deaths));
    assert.equal(deaths[0]!.signal, 'SIGABRT');
  });
});
