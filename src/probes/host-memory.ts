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

/**
 * MemAvailable read at most once per `minIntervalMs` (a pre-spawn verdict is asked at every dispatch
 * while a worker nears its N): in between, the last reading.
 */
export class MemAvailableReader {
  private last: { at: number; miB: number | undefined } | undefined;

  constructor(
    private readonly root = '/proc',
    private readonly minIntervalMs = 100,
    private readonly now: () => number = () => performance.now(),
  ) {}

  miB(): number | undefined {
    const now = this.now();
    if (!this.last || now - this.last.at >= this.minIntervalMs)
      this.last = { at: now, miB: memAvailableMiB(this.root) };
    return this.last.miB;
  }
}
