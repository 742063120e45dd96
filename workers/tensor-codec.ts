/**
 * Payload tensors <-> onnxruntime tensors, checked against the session's own input metadata so that
 * every mistake comes back as E_BAD_REQUEST naming the input and what was expected.
 */
import { Tensor, type InferenceSession } from 'onnxruntime-node';
import { TaskError } from 'gpu-supervisor/worker';

export const DTYPES = ['float32', 'int64', 'int32', 'uint8', 'bool'] as const;
export type Dtype = (typeof DTYPES)[number];

export interface TensorPayload {
  type: Dtype;
  dims: number[];
  data: ArrayLike<number | bigint | boolean>;
}

const TYPED: Record<Dtype, { name: string; check: (v: unknown) => boolean }> = {
  float32: { name: 'Float32Array', check: (v) => v instanceof Float32Array },
  int64: { name: 'BigInt64Array', check: (v) => v instanceof BigInt64Array },
  int32: { name: 'Int32Array', check: (v) => v instanceof Int32Array },
  uint8: { name: 'Uint8Array', check: (v) => v instanceof Uint8Array },
  bool: { name: 'Uint8Array', check: (v) => v instanceof Uint8Array },
};

const MAX_ELEMENTS = 2 ** 31 - 1;
const INT64_MIN = -(2n ** 63n);
const INT64_MAX = 2n ** 63n - 1n;

function bad(message: string): TaskError {
  return new TaskError('E_BAD_REQUEST', message);
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value) && !ArrayBuffer.isView(value);
}

/** A client's value in a message: bounded, and total (JSON.stringify throws on BigInts and cycles). */
function show(value: unknown, max = 80): string {
  let text: string;
  try {
    text =
      JSON.stringify(value, (_key, v: unknown) => (typeof v === 'bigint' ? `${v}n` : v)) ?? String(value);
  } catch {
    text = Object.prototype.toString.call(value);
  }
  return text.length > max ? `${text.slice(0, max - 1)}…` : text;
}

function describeShape(shape: readonly (number | string)[]): string {
  return `[${shape.map((d) => (typeof d === 'string' ? d : String(d))).join(', ')}]`;
}

function checkDims(
  name: string,
  dims: unknown,
  expected: readonly (number | string)[] | undefined,
): number[] {
  if (!Array.isArray(dims)) throw bad(`input "${name}": dims must be an array of non-negative integers`);
  let elements = 1;
  for (const d of dims) {
    if (typeof d !== 'number' || !Number.isSafeInteger(d) || d < 0) {
      throw bad(`input "${name}": dims ${show(dims)} must be non-negative integers`);
    }
    elements *= d;
    if (elements > MAX_ELEMENTS) {
      throw bad(
        `input "${name}": dims ${show(dims)} describe more than ${MAX_ELEMENTS} elements (the most a tensor may hold)`,
      );
    }
  }
  if (expected) {
    const fits =
      expected.length === dims.length &&
      expected.every((want, i) => typeof want !== 'number' || want < 0 || want === dims[i]);
    if (!fits) {
      throw bad(
        `input "${name}": dims ${show(dims)} do not match the model's shape ${describeShape(expected)}`,
      );
    }
  }
  return dims as number[];
}

/** Number arrays (JSON clients) become the typed array the dtype needs; values are range-checked. */
function toTypedData(name: string, type: Dtype, data: unknown, length: number): Tensor['data'] {
  if (ArrayBuffer.isView(data)) {
    if (!TYPED[type].check(data)) {
      throw bad(
        `input "${name}": ${type} data must be a ${TYPED[type].name} or an array of numbers, got ${data.constructor.name}`,
      );
    }
    if ((data as unknown as ArrayLike<unknown>).length !== length) {
      throw bad(
        `input "${name}": data has ${(data as unknown as ArrayLike<unknown>).length} elements, dims need ${length}`,
      );
    }
    // A Uint8Array is a valid bool carrier only if it holds 0s and 1s: ORT would read 2 as true silently.
    if (type === 'bool') {
      const i = (data as Uint8Array).findIndex((v) => v > 1);
      if (i >= 0) throw bad(`input "${name}": element ${i} is not a bool value (0 or 1)`);
    }
    return data as unknown as Tensor['data'];
  }
  if (!Array.isArray(data)) throw bad(`input "${name}": data must be an array or a typed array`);
  if (data.length !== length)
    throw bad(`input "${name}": data has ${data.length} elements, dims need ${length}`);
  switch (type) {
    case 'float32': {
      const out = new Float32Array(length);
      for (let i = 0; i < length; i++) {
        const v: unknown = data[i];
        if (typeof v !== 'number') throw bad(`input "${name}": element ${i} is not a number`);
        out[i] = v;
      }
      return out;
    }
    case 'int64': {
      const out = new BigInt64Array(length);
      for (let i = 0; i < length; i++) {
        const v: unknown = data[i];
        // A BigInt64Array silently wraps a bigint outside int64: that would be a different number.
        if (typeof v === 'bigint' && v >= INT64_MIN && v <= INT64_MAX) out[i] = v;
        else if (typeof v === 'number' && Number.isSafeInteger(v)) out[i] = BigInt(v);
        else throw bad(`input "${name}": element ${i} is not an int64 value (a safe integer or a bigint)`);
      }
      return out;
    }
    case 'int32':
    case 'uint8':
    case 'bool': {
      const [min, max] = type === 'int32' ? [-(2 ** 31), 2 ** 31 - 1] : type === 'uint8' ? [0, 255] : [0, 1];
      const out = type === 'int32' ? new Int32Array(length) : new Uint8Array(length);
      for (let i = 0; i < length; i++) {
        const raw: unknown = data[i];
        const v = type === 'bool' && typeof raw === 'boolean' ? Number(raw) : raw;
        if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) {
          throw bad(`input "${name}": element ${i} is not a ${type} value`);
        }
        out[i] = v;
      }
      return out;
    }
  }
}

function metadataOf(
  session: InferenceSession,
  name: string,
): { type: string; shape: readonly (number | string)[] } | undefined {
  const meta = session.inputMetadata.find((m) => m.name === name);
  return meta && meta.isTensor ? { type: meta.type, shape: meta.shape } : undefined;
}

/** Builds the feeds for `session` from a payload's `inputs`, or throws E_BAD_REQUEST saying what is wrong. */
export function toFeeds(model: string, session: InferenceSession, inputs: unknown): Record<string, Tensor> {
  if (!isPlainObject(inputs)) throw bad(`"inputs" must be an object of tensors keyed by input name`);
  const expectedNames = session.inputNames;
  for (const name of Object.keys(inputs)) {
    if (!expectedNames.includes(name)) {
      throw bad(`unknown input ${show(name)} for model "${model}"; it takes ${expectedNames.join(', ')}`);
    }
  }
  const feeds: Record<string, Tensor> = {};
  for (const name of expectedNames) {
    const meta = metadataOf(session, name);
    const given = inputs[name];
    if (given === undefined) {
      const want = meta ? ` (${meta.type} ${describeShape(meta.shape)})` : '';
      throw bad(`missing input "${name}"${want} for model "${model}"`);
    }
    if (!isPlainObject(given)) throw bad(`input "${name}" must be { type, dims, data }`);
    const type = given.type;
    if (typeof type !== 'string' || !(DTYPES as readonly string[]).includes(type)) {
      throw bad(`input "${name}": type ${show(type)} is not one of ${DTYPES.join(', ')}`);
    }
    if (meta && meta.type !== type)
      throw bad(`input "${name}": type ${type} given, the model expects ${meta.type}`);
    const dims = checkDims(name, given.dims, meta?.shape);
    const length = dims.reduce((a, b) => a * b, 1);
    feeds[name] = new Tensor(
      type as Dtype,
      toTypedData(name, type as Dtype, given.data, length) as never,
      dims,
    );
  }
  return feeds;
}

/** Output tensors as plain { type, dims, data } (data stays a typed array; the transport adapts it). */
export function fromOutputs(
  outputs: Record<string, Tensor>,
): Record<string, { type: string; dims: number[]; data: unknown }> {
  const plain: Record<string, { type: string; dims: number[]; data: unknown }> = {};
  for (const [name, tensor] of Object.entries(outputs)) {
    plain[name] = { type: tensor.type, dims: [...tensor.dims], data: tensor.data };
  }
  return plain;
}
