import { closeSync, openSync, readSync } from 'node:fs';
import { roundMiB } from './process-memory.js';

const MiB = 1024 * 1024;
const FALLBACK_PAGE_BYTES = 4096;

/**
 * The kernel's page size, read once: statm counts pages. Node has no sysconf, so it comes from the
 * first mapping's `KernelPageSize` in our own smaps (only the start of the file is read).
 */
function pageBytes(): number {
  try {
    const fd = openSync('/proc/self/smaps', 'r');
    try {
      const buffer = Buffer.alloc(4096);
      const text = buffer.toString('latin1', 0, readSync(fd, buffer, 0, buffer.length, 0));
      const kib = /KernelPageSize:\s+(\d+) kB/.exec(text)?.[1];
      return kib ? Number(kib) * 1024 : FALLBACK_PAGE_BYTES;
    } finally {
      closeSync(fd);
    }
  } catch {
    return FALLBACK_PAGE_BYTES;
  }
}

let pageSize: number | undefined;

/**
 * One process's resident memory from `/proc/<pid>/statm`, for readings many times a second: the file
 * is opened once and re-read in place (a positioned read at 0, no spawn, no pidusage, no new fd).
 * The open file belongs to that process: once it has exited a read fails rather than reading a new
 * process that reused its pid. Linux only; elsewhere `open` gives undefined.
 */
export class StatmReader {
  private readonly buffer = Buffer.alloc(128);

  private constructor(private fd: number | undefined) {}

  static open(pid: number, procDir = '/proc'): StatmReader | undefined {
    try {
      pageSize ??= pageBytes();
      return new StatmReader(openSync(`${procDir}/${pid}/statm`, 'r'));
    } catch {
      return undefined;
    }
  }

  /** RSS in MiB (one decimal), or undefined once the process is gone (or the reader closed). */
  rssMiB(): number | undefined {
    if (this.fd === undefined) return undefined;
    let length: number;
    try {
      length = readSync(this.fd, this.buffer, 0, this.buffer.length, 0);
    } catch {
      return undefined;
    }
    // "size resident shared text lib data dt", in pages: the second field.
    let i = 0;
    while (i < length && this.buffer[i] !== 0x20) i++;
    let pages = 0;
    let digits = 0;
    for (i++; i < length; i++, digits++) {
      const c = this.buffer[i]!;
      if (c < 0x30 || c > 0x39) break;
      pages = pages * 10 + (c - 0x30);
    }
    return digits > 0 ? roundMiB((pages * (pageSize ?? FALLBACK_PAGE_BYTES)) / MiB) : undefined;
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
