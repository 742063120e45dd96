/**
 * A cheap upper-bound-ish estimate of a decoded message's size, for `maxMessageBytes` on the fork channel
 * (Node has already parsed the message, so the wire length is gone). Binary data counts its byte length,
 * strings their length, other scalars 8 bytes (a double in V8 serialization), keys their length. The walk
 * stops as soon as the total passes `limit`, so a huge message costs no more than reaching the limit.
 */
export function exceedsSize(value: unknown, limit: number): boolean {
  let total = 0;
  const stack: unknown[] = [value];
  while (stack.length > 0) {
    const item = stack.pop();
    if (typeof item === 'string') total += item.length;
    else if (typeof item !== 'object' || item === null) total += 8;
    else if (item instanceof ArrayBuffer) total += item.byteLength;
    else if (ArrayBuffer.isView(item)) total += item.byteLength;
    else if (Array.isArray(item)) {
      total += 2 + item.length;
      for (const element of item as unknown[]) stack.push(element);
    } else {
      for (const [key, element] of Object.entries(item)) {
        total += key.length + 2;
        stack.push(element);
      }
    }
    if (total > limit) return true;
  }
  return false;
}
