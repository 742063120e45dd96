/**
 * The few glibc calls a worker makes, through koffi (FFI, no compile step): loaded once, on first use,
 * and shared. Undefined where there is no glibc (musl, macOS) or no koffi binary for the platform.
 */
export interface Libc {
  /** malloc_trim(pad): hands the free pages of every malloc arena back to the kernel. */
  mallocTrim(pad: number): number;
  /** prctl(option, arg2, 0, 0, 0). */
  prctl(option: number, arg2: number): number;
}

let libc: Promise<Libc | undefined> | undefined;

async function load(): Promise<Libc | undefined> {
  if (process.platform !== 'linux') return undefined;
  try {
    const { default: koffi } = await import('koffi');
    const lib = koffi.load('libc.so.6');
    const mallocTrim = lib.func('int malloc_trim(size_t pad)') as (pad: number) => number;
    const prctl = lib.func('int prctl(int, unsigned long, unsigned long, unsigned long, unsigned long)') as (
      ...args: number[]
    ) => number;
    return { mallocTrim, prctl: (option, arg2) => prctl(option, arg2, 0, 0, 0) };
  } catch {
    return undefined;
  }
}

export function loadLibc(): Promise<Libc | undefined> {
  libc ??= load();
  return libc;
}
