/**
 * The few glibc calls a worker makes, through koffi (FFI, no compile step): loaded once, on first use,
 * and shared. Undefined where there is no glibc (musl, macOS) or no koffi binary for the platform.
 * Loaded synchronously: the parent-death bond must hold before the worker does anything else.
 */
import { createRequire } from 'node:module';

export interface Libc {
  /** malloc_trim(pad): hands the free pages of every malloc arena back to the kernel. */
  mallocTrim(pad: number): number;
  /** prctl(option, arg2, 0, 0, 0). */
  prctl(option: number, arg2: number): number;
}

interface Koffi {
  load(path: string): { func(signature: string): (...args: number[]) => number };
}

let libc: Libc | undefined | null = null;

function load(): Libc | undefined {
  if (process.platform !== 'linux') return undefined;
  try {
    const koffi = createRequire(import.meta.url)('koffi') as Koffi;
    const lib = koffi.load('libc.so.6');
    const mallocTrim = lib.func('int malloc_trim(size_t pad)');
    const prctl = lib.func('int prctl(int, unsigned long, unsigned long, unsigned long, unsigned long)');
    return { mallocTrim, prctl: (option, arg2) => prctl(option, arg2, 0, 0, 0) };
  } catch {
    return undefined;
  }
}

export function loadLibc(): Libc | undefined {
  if (libc === null) libc = load();
  return libc;
}
