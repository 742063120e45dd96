import { readFileSync } from 'node:fs';
import { RereadFile } from './reread-file.js';

/**
 * Where the cgroup hierarchies are mounted (v2 at the root, v1 controllers in folders below it).
 * `GPU_SUPERVISOR_CGROUP_DIR` replaces it: a test seam, so tests can stand a directory of plain files in
 * for the kernel's (documented as such in the README).
 */
export const CGROUP_DIR_ENV = 'GPU_SUPERVISOR_CGROUP_DIR';
const CGROUP_ROOT = '/sys/fs/cgroup';

/**
 * Where our cgroup's OOM kill count lives, first found first: cgroup v2 (`0::/a/b` in /proc/self/cgroup,
 * `<root>/a/b/memory.events`), then the v1 memory controller (`4:memory:/a/b`,
 * `<root>/memory/a/b/memory.oom_control`). Both files have an `oom_kill N` line.
 */
function counterFiles(root: string): string[] {
  let lines: string[];
  try {
    lines = readFileSync('/proc/self/cgroup', 'utf8').split('\n');
  } catch {
    return [];
  }
  const under = (path: string): string => (path === '/' ? '' : path);
  const files: string[] = [];
  const v2 = lines.find((l) => l.startsWith('0::'));
  if (v2 !== undefined) files.push(`${root}${under(v2.slice(3))}/memory.events`);
  const v1 = lines
    .map((l) => /^\d+:([^:]*):(.*)$/.exec(l))
    .find((m) => m?.[1]?.split(',').includes('memory'));
  if (v1?.[2] !== undefined) files.push(`${root}/memory${under(v1[2])}/memory.oom_control`);
  return files;
}

/**
 * The `oom_kill` counter of the supervisor's cgroup (v2 `memory.events`, or v1 `memory.oom_control`):
 * how many processes the kernel's OOM killer has killed in it (workers are forked into it). The file is
 * opened once and re-read in place, so a reading costs one small read. Undefined readings where there
 * is no such file (no memory controller, not Linux).
 */
export class CgroupOomCounter {
  private constructor(
    private readonly counter: RereadFile | undefined,
    readonly file: string | undefined,
  ) {}

  static open(root: string = process.env[CGROUP_DIR_ENV] || CGROUP_ROOT): CgroupOomCounter {
    for (const file of counterFiles(root)) {
      const counter = RereadFile.open(file, 512);
      if (counter) return new CgroupOomCounter(counter, file);
      // not this hierarchy: try the next
    }
    return new CgroupOomCounter(undefined, undefined);
  }

  /** The current `oom_kill` count, or undefined where it cannot be read. */
  read(): number | undefined {
    const count = /^oom_kill (\d+)$/m.exec(this.counter?.text() ?? '')?.[1];
    return count === undefined ? undefined : Number(count);
  }

  close(): void {
    this.counter?.close();
  }
}
