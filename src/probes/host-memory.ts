import { readFileSync } from 'node:fs';
import { join } from 'node:path';

/**
 * The host's MemAvailable (MiB) from `<root>/meminfo`: the kernel's estimate of what can be allocated
 * without swapping, page cache it would drop included. Undefined where there is no such file (not
 * Linux) or no such line (kernels before 3.14). `root` is /proc; tests point it at a stand-in.
 */
export function memAvailableMiB(root = '/proc'): number | undefined {
  let text: string;
  try {
    text = readFileSync(join(root, 'meminfo'), 'latin1');
  } catch {
    return undefined;
  }
  const match = /^MemAvailable:\s+(\d+)\s*kB/m.exec(text);
  return match ? Math.round((Number(match[1]) / 1024) * 10) / 10 : undefined;
}
