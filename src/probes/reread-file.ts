import { closeSync, openSync, readSync } from 'node:fs';

/**
 * A small kernel file (/proc, /sys) opened once and re-read in place: one positioned read at 0 per
 * reading, no new fd, no spawn. The kernel regenerates the content on every read. An open /proc/<pid>
 * file belongs to that process: once it has exited a read fails, rather than reading a newcomer that
 * reused the pid.
 */
export class RereadFile {
  readonly buffer: Buffer;

  private constructor(
    private fd: number | undefined,
    bytes: number,
  ) {
    this.buffer = Buffer.alloc(bytes);
  }

  /** Undefined where the file cannot be opened (no such file, not Linux). */
  static open(path: string, bytes: number): RereadFile | undefined {
    try {
      return new RereadFile(openSync(path, 'r'), bytes);
    } catch {
      return undefined;
    }
  }

  /** Reads the file afresh into `buffer`: the bytes read, or undefined once closed or unreadable. */
  read(): number | undefined {
    if (this.fd === undefined) return undefined;
    try {
      return readSync(this.fd, this.buffer, 0, this.buffer.length, 0);
    } catch {
      return undefined;
    }
  }

  /** The content as text (latin1: these files are ASCII), or undefined as `read`. */
  text(): string | undefined {
    const length = this.read();
    return length === undefined ? undefined : this.buffer.toString('latin1', 0, length);
  }

  close(): void {
    if (this.fd === undefined) return;
    try {
      closeSync(this.fd);
    } catch {
      // already closed: nothing to give back
    }
    this.fd = undefined;
  }
}
