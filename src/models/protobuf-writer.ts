// Minimal protobuf wire-format encoder: just enough to serialize an ONNX ModelProto.
//
// Why hand-written: the project needs one small generated test model, and pulling in protobufjs plus the
// ONNX schema for that would be a large dependency for ~100 lines of encoding. Only the encoding side is
// implemented; there is no schema, the caller supplies field numbers.
//
// Wire format recap (https://protobuf.dev/programming-guides/encoding/):
//   every field = tag varint (field_number << 3 | wire_type) followed by the payload;
//   wire type 0 = varint (ints, enums, bools), 2 = length-delimited (strings, bytes, sub-messages, packed
//   repeated scalars). Wire types 1 and 5 (fixed 64/32-bit) are not needed here.

const WIRE_VARINT = 0;
const WIRE_LENGTH_DELIMITED = 2;

/** Largest field number protobuf allows (2^29 - 1). */
const MAX_FIELD_NUMBER = 0x1fffffff;

const MAX_UINT64 = (1n << 64n) - 1n;
const MIN_INT64 = -(1n << 63n);

const utf8 = new TextEncoder();

/**
 * Appends the varint encoding of `value` to `out`.
 *
 * Numbers must be safe integers; bigints cover the full int64/uint64 range. Negative values are encoded
 * the way protobuf encodes negative int64 (two's complement, always 10 bytes), so `-1` round-trips
 * through an `int64` field.
 */
export function encodeVarint(value: number | bigint, out: number[]): void {
  if (typeof value === 'number') {
    if (!Number.isSafeInteger(value)) {
      throw new RangeError(`varint: ${value} is not a safe integer (use a bigint for 64-bit values)`);
    }
    if (value < 0) {
      encodeVarint(BigInt(value), out);
      return;
    }
    // Division instead of bit operators: JS bitwise ops truncate to 32 bits, values here may need 53.
    let v = value;
    while (v >= 0x80) {
      out.push((v % 0x80) | 0x80);
      v = Math.floor(v / 0x80);
    }
    out.push(v);
    return;
  }
  if (value > MAX_UINT64 || value < MIN_INT64) {
    throw new RangeError(`varint: ${value} does not fit in 64 bits`);
  }
  let v = BigInt.asUintN(64, value); // two's complement for negative int64
  while (v >= 0x80n) {
    out.push(Number(v & 0x7fn) | 0x80);
    v >>= 7n;
  }
  out.push(Number(v));
}

/**
 * Builds one message as a list of byte chunks.
 *
 * Small scalar bytes are collected in `pending` and flushed into a chunk before any large payload is
 * appended; large payloads (tensor raw data, nested messages) are kept by reference, so a 64 MiB model
 * is copied exactly once, in {@link ProtoWriter.finish}, instead of once per nesting level.
 */
export class ProtoWriter {
  private readonly chunks: Uint8Array[] = [];
  private pending: number[] = [];
  private byteLength = 0;

  /** Encoded size so far, in bytes (valid without calling {@link finish}). */
  get length(): number {
    return this.byteLength + this.pending.length;
  }

  /** Varint field (int32/int64/uint64/enum/bool). */
  varint(field: number, value: number | bigint): this {
    this.tag(field, WIRE_VARINT);
    encodeVarint(value, this.pending);
    return this;
  }

  /** Length-delimited field holding raw bytes. The array is kept by reference: don't mutate it later. */
  bytes(field: number, data: Uint8Array): this {
    this.tag(field, WIRE_LENGTH_DELIMITED);
    encodeVarint(data.length, this.pending);
    this.append(data);
    return this;
  }

  /** Length-delimited field holding a UTF-8 string. */
  string(field: number, value: string): this {
    return this.bytes(field, utf8.encode(value));
  }

  /** Length-delimited field holding a nested message. `message` must not be written to afterwards. */
  message(field: number, message: ProtoWriter): this {
    this.tag(field, WIRE_LENGTH_DELIMITED);
    encodeVarint(message.length, this.pending);
    message.flush();
    for (const chunk of message.chunks) this.append(chunk);
    return this;
  }

  /**
   * Packed repeated varint field (e.g. `repeated int64 dims`): one length-delimited field whose payload is
   * the concatenated varints. Protobuf parsers must accept the packed form even for proto2 fields that
   * were not declared `[packed = true]`, as ONNX's are.
   */
  packedVarints(field: number, values: readonly (number | bigint)[]): this {
    const payload: number[] = [];
    for (const value of values) encodeVarint(value, payload);
    return this.bytes(field, Uint8Array.from(payload));
  }

  /** Concatenates everything written into one buffer. */
  finish(): Uint8Array {
    this.flush();
    const out = new Uint8Array(this.byteLength);
    let offset = 0;
    for (const chunk of this.chunks) {
      out.set(chunk, offset);
      offset += chunk.length;
    }
    return out;
  }

  private tag(field: number, wireType: number): void {
    if (!Number.isInteger(field) || field < 1 || field > MAX_FIELD_NUMBER) {
      throw new RangeError(`protobuf field number must be an integer in [1, ${MAX_FIELD_NUMBER}]: ${field}`);
    }
    // Multiplication, not <<: field numbers up to 2^29 would overflow a 32-bit shift.
    encodeVarint(field * 8 + wireType, this.pending);
  }

  private append(data: Uint8Array): void {
    this.flush();
    if (data.length === 0) return;
    this.chunks.push(data);
    this.byteLength += data.length;
  }

  private flush(): void {
    if (this.pending.length === 0) return;
    this.chunks.push(Uint8Array.from(this.pending));
    this.byteLength += this.pending.length;
    this.pending = [];
  }
}
