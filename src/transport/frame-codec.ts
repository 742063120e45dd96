/**
 * Binary frames for the local socket. A frame is a uint32 (big-endian) payload length, then the payload:
 * a uint32 header length, a UTF-8 JSON header, then raw byte sections. In the header every TypedArray,
 * Buffer or ArrayBuffer (at any depth) is replaced by `{ "$tensor": i, dtype, length }` (length in
 * elements), and section i holds its bytes, so tensors never travel as JSON number arrays.
 * BigInts become `{ "$bigint": "123" }`; a user object that itself has a `$tensor`, `$bigint` or `$esc`
 * key is wrapped as `{ "$esc": {...} }` so it cannot be mistaken for a reference.
 * Pure: no I/O. Decoding never throws; it returns a FrameError. (Splitting a stream: frame-decoder.ts.)
 */

export const FRAME_PREFIX_BYTES = 4;
/** The largest payload a uint32 length can declare. */
export const MAX_FRAME_BYTES = 0xffff_ffff;

const CTORS = {
  int8: Int8Array,
  uint8: Uint8Array,
  uint8c: Uint8ClampedArray,
  int16: Int16Array,
  uint16: Uint16Array,
  int32: Int32Array,
  uint32: Uint32Array,
  float32: Float32Array,
  float64: Float64Array,
  int64: BigInt64Array,
  uint64: BigUint64Array,
} as const;
type TypedDtype = keyof typeof CTORS;
/** `buffer` decodes to a Node Buffer, `arraybuffer` to an ArrayBuffer; the rest to their TypedArray. */
export type Dtype = TypedDtype | 'buffer' | 'arraybuffer';

const RESERVED = ['$tensor', '$bigint', '$esc'];
/** How deep a value may nest in a frame, both ways: JSON.parse and the walks must not overflow the stack. */
const MAX_NESTING = 1000;

export class FrameError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'FrameError';
  }
}

function dtypeOf(view: ArrayBufferView): Dtype | undefined {
  if (Buffer.isBuffer(view)) return 'buffer';
  for (const [name, ctor] of Object.entries(CTORS)) if (view instanceof ctor) return name as TypedDtype;
  return undefined;
}

function bytesOf(view: ArrayBufferView): Uint8Array {
  return new Uint8Array(view.buffer, view.byteOffset, view.byteLength);
}

/** Encodes one message into a complete frame (length prefix included). Throws on circular values. */
export function encodeFrame(message: unknown): Buffer {
  const sections: Uint8Array[] = [];
  const seen = new Set<object>();
  const walk = (value: unknown, depth: number): unknown => {
    // What the decoder would refuse is refused here, where the sender still hears why.
    if (depth > MAX_NESTING) throw new FrameError(`value nests deeper than ${MAX_NESTING} levels`);
    if (typeof value === 'bigint') return { $bigint: value.toString() };
    if (typeof value !== 'object' || value === null) return value;
    if (value instanceof ArrayBuffer) {
      sections.push(new Uint8Array(value));
      return { $tensor: sections.length - 1, dtype: 'arraybuffer', length: value.byteLength };
    }
    if (ArrayBuffer.isView(value)) {
      const dtype = dtypeOf(value);
      // A DataView or an exotic view (Float16Array) travels as plain bytes.
      sections.push(bytesOf(value));
      const length = dtype ? (value as unknown as { length: number }).length : value.byteLength;
      return { $tensor: sections.length - 1, dtype: dtype ?? 'uint8', length };
    }
    if (seen.has(value)) throw new FrameError('cannot encode a circular value');
    seen.add(value);
    try {
      if (Array.isArray(value))
        return value.map((item: unknown) => (item === undefined ? null : walk(item, depth + 1)));
      if (typeof (value as { toJSON?: unknown }).toJSON === 'function') return value;
      const entries: Array<[string, unknown]> = [];
      let reserved = false;
      for (const [key, item] of Object.entries(value)) {
        if (item === undefined || typeof item === 'function' || typeof item === 'symbol') continue;
        if (RESERVED.includes(key)) reserved = true;
        entries.push([key, walk(item, depth + 1)]);
      }
      // fromEntries defines own properties: a "__proto__" key stays a key.
      const out = Object.fromEntries(entries);
      return reserved ? { $esc: out } : out;
    } finally {
      seen.delete(value);
    }
  };
  const header = Buffer.from(JSON.stringify(walk(message, 0) ?? null), 'utf8');
  const sectionBytes = sections.reduce((sum, s) => sum + s.byteLength, 0);
  const payloadBytes = 4 + header.byteLength + sectionBytes;
  if (payloadBytes > MAX_FRAME_BYTES) throw new FrameError(`message of ${payloadBytes} bytes is too large`);
  const frame = Buffer.allocUnsafe(FRAME_PREFIX_BYTES + payloadBytes);
  frame.writeUInt32BE(payloadBytes, 0);
  frame.writeUInt32BE(header.byteLength, 4);
  header.copy(frame, 8);
  let offset = 8 + header.byteLength;
  for (const section of sections) {
    frame.set(section, offset);
    offset += section.byteLength;
  }
  return frame;
}

type Ref = { index: number; dtype: Dtype; length: number };

function isPlainRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function elementSize(dtype: Dtype): number {
  return dtype === 'buffer' || dtype === 'arraybuffer' ? 1 : CTORS[dtype].BYTES_PER_ELEMENT;
}

function asRef(value: Record<string, unknown>): Ref {
  const { $tensor: index, dtype, length } = value;
  if (Object.keys(value).length !== 3)
    throw new FrameError('a tensor reference has exactly $tensor, dtype, length');
  if (typeof index !== 'number' || !Number.isSafeInteger(index) || index < 0)
    throw new FrameError('bad tensor reference index');
  if (typeof dtype !== 'string' || !(dtype in CTORS || dtype === 'buffer' || dtype === 'arraybuffer'))
    throw new FrameError(`unknown tensor dtype ${JSON.stringify(dtype)}`);
  if (typeof length !== 'number' || !Number.isSafeInteger(length) || length < 0)
    throw new FrameError('bad tensor length');
  return { index, dtype: dtype as Dtype, length };
}

/** Decodes one payload (what follows the length prefix). Never throws: garbage gives a FrameError. */
export function decodePayload(
  payload: Uint8Array,
): { ok: true; message: unknown } | { ok: false; error: FrameError } {
  try {
    return { ok: true, message: decodeOrThrow(payload) };
  } catch (error) {
    return {
      ok: false,
      error:
        error instanceof FrameError
          ? error
          : new FrameError(`undecodable frame: ${(error as Error).message}`),
    };
  }
}

function decodeOrThrow(payload: Uint8Array): unknown {
  if (payload.byteLength < 4) throw new FrameError('frame too short for its header length');
  const view = new DataView(payload.buffer, payload.byteOffset, payload.byteLength);
  const headerBytes = view.getUint32(0);
  if (headerBytes > payload.byteLength - 4) throw new FrameError('header length exceeds the frame');
  let header: unknown;
  try {
    header = JSON.parse(
      new TextDecoder('utf-8', { fatal: true }).decode(payload.subarray(4, 4 + headerBytes)),
    );
  } catch (error) {
    throw new FrameError(`frame header is not JSON: ${(error as Error).message.slice(0, 120)}`);
  }
  // First pass: find every reference, so section offsets follow from the indexes.
  const refs: Ref[] = [];
  const collect = (value: unknown, depth: number): void => {
    if (depth > MAX_NESTING) throw new FrameError('frame header nests too deeply');
    if (Array.isArray(value)) for (const item of value) collect(item, depth + 1);
    else if (isPlainRecord(value)) {
      if ('$tensor' in value) refs.push(asRef(value));
      else if ('$esc' in value) for (const item of Object.values(escaped(value))) collect(item, depth + 1);
      else if (!('$bigint' in value)) for (const item of Object.values(value)) collect(item, depth + 1);
    }
  };
  collect(header, 0);
  refs.sort((a, b) => a.index - b.index);
  const offsets: number[] = [];
  let offset = 4 + headerBytes;
  refs.forEach((ref, i) => {
    if (ref.index !== i) throw new FrameError(`tensor references must be numbered 0..n-1 once each`);
    offsets.push(offset);
    offset += ref.length * elementSize(ref.dtype);
  });
  if (offset !== payload.byteLength)
    throw new FrameError(
      `frame sections hold ${payload.byteLength - 4 - headerBytes} bytes, the header declares ${offset - 4 - headerBytes}`,
    );

  const build = (value: unknown): unknown => {
    if (Array.isArray(value)) return value.map(build);
    if (!isPlainRecord(value)) return value;
    if ('$tensor' in value) return section(payload, asRef(value), offsets);
    if ('$bigint' in value) {
      const digits = value.$bigint;
      if (Object.keys(value).length !== 1 || typeof digits !== 'string' || !/^-?\d{1,400}$/.test(digits))
        throw new FrameError('bad $bigint value');
      return BigInt(digits);
    }
    const source = '$esc' in value ? escaped(value) : value;
    const out: Record<string, unknown> = {};
    for (const [key, item] of Object.entries(source)) {
      // JSON.parse makes "__proto__" an own key; defining it keeps it one (no prototype change).
      Object.defineProperty(out, key, {
        value: build(item),
        enumerable: true,
        writable: true,
        configurable: true,
      });
    }
    return out;
  };
  return build(header);
}

function escaped(value: Record<string, unknown>): Record<string, unknown> {
  const inner = value.$esc;
  if (Object.keys(value).length !== 1 || !isPlainRecord(inner)) throw new FrameError('bad $esc value');
  return inner;
}

/** A fresh, aligned copy: the frame buffer is not kept alive by the values decoded from it. */
function section(payload: Uint8Array, ref: Ref, offsets: readonly number[]): unknown {
  const start = offsets[ref.index]!;
  const bytes = ref.length * elementSize(ref.dtype);
  const copy = new ArrayBuffer(bytes);
  new Uint8Array(copy).set(payload.subarray(start, start + bytes));
  if (ref.dtype === 'arraybuffer') return copy;
  if (ref.dtype === 'buffer') return Buffer.from(copy);
  return new CTORS[ref.dtype](copy);
}
