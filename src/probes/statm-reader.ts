import { roundMiB } from './process-memory.js';
import { RereadFile } from './reread-file.js';
import { residentBytes } from './statm.js';

const MiB = 1024 * 1024;

/**
 * One process's resident memory from `/proc/<pid>/statm`, for readings many times a second: the file
 * is opened once and re-read in place (see RereadFile), so a reading is one small read. The open file
 * belongs to that process: once it has exited a read fails rather than reading a new process that
 * reused its pid. Linux only; elsewhere `open` gives undefined.
 */
export class StatmReader {
  private constructor(private readonly statm: RereadFile) {}

  static open(pid: number, procDir = '/proc'): StatmReader | undefined {
    const statm = RereadFile.open(`${procDir}/${pid}/statm`, 128);
    return statm && new StatmReader(statm);
  }

  /** RSS in MiB (one decimal), or undefined once the process is gone (or the reader closed). */
  rssMiB(): number | undefined {
    const bytes = residentBytes(this.statm);
    return bytes === undefined ? undefined : roundMiB(bytes / MiB);
  }

  close(): void {
    this.statm.close();
  }
}
