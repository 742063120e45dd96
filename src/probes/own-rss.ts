import { RereadFile } from './reread-file.js';
import { residentBytes } from './statm.js';

/**
 * This process's resident set size in bytes, read the cheapest way the platform allows. A worker
 * reads it twice per task (before and after its cleanup): `process.memoryUsage.rss()` opens, reads
 * and closes /proc/self/stat each time, which costs more than a small model's inference. On Linux
 * this keeps /proc/self/statm open and re-reads it in one syscall; elsewhere it is Node's call.
 */
export function ownRssReader(): () => number {
  const nodes = (): number => process.memoryUsage.rss();
  const statm = process.platform === 'linux' ? RereadFile.open('/proc/self/statm', 128) : undefined;
  const first = statm && residentBytes(statm);
  // A reading far from Node's own (a page size misread) is not to be trusted: Node's call then.
  const rss = nodes();
  if (!statm || !first || Math.abs(first - rss) > rss * 0.25) {
    statm?.close();
    return nodes;
  }
  return () => residentBytes(statm) ?? nodes();
}
