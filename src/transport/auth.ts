import { createHash, timingSafeEqual } from 'node:crypto';

/**
 * Token comparison in constant time. Both sides are hashed first so the comparison does not leak the
 * token's length either (timingSafeEqual needs equal lengths).
 */
export function tokenMatches(expected: string, given: string): boolean {
  const a = createHash('sha256').update(expected, 'utf8').digest();
  const b = createHash('sha256').update(given, 'utf8').digest();
  return timingSafeEqual(a, b);
}
