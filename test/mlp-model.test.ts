// The generated MLP model: valid ONNX that onnxruntime-node loads and runs, with outputs equal to the
// plain-JS reference forward pass. Needs `npx tsc -p tsconfig.json` first (imports the built dist/).
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';

import { InferenceSession, Tensor } from 'onnxruntime-node';

import {
  buildMlpModel,
  DEFAULT_MLP_OPTIONS,
  MLP_WIDTH,
  mlpModelByteLength,
  mlpReference,
  type MlpOptions,
} from '../dist/models/mlp.js';
import { encodeVarint, ProtoWriter } from '../dist/models/protobuf-writer.js';

const MiB = 1024 * 1024;

/** Deterministic inputs in [-1, 1) (failures reproduce), different per `seed`. */
function randomInput(batch: number, seed: number): Float32Array {
  let state = seed >>> 0 || 1;
  const x = new Float32Array(batch * MLP_WIDTH);
  for (let i = 0; i < x.length; i++) {
    state ^= state << 13;
    state ^= state >>> 17;
    state ^= state << 5;
    x[i] = (state >>> 0) / 2 ** 31 - 1;
  }
  return x;
}

async function runModel(session: InferenceSession, x: Float32Array, batch: number): Promise<Float32Array> {
  const results = await session.run({ x: new Tensor('float32', x, [batch, MLP_WIDTH]) });
  const y = results.y;
  assert.ok(y, 'output y missing');
  assert.equal(y.type, 'float32');
  assert.deepEqual(y.dims, [batch, MLP_WIDTH]);
  assert.ok(y.data instanceof Float32Array);
  return y.data;
}

interface Stats {
  maxAbs: number;
  rms: number;
  nonZeroFraction: number;
}

function stats(values: Float32Array): Stats {
  let maxAbs = 0;
  let sumSquares = 0;
  let nonZero = 0;
  for (const v of values) {
    assert.ok(Number.isFinite(v), `non-finite output ${v}`);
    maxAbs = Math.max(maxAbs, Math.abs(v));
    sumSquares += v * v;
    if (v !== 0) nonZero++;
  }
  return { maxAbs, rms: Math.sqrt(sumSquares / values.length), nonZeroFraction: nonZero / values.length };
}

/** Max abs difference; asserts it is within 1e-3 of the reference's magnitude (float32 rounding is ~1e-6). */
function assertClose(actual: Float32Array, expected: Float32Array, what: string): number {
  assert.equal(actual.length, expected.length, `${what}: length`);
  const tolerance = 1e-3 * Math.max(1, stats(expected).maxAbs);
  let maxErr = 0;
  for (let i = 0; i < expected.length; i++) maxErr = Math.max(maxErr, Math.abs(actual[i]! - expected[i]!));
  assert.ok(maxErr <= tolerance, `${what}: max abs error ${maxErr} > tolerance ${tolerance}`);
  return tolerance;
}

/** Largest difference between two rows of a [batch, MLP_WIDTH] output. */
function rowDifference(y: Float32Array, a: number, b: number): number {
  let diff = 0;
  for (let j = 0; j < MLP_WIDTH; j++) {
    diff = Math.max(diff, Math.abs(y[a * MLP_WIDTH + j]! - y[b * MLP_WIDTH + j]!));
  }
  return diff;
}

/** Outputs are real numbers, not all zero, neither exploded nor vanished, and depend on the input row. */
function assertHealthy(y: Float32Array, batch: number, tolerance: number): void {
  const s = stats(y);
  assert.ok(s.nonZeroFraction > 0.9, `only ${s.nonZeroFraction} of outputs are non-zero`);
  assert.ok(s.rms > 0.05 && s.rms < 20, `output rms ${s.rms} outside [0.05, 20]`);
  for (let row = 1; row < batch; row++) {
    const diff = rowDifference(y, 0, row);
    assert.ok(diff > 20 * tolerance, `rows 0 and ${row} differ by only ${diff}: output ignores the input?`);
  }
}

describe('protobuf writer', () => {
  const varint = (value: number | bigint): number[] => {
    const out: number[] = [];
    encodeVarint(value, out);
    return out;
  };

  test('encodes varints as the protobuf spec examples', () => {
    assert.deepEqual(varint(0), [0]);
    assert.deepEqual(varint(1), [1]);
    assert.deepEqual(varint(150), [0x96, 0x01]);
    assert.deepEqual(varint(300), [0xac, 0x02]);
    assert.deepEqual(varint(2 ** 32), [0x80, 0x80, 0x80, 0x80, 0x10]);
    assert.deepEqual(varint(Number.MAX_SAFE_INTEGER), varint(BigInt(Number.MAX_SAFE_INTEGER)));
    assert.deepEqual(varint((1n << 64n) - 1n), [...Array<number>(9).fill(0xff), 0x01]);
    // Negative int64: two's complement, always 10 bytes.
    assert.deepEqual(varint(-1), [...Array<number>(9).fill(0xff), 0x01]);
    assert.deepEqual(varint(-2n), [0xfe, ...Array<number>(8).fill(0xff), 0x01]);
    assert.throws(() => varint(2 ** 53), RangeError);
    assert.throws(() => varint(1.5), RangeError);
    assert.throws(() => varint(1n << 64n), RangeError);
  });

  test('encodes fields, nested messages and packed repeated values', () => {
    const inner = new ProtoWriter().varint(1, 150);
    const bytes = new ProtoWriter()
      .string(2, 'testing')
      .message(3, inner)
      .packedVarints(4, [3, 270, 86942])
      .bytes(5, new Uint8Array([9, 8]))
      .finish();
    assert.deepEqual(
      [...bytes],
      [
        ...[0x12, 0x07, ...Buffer.from('testing')],
        ...[0x1a, 0x03, 0x08, 0x96, 0x01],
        ...[0x22, 0x06, 0x03, 0x8e, 0x02, 0x9e, 0xa7, 0x05],
        ...[0x2a, 0x02, 0x09, 0x08],
      ],
    );
    assert.throws(() => new ProtoWriter().varint(0, 1), RangeError);
  });
});

describe('generated MLP model', () => {
  let dir: string;
  let session: InferenceSession;
  const options: MlpOptions = { weightsMiB: 4, seed: 1 };

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'mlp-model-test-'));
    const path = join(dir, 'mlp.onnx');
    await writeFile(path, buildMlpModel(options));
    session = await InferenceSession.create(path);
  });

  after(async () => {
    await session?.release();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  test('defaults are 4 MiB, seed 1', () => {
    assert.deepEqual({ ...DEFAULT_MLP_OPTIONS }, { weightsMiB: 4, seed: 1 });
    assert.deepEqual(buildMlpModel(), buildMlpModel(options));
  });

  test('is about 4 MiB on disk, and mlpModelByteLength predicts the exact size', async () => {
    const { size } = await stat(join(dir, 'mlp.onnx'));
    assert.equal(size, mlpModelByteLength(options));
    assert.ok(size > 4 * MiB && size < 4 * MiB + 16 * 1024, `size ${size}`);
  });

  test('is deterministic per seed', async () => {
    const onDisk = new Uint8Array(await readFile(join(dir, 'mlp.onnx')));
    assert.deepEqual(buildMlpModel(options), onDisk);
    const otherSeed = buildMlpModel({ ...options, seed: 2 });
    assert.equal(otherSeed.length, onDisk.length);
    assert.notDeepEqual(otherSeed, onDisk);
  });

  test('declares x and y as float32 [batch, 512]', () => {
    assert.deepEqual(session.inputNames, ['x']);
    assert.deepEqual(session.outputNames, ['y']);
    for (const [metadata, name] of [
      [session.inputMetadata, 'x'],
      [session.outputMetadata, 'y'],
    ] as const) {
      assert.equal(metadata.length, 1);
      const value = metadata[0];
      assert.ok(value?.isTensor, `${name} is not a tensor`);
      assert.equal(value.name, name);
      assert.equal(value.type, 'float32');
      assert.deepEqual(value.shape, ['batch', 512]);
    }
  });

  test('matches the JS reference for batch 1 and batch 3', async () => {
    const x1 = randomInput(1, 42);
    const y1 = await runModel(session, x1, 1);
    const tolerance = assertClose(y1, mlpReference(x1, 1, options), 'batch 1');
    assertHealthy(y1, 1, tolerance);

    // Row 0 of the batch-3 input is the batch-1 input: batching must not change its result.
    const x3 = new Float32Array(3 * MLP_WIDTH);
    x3.set(x1);
    x3.set(randomInput(2, 7), MLP_WIDTH);
    const y3 = await runModel(session, x3, 3);
    assertClose(y3, mlpReference(x3, 3, options), 'batch 3');
    assertClose(y3.subarray(0, MLP_WIDTH), y1, 'batch 3 row 0 vs batch 1');
    assertHealthy(y3, 3, tolerance);
  });

  test('the reference depends on the seed', () => {
    const x = randomInput(1, 3);
    const a = mlpReference(x, 1, { weightsMiB: 2, seed: 1 });
    const b = mlpReference(x, 1, { weightsMiB: 2, seed: 2 });
    assert.ok(rowDifference(new Float32Array([...a, ...b]), 0, 1) > 0.1);
  });

  test('64 MiB: about 64 MiB, runs, outputs finite and non-degenerate', async () => {
    const big: MlpOptions = { weightsMiB: 64, seed: 1 };
    const bytes = buildMlpModel(big);
    assert.equal(bytes.length, mlpModelByteLength(big));
    assert.ok(bytes.length > 64 * MiB && bytes.length < 64 * MiB + 256 * 1024, `size ${bytes.length}`);
    const path = join(dir, 'mlp64.onnx');
    await writeFile(path, bytes);
    const bigSession = await InferenceSession.create(path);
    try {
      const x = randomInput(3, 99);
      const y = await runModel(bigSession, x, 3);
      const tolerance = assertClose(y, mlpReference(x, 3, big), '64 layers');
      assertHealthy(y, 3, tolerance);
    } finally {
      await bigSession.release();
    }
  });

  test('rejects invalid options with RangeError', () => {
    for (const weightsMiB of [0, -1, 1.5, NaN, Infinity, 1025]) {
      assert.throws(() => buildMlpModel({ weightsMiB }), RangeError, `weightsMiB ${weightsMiB}`);
      assert.throws(() => mlpModelByteLength({ weightsMiB }), RangeError, `weightsMiB ${weightsMiB}`);
    }
    for (const seed of [-1, 0.5, 2 ** 32, NaN]) {
      assert.throws(() => buildMlpModel({ seed }), RangeError, `seed ${seed}`);
    }
    assert.throws(() => mlpReference(new Float32Array(MLP_WIDTH + 1), 1), RangeError);
    assert.throws(() => mlpReference(new Float32Array(0), 0), RangeError);
    assert.throws(() => mlpReference(new Float32Array(MLP_WIDTH), 1, { weightsMiB: 0 }), RangeError);
  });
});
