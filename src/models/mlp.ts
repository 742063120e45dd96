// A deterministic multi-layer perceptron ONNX model, generated in-process, plus a plain-JS forward pass of
// the same network to check inference results against.
//
// Why generate instead of shipping a file: the model's weight size is the knob (a 4 MiB model for quick
// tests, 64+ MiB to make GPU memory use visible), and generation needs no Python/onnx toolchain.
//
// Network (width W = 512, L = weightsMiB layers):
//   h_0 = x                                   x: float32 [batch, 512]
//   h_i = relu(h_{i-1} @ w_i + b_i)           for i < L   (w_i: [512, 512], b_i: [512])
//   y   = h_{L-1} @ w_L + b_L                 no Relu after the last layer
// Each w_i is 512 * 512 * 4 bytes = exactly 1 MiB, so the weights total weightsMiB MiB (biases add 2 KiB
// per layer on top).

import { ProtoWriter } from './protobuf-writer.js';

export interface MlpOptions {
  /** Number of layers; each layer's weight matrix is exactly 1 MiB. Integer in [1, MLP_MAX_WEIGHTS_MIB]. */
  weightsMiB?: number;
  /** PRNG seed for the weights, integer in [0, 2^32 - 1]. */
  seed?: number;
}

/** The one place defaults live. */
export const DEFAULT_MLP_OPTIONS: Readonly<Required<MlpOptions>> = Object.freeze({ weightsMiB: 4, seed: 1 });

/** Input and output feature width. 512 * 512 float32 = 1 MiB per weight matrix. */
export const MLP_WIDTH = 512;
export const MLP_INPUT_NAME = 'x';
export const MLP_OUTPUT_NAME = 'y';
/** Symbolic name of the first (batch) dimension of input and output. */
export const MLP_BATCH_DIM = 'batch';
/**
 * Upper bound on weightsMiB: a serialized protobuf message must stay below 2 GiB, and a model this big is
 * far beyond what this generator is for.
 */
export const MLP_MAX_WEIGHTS_MIB = 1024;

/**
 * Half-width `a` of the uniform weight distribution U(-a, a).
 *
 * He/Kaiming uniform: Var(U(-a, a)) = a^2 / 3 = 2 / fan_in, which keeps the mean square of activations
 * constant through Relu layers (Relu halves it, the factor 2 restores it). Deep stacks (64 layers) then
 * neither explode nor collapse to zero; the test checks that on the real runtime.
 */
export const MLP_WEIGHT_SCALE = Math.sqrt(6 / MLP_WIDTH);
/** Biases are small so they neither dominate nor accumulate much over many layers; non-zero so Add is tested. */
export const MLP_BIAS_SCALE = 0.05;

// ONNX constants (onnx.proto).
const IR_VERSION = 8;
const OPSET_VERSION = 17;
const PRODUCER_NAME = 'gpu-supervisor';
const ELEM_TYPE_FLOAT = 1; // TensorProto.DataType.FLOAT

// Field numbers from onnx.proto, grouped by message.
const ModelField = { irVersion: 1, producerName: 2, graph: 7, opsetImport: 8 } as const;
const OperatorSetIdField = { domain: 1, version: 2 } as const;
const GraphField = { node: 1, name: 2, initializer: 5, input: 11, output: 12 } as const;
const NodeField = { input: 1, output: 2, name: 3, opType: 4 } as const;
const TensorField = { dims: 1, dataType: 2, name: 8, rawData: 9 } as const;
const ValueInfoField = { name: 1, type: 2 } as const;
const TypeField = { tensorType: 1 } as const;
const TypeTensorField = { elemType: 1, shape: 2 } as const;
const TensorShapeField = { dim: 1 } as const;
const DimensionField = { dimValue: 1, dimParam: 2 } as const;

/** Validates options and fills in defaults. Throws RangeError on anything invalid. */
export function resolveMlpOptions(options: MlpOptions = {}): Required<MlpOptions> {
  const weightsMiB = options.weightsMiB ?? DEFAULT_MLP_OPTIONS.weightsMiB;
  const seed = options.seed ?? DEFAULT_MLP_OPTIONS.seed;
  if (!Number.isInteger(weightsMiB) || weightsMiB < 1 || weightsMiB > MLP_MAX_WEIGHTS_MIB) {
    throw new RangeError(`weightsMiB must be an integer in [1, ${MLP_MAX_WEIGHTS_MIB}], got ${weightsMiB}`);
  }
  if (!Number.isInteger(seed) || seed < 0 || seed > 0xffffffff) {
    throw new RangeError(`seed must be an integer in [0, 2^32 - 1], got ${seed}`);
  }
  return { weightsMiB, seed };
}

/** mulberry32: tiny, fast, good-enough 32-bit PRNG. Returns floats in [0, 1). */
function mulberry32(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 0x100000000;
  };
}

/**
 * Per-layer seed (murmur3 finalizer over seed and layer index), so each layer can be generated on its own
 * without replaying the PRNG through all earlier layers, and neighbouring layers are uncorrelated.
 */
function layerSeed(seed: number, layer: number): number {
  let h = (seed ^ Math.imul(layer + 1, 0x9e3779b9)) >>> 0;
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

export interface MlpLayerParameters {
  /** Row-major [in = 512, out = 512], as ONNX MatMul's second operand. */
  weight: Float32Array;
  /** [512] */
  bias: Float32Array;
}

/**
 * The weights of one layer. The single source of truth for both the ONNX initializers and
 * {@link mlpReference}.
 */
export function mlpLayerParameters(seed: number, layer: number): MlpLayerParameters {
  const random = mulberry32(layerSeed(seed, layer));
  const weight = new Float32Array(MLP_WIDTH * MLP_WIDTH);
  for (let i = 0; i < weight.length; i++) weight[i] = (2 * random() - 1) * MLP_WEIGHT_SCALE;
  const bias = new Float32Array(MLP_WIDTH);
  for (let i = 0; i < bias.length; i++) bias[i] = (2 * random() - 1) * MLP_BIAS_SCALE;
  return { weight, bias };
}

const hostIsLittleEndian = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

/** TensorProto.raw_data is always little-endian; on little-endian hosts this is a zero-copy view. */
function float32LittleEndian(values: Float32Array): Uint8Array {
  if (hostIsLittleEndian) return new Uint8Array(values.buffer, values.byteOffset, values.byteLength);
  const bytes = new Uint8Array(values.length * 4);
  const view = new DataView(bytes.buffer);
  for (let i = 0; i < values.length; i++) view.setFloat32(i * 4, values[i]!, true);
  return bytes;
}

function tensorProto(name: string, dims: readonly number[], rawData: Uint8Array): ProtoWriter {
  return new ProtoWriter()
    .packedVarints(TensorField.dims, dims)
    .varint(TensorField.dataType, ELEM_TYPE_FLOAT)
    .string(TensorField.name, name)
    .bytes(TensorField.rawData, rawData);
}

function nodeProto(name: string, opType: string, inputs: readonly string[], output: string): ProtoWriter {
  const node = new ProtoWriter();
  for (const input of inputs) node.string(NodeField.input, input);
  return node.string(NodeField.output, output).string(NodeField.name, name).string(NodeField.opType, opType);
}

/** ValueInfoProto for a float32 tensor of shape [batch, MLP_WIDTH]. */
function batchedValueInfo(name: string): ProtoWriter {
  const shape = new ProtoWriter()
    .message(TensorShapeField.dim, new ProtoWriter().string(DimensionField.dimParam, MLP_BATCH_DIM))
    .message(TensorShapeField.dim, new ProtoWriter().varint(DimensionField.dimValue, MLP_WIDTH));
  const tensorType = new ProtoWriter().varint(TypeTensorField.elemType, ELEM_TYPE_FLOAT).message(TypeTensorField.shape, shape);
  return new ProtoWriter()
    .string(ValueInfoField.name, name)
    .message(ValueInfoField.type, new ProtoWriter().message(TypeField.tensorType, tensorType));
}

/**
 * Encodes the model with weight bytes supplied per layer. Shared by {@link buildMlpModel} (real weights)
 * and {@link mlpModelByteLength} (placeholder bytes of the same size), so the size can never disagree
 * with what is built.
 */
function encodeMlpModel(
  layers: number,
  layerBytes: (layer: number) => { weight: Uint8Array; bias: Uint8Array },
): ProtoWriter {
  const graph = new ProtoWriter();
  let previous = MLP_INPUT_NAME;
  for (let i = 0; i < layers; i++) {
    const last = i === layers - 1;
    const [w, b] = [`layer${i}.weight`, `layer${i}.bias`];
    const [matmulOut, addOut] = [`layer${i}.matmul`, last ? MLP_OUTPUT_NAME : `layer${i}.add`];
    graph.message(GraphField.node, nodeProto(`layer${i}/MatMul`, 'MatMul', [previous, w], matmulOut));
    graph.message(GraphField.node, nodeProto(`layer${i}/Add`, 'Add', [matmulOut, b], addOut));
    previous = addOut;
    if (!last) {
      previous = `layer${i}.relu`;
      graph.message(GraphField.node, nodeProto(`layer${i}/Relu`, 'Relu', [addOut], previous));
    }
  }
  graph.string(GraphField.name, 'mlp');
  for (let i = 0; i < layers; i++) {
    const { weight, bias } = layerBytes(i);
    graph.message(GraphField.initializer, tensorProto(`layer${i}.weight`, [MLP_WIDTH, MLP_WIDTH], weight));
    graph.message(GraphField.initializer, tensorProto(`layer${i}.bias`, [MLP_WIDTH], bias));
  }
  graph.message(GraphField.input, batchedValueInfo(MLP_INPUT_NAME));
  graph.message(GraphField.output, batchedValueInfo(MLP_OUTPUT_NAME));

  const opset = new ProtoWriter().string(OperatorSetIdField.domain, '').varint(OperatorSetIdField.version, OPSET_VERSION);
  return new ProtoWriter()
    .varint(ModelField.irVersion, IR_VERSION)
    .string(ModelField.producerName, PRODUCER_NAME)
    .message(ModelField.graph, graph)
    .message(ModelField.opsetImport, opset);
}

/** Serialized ONNX ModelProto of the MLP. Deterministic: same options, same bytes. */
export function buildMlpModel(options: MlpOptions = {}): Uint8Array {
  const { weightsMiB, seed } = resolveMlpOptions(options);
  return encodeMlpModel(weightsMiB, (layer) => {
    const { weight, bias } = mlpLayerParameters(seed, layer);
    return { weight: float32LittleEndian(weight), bias: float32LittleEndian(bias) };
  }).finish();
}

/**
 * Exact byte size of `buildMlpModel(options)`, computed without generating weights (cheap). The size
 * does not depend on the seed.
 */
export function mlpModelByteLength(options: MlpOptions = {}): number {
  const { weightsMiB } = resolveMlpOptions(options);
  const weight = new Uint8Array(MLP_WIDTH * MLP_WIDTH * 4);
  const bias = new Uint8Array(MLP_WIDTH * 4);
  return encodeMlpModel(weightsMiB, () => ({ weight, bias })).length;
}

/**
 * The model's forward pass in plain JS, for checking inference results. `x` is row-major
 * [batch, MLP_WIDTH]. Dot products accumulate in float64 and each layer's output is rounded to float32,
 * so results match a float32 runtime to within summation-order rounding (~1e-6 relative).
 */
export function mlpReference(x: Float32Array, batch: number, options: MlpOptions = {}): Float32Array {
  const { weightsMiB, seed } = resolveMlpOptions(options);
  if (!Number.isInteger(batch) || batch < 1) {
    throw new RangeError(`batch must be a positive integer, got ${batch}`);
  }
  if (x.length !== batch * MLP_WIDTH) {
    throw new RangeError(`x must have batch * ${MLP_WIDTH} = ${batch * MLP_WIDTH} elements, got ${x.length}`);
  }
  const n = MLP_WIDTH;
  let h = Float32Array.from(x);
  const acc = new Float64Array(n);
  for (let layer = 0; layer < weightsMiB; layer++) {
    const { weight, bias } = mlpLayerParameters(seed, layer);
    const relu = layer < weightsMiB - 1;
    const next = new Float32Array(batch * n);
    for (let row = 0; row < batch; row++) {
      acc.fill(0);
      // i-k-j loop order: walks `weight` row by row (contiguous) instead of column by column.
      for (let k = 0; k < n; k++) {
        const xk = h[row * n + k]!;
        if (xk === 0) continue; // common after Relu
        const offset = k * n;
        for (let j = 0; j < n; j++) acc[j]! += xk * weight[offset + j]!;
      }
      for (let j = 0; j < n; j++) {
        const v = Math.fround(Math.fround(acc[j]!) + bias[j]!);
        next[row * n + j] = relu && v < 0 ? 0 : v;
      }
    }
    h = next;
  }
  return h;
}
