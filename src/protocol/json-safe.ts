/**
 * A client that forked the supervisor with `serialization: 'json'` cannot receive TypedArrays or BigInts
 * (JSON turns a Float32Array into {"0":..} and throws on BigInt). Values bound for such a client are
 * rewritten: typed arrays become number arrays, bigints become numbers.
 *
 * A worker's value arrives through V8 serialization, which carries cycles and any depth. Those parts are
 * returned as they are rather than followed (recursing would overflow the stack and take the supervisor
 * down): the JSON channel then refuses the value and the task is answered with an error instead.
 */
const MAX_DEPTH = 1000;

export function toJsonSafe(value: unknown): unknown {
  return rewrite(value, new Set(), 0);
}

function rewrite(value: unknown, path: Set<object>, depth: number): unknown {
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
  if (value instanceof Map || value instanceof Set || value instanceof Date) return value;
  if (path.has(value) || depth >= MAX_DEPTH) return value;
  path.add(value);
  try {
    if (Array.isArray(value)) return value.map((item: unknown) => rewrite(item, path, depth + 1));
    const out: Record<string, unknown> = {};
    for (const [key, item] of Object.entries(value)) {
      // A plain assignment to "__proto__" would set the copy's prototype and drop the field.
      Object.defineProperty(out, key, {
        value: rewrite(item, path, depth + 1),
        enumerable: true,
        writable: true,
        configurable: true,
      });
    }
    return out;
  } finally {
    path.delete(value);
  }
}

/** True when a value holds binary data anywhere: the sender's channel carries V8-serialized values. */
export function containsBinary(value: unknown, depth = 0): boolean {
  if (typeof value !== 'object' || value === null || depth > 8) return false;
  if (ArrayBuffer.isView(value) || value instanceof ArrayBuffer) return true;
  const items = Array.isArray(value) ? value : Object.values(value);
  return items.some((item) => containsBinary(item, depth + 1));
}
