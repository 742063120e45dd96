import { RereadFile } from './reread-file.js';

const FALLBACK_PAGE_BYTES = 4096;
let pageSize: number | undefined;

/**
 * The kernel's page size, read once: statm counts pages. Node has no sysconf, so it comes from the
 * first mapping's `KernelPageSize` in our own smaps (only the start of the file is read).
 */
export function pageBytes(): number {
  if (pageSize !== undefined) return pageSize;
  const smaps = RereadFile.open('/proc/self/smaps', 4096);
  const kib = /KernelPageSize:\s+(\d+) kB/.exec(smaps?.text() ?? '')?.[1];
  smaps?.close();
  pageSize = kib ? Number(kib) * 1024 : FALLBACK_PAGE_BYTES;
  return pageSize;
}

/**
 * A process's resident memory in bytes from its statm file ("size resident shared text lib data dt",
 * in pages: the second field), parsed in the buffer without making a string; undefined when it cannot
 * be read (the process is gone, the file closed).
 */
export function residentBytes(statm: RereadFile): number | undefined {
  const length = statm.read();
  if (length === undefined) return undefined;
  const buffer = statm.buffer;
  let i = 0;
  while (i < length && buffer[i] !== 0x20) i++;
  let pages = 0;
  let digits = 0;
  for (i++; i < length; i++, digits++) {
    const c = buffer[i]!;
    if (c < 0x30 || c > 0x39) break;
    pages = pages * 10 + (c - 0x30);
  }
  return digits > 0 ? pages * pageBytes() : undefined;
}
