/**
 * Job data and results <-> what BullMQ stores. BullMQ keeps both as JSON strings, where a Float32Array
 * would become {"0":..,"1":..} (about 20 bytes per element) and a BigInt would throw. Binary values are
 * stored instead as base64 of their raw bytes under a type tag: 4/3 of the raw size, plus a few dozen
 * bytes per array. msgpack would not help, since its bytes would still have to be text inside BullMQ's
 * JSON.
 */
import { ErrorCode, SupervisorError } from '../protocol/errors.js';

/** The tag key; a caller's own object using it is wrapped, so decoding never misreads user data. */
const TAG = '$gs';

const TYPED = {
  Int8Array,
  Uint8Array,
  Uint8ClampedArray,
  Int16Array,
  Uint16Array,
  Int32Array,
  Uint32Array,
  Float32Array,
  Float64Array,
  BigInt64Array,
  BigUint64Array,
} as const;
type TypedName = keyof typeof TYPED;

type Tagged =
  | { [TAG]: 'bin'; t: TypedName | 'ArrayBuffer'; b64: string }
  | { [TAG]: 'bigint'; v: string }
  | { [TAG]: 'obj'; v: Record<string, unknown> };

/** What a producer puts in a job: the payload plus the task options that travel with it. */
export interface JobEnvelope {
  [TAG]: 1;
  payload: unknown;
  timeoutMs?: number;
}

function typedName(view: ArrayBufferView): TypedName | undefined {
  // Buffer and other Uint8Array subclasses travel as Uint8Array.
  for (const name of Object.keys(TYPED) as TypedName[]) if (view instanceof TYPED[name]) return name;
  return undefined;
}

function bytesOf(view: ArrayBufferView): Buffer {
  return Buffer.from(view.buffer, view.byteOffset, view.byteLength);
}

/** Replaces binary values (and bigints) anywhere in `value` by tagged base64 records. */
export function encodeValue(value: unknown): unknown {
  return encode(value, new Set(), 0);
}

/** How deep a value may nest: what cannot be walked is refused, never a stack overflow retried. */
const MAX_NESTING = 1000;

function encode(value: unknown, path: Set<object>, depth: number): unknown {
  if (typeof value === 'bigint') return { [TAG]: 'bigint', v: value.toString() } satisfies Tagged;
  if (typeof value !== 'object' || value === null) return value;
  if (value instanceof ArrayBuffer) {
    return { [TAG]: 'bin', t: 'ArrayBuffer', b64: Buffer.from(value).toString('base64') } satisfies Tagged;
  }
  if (ArrayBuffer.isView(value)) {
    const t = typedName(value) ?? 'Uint8Array'; // DataView: its bytes
    return { [TAG]: 'bin', t, b64: bytesOf(value).toString('base64') } satisfies Tagged;
  }
  if (depth >= MAX_NESTING)
    throw new SupervisorError(ErrorCode.BAD_REQUEST, `value nests deeper than ${MAX_NESTING} levels`);
  if (path.has(value)) throw new SupervisorError(ErrorCode.BAD_REQUEST, 'value is circular');
  // As JSON would store it (a Date as its ISO string), rather than as an empty object.
  const toJSON = (value as { toJSON?: unknown }).toJSON;
  if (typeof toJSON === 'function') return encode(toJSON.call(value), path, depth + 1);
  path.add(value);
  try {
    if (Array.isArray(value)) return value.map((item: unknown) => encode(item, path, depth + 1));
    const out: Record<string, unknown> = {};
    for (const [key, item] of Object.entries(value)) define(out, key, encode(item, path, depth + 1));
    return TAG in out ? ({ [TAG]: 'obj', v: out } satisfies Tagged) : out;
  } finally {
    path.delete(value);
  }
}

/** Sets an own key, "__proto__" included (a plain assignment would set the prototype and drop it). */
function define(out: Record<string, unknown>, key: string, value: unknown): void {
  Object.defineProperty(out, key, { value, enumerable: true, writable: true, configurable: true });
}

function decodeBinary(t: unknown, b64: unknown): unknown {
  if (typeof b64 !== 'string') throw new SupervisorError(ErrorCode.BAD_REQUEST, 'binary value without b64');
  const bytes = Buffer.from(b64, 'base64');
  // A fresh, aligned buffer: a Float64Array cannot start at an odd offset of Node's Buffer pool.
  const buffer = new ArrayBuffer(bytes.byteLength);
  new Uint8Array(buffer).set(bytes);
  if (t === 'ArrayBuffer') return buffer;
  if (typeof t !== 'string' || !(t in TYPED)) {
    throw new SupervisorError(ErrorCode.BAD_REQUEST, `unknown binary type ${JSON.stringify(t)}`);
  }
  const Ctor = TYPED[t as TypedName];
  if (bytes.byteLength % Ctor.BYTES_PER_ELEMENT !== 0) {
    throw new SupervisorError(ErrorCode.BAD_REQUEST, `${t}: ${bytes.byteLength} bytes is not whole elements`);
  }
  return new Ctor(buffer);
}

/** The inverse of encodeValue; a malformed tag is E_BAD_REQUEST. */
export function decodeValue(value: unknown): unknown {
  if (typeof value !== 'object' || value === null) return value;
  if (Array.isArray(value)) return value.map(decodeValue);
  const record = value as Record<string, unknown>;
  switch (record[TAG]) {
    case undefined:
      break;
    case 'bin':
      return decodeBinary(record.t, record.b64);
    case 'bigint':
      if (typeof record.v !== 'string' || !/^-?\d+$/.test(record.v)) {
        throw new SupervisorError(ErrorCode.BAD_REQUEST, 'bigint value is not an integer string');
      }
      return BigInt(record.v);
    case 'obj':
      return decodeObject(record.v);
    default:
      throw new SupervisorError(ErrorCode.BAD_REQUEST, `unknown ${TAG} tag ${JSON.stringify(record[TAG])}`);
  }
  return decodeObject(record);
}

function decodeObject(value: unknown): Record<string, unknown> {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new SupervisorError(ErrorCode.BAD_REQUEST, 'wrapped object is not an object');
  }
  const out: Record<string, unknown> = {};
  for (const [key, item] of Object.entries(value)) define(out, key, decodeValue(item));
  return out;
}

/** Bytes BullMQ will store for `data` (it JSON-stringifies job data and return values). */
export function storedBytes(data: unknown): number {
  return Buffer.byteLength(JSON.stringify(data) ?? 'null');
}

/** Builds a job's data; a payload over `maxBytes` is E_BAD_REQUEST before anything reaches Redis. */
export function encodeJob(payload: unknown, options: { timeoutMs?: number; maxBytes: number }): JobEnvelope {
  const envelope: JobEnvelope = { [TAG]: 1, payload: encodeValue(payload) };
  if (options.timeoutMs !== undefined) envelope.timeoutMs = options.timeoutMs;
  checkSize(envelope, options.maxBytes, 'job data');
  return envelope;
}

export function checkSize(data: unknown, maxBytes: number, what: string): void {
  const bytes = storedBytes(data);
  if (bytes > maxBytes) {
    throw new SupervisorError(
      ErrorCode.BAD_REQUEST,
      `${what} is ${bytes} bytes once encoded, over maxMessageBytes (${maxBytes})`,
    );
  }
}

/**
 * A job's data -> the task. Jobs from other producers (plain JSON, any language) carry no envelope:
 * their data is the payload itself.
 */
export function decodeJob(data: unknown): { payload: unknown; timeoutMs?: number } {
  const record = data as Partial<JobEnvelope> | null;
  if (typeof record !== 'object' || record === null || record[TAG] !== 1)
    return { payload: decodeValue(data) };
  const timeoutMs = record.timeoutMs;
  if (timeoutMs !== undefined && typeof timeoutMs !== 'number') {
    throw new SupervisorError(ErrorCode.BAD_REQUEST, 'job timeoutMs must be a number');
  }
  return { payload: decodeValue(record.payload), ...(timeoutMs === undefined ? {} : { timeoutMs }) };
}
