import { closeSync, openSync, readFileSync, readSync } from 'node:fs';

/**
 * Where the cgroup v2 hierarchy is mounted. `GPU_SUPERVISOR_CGROUP_DIR` replaces it: a test seam, so
 * tests can stand a directory of plain files in for the kernel's (documented as such in the README).
 */
export const CGROUP_DIR_ENV = 'GPU_SUPERVISOR_CGROUP_DIR';
const CGROUP_ROOT = '/sys/fs/cgroup';

/** Our own cgroup v2 path ("0::/a/b" in /proc/self/cgroup), or undefined on a v1-only host. */
function ownCgroupPath(): string | undefined {
  try {
    const line = readFileSync('/proc/self/cgroup', 'utf8')
      .split('\n')
      .find((l) => l.startsWith('0::'));
    return line?.slice(3);
  } catch {
    return undefined;
  }
}

/**
 * The `oom_kill` counter of the supervisor's cgroup (`memory.events`): how many processes the
 * kernel's OOM killer has killed in it (workers are forked into it). The file is opened once and
 * re-read in place, so a reading at a worker's exit costs one small read. Undefined readings where
 * there is no such file (cgroup v1, no memory controller, not Linux).
 */
export class CgroupOomCounter {
  private readonly buffer = Buffer.alloc(512);

  private constructor(
    private fd: number | undefined,
    readonly file: string | undefined,
  ) {}

  static open(root: string = process.env[CGROUP_DIR_ENV] || CGROUP_ROOT): CgroupOomCounter {
    const path = ownCgroupPath();
    if (path === undefined) return new CgroupOomCounter(undefined, undefined);
    const file = `${root}${path === '/' ? '' : path}/memory.events`;
    try {
      return new CgroupOomCounter(openSync(file, 'r'), file);
    } catch {
      return new CgroupOomCounter(undefined, undefined);
    }
  }

  /** The current `oom_kill` count, or undefined where it cannot be read. */
  read(): number | undefined {
    if (this.fd === undefined) return undefined;
    try {
      const text = this.buffer.toString(
        'latin1',
        0,
        readSync(this.fd, this.buffer, 0, this.buffer.length, 0),
      );
      const count = /^oom_kill (\d+)$/m.exec(text)?.[1];
      return count === undefined ? undefined : Number(count);
    } catch {
      return undefined;
    }
  }

  close(): void {
    if (this.fd === undefined) return;
    try {
      closeSync(this.fd);
    } catch {
      // already closed
    }
    this.fd = undefined;
  }
}
