import pidusage from 'pidusage';

const MiB = 1024 * 1024;

/** Memory figures are reported in MiB with one decimal: finer than that is measurement noise. */
export function roundMiB(miB: number): number {
  return Math.round(miB * 10) / 10;
}

export function toMiB(bytes: number): number {
  return roundMiB(bytes / MiB);
}

/**
 * A worker's resident memory as the parent sees it (pidusage reads /proc on Linux): native memory
 * included, which is where ONNX Runtime's arenas live and what a worker's own heapUsed never shows.
 * Resolves undefined when the process is gone.
 */
export async function readRssMiB(pid: number): Promise<number | undefined> {
  try {
    // Keep pidusage's default history: with maxage 0 it re-reads forever (pidusage 4.1) and leaks fds.
    const stat = await pidusage(pid);
    return toMiB(stat.memory);
  } catch {
    return undefined;
  }
}

export function ownMemoryMiB(): { rssMiB: number; heapUsedMiB: number } {
  const usage = process.memoryUsage();
  return { rssMiB: toMiB(usage.rss), heapUsedMiB: toMiB(usage.heapUsed) };
}
