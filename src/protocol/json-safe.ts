/**
 * A client that forked the supervisor with `serialization: 'json'` cannot receive TypedArrays or BigInts
 * (JSON turns a Float32Array into {"0":..} and throws on BigInt). Values bound for such a client are
 * rewritten: typed arrays become number arrays, bigints become numbers.
 */
export function toJsonSafe(value: unknown): unknown {
  if (typeof value === 'bigint') return Number(value);
  if (typeof value !== 'object' || value === null) return value;
  if (value instanceof ArrayBuffer) return Array.from(new Uint8Array(value));
  if (ArrayBuffer.isView(value)) {
    if (value instanceof DataView)
      return Array.from(new Uint8Array(value.buffer, value.byteOffset, value.byteLength));
    const out: number[] = [];
    for (const item of value as unknown as Iterable<number | bigint>) out.push(Number(item));
    return out;
  }
  if (Array.isArray(value)) return value.map(toJsonSafe);
  if (value instanceof Map || value instanceof Set || value instanceof Date) return value;
  const out: Record<string, unknown> = {};
  for (const [key, item] of Object.entries(value)) out[key] = toJsonSafe(item);
  return out;
}

/** True when a value holds binary data anywhere: the sender's channel carries V8-serialized values. */
export function containsBinary(value: unknown, depth = 0): boolean {
  if (typeof value !== 'object' || value === null || depth > 8) return false;
  if (ArrayBuffer.isView(value) || value instanceof ArrayBuffer) return true;
  const items = Array.isArray(value) ? value : Object.values(value);
  return items.some((item) => containsBinary(item, depth + 1));
}
