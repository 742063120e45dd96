import { readFileSync } from 'node:fs';
import { join } from 'node:path';

interface CpuTimes {
  at: number;
  idle: number;
  total: number;
  cpus: number;
}

/** user nice system idle iowait irq softirq steal of one `cpu` line (guest time is already in user). */
function ticksOf(line: string): { idle: number; total: number } | undefined {
  const ticks = line.trim().split(/\s+/).slice(1, 9).map(Number);
  if (ticks.length < 4 || ticks.some((t) => !Number.isFinite(t))) return undefined;
  return { idle: ticks[3]! + (ticks[4] ?? 0), total: ticks.reduce((sum, t) => sum + t, 0) };
}

/**
 * /proc/stat's idle + iowait ticks, all ticks, and how many CPUs they sum: over `allowed` CPUs only
 * when given (the ones this process may run on), else the aggregate `cpu` line of all of them.
 */
export function parseProcStat(text: string, allowed?: ReadonlySet<number>): Omit<CpuTimes, 'at'> | undefined {
  const lines = text.split('\n');
  const perCpu = lines.filter((line) => /^cpu\d+\s/.test(line));
  if (allowed) {
    let idle = 0;
    let total = 0;
    let cpus = 0;
    for (const line of perCpu) {
      if (!allowed.has(Number(/^cpu(\d+)/.exec(line)![1]))) continue;
      const ticks = ticksOf(line);
      if (!ticks) return undefined;
      idle += ticks.idle;
      total += ticks.total;
      cpus++;
    }
    if (cpus > 0) return { idle, total, cpus };
  }
  const all = lines.find((line) => line.startsWith('cpu '));
  const ticks = all ? ticksOf(all) : undefined;
  return ticks ? { ...ticks, cpus: Math.max(1, perCpu.length) } : undefined;
}

/** The CPUs this process may run on (`Cpus_allowed_list` of <root>/self/status, e.g. "0-3,8"). */
export function allowedCpus(root = '/proc'): Set<number> | undefined {
  let text: string;
  try {
    text = readFileSync(join(root, 'self', 'status'), 'latin1');
  } catch {
    return undefined;
  }
  const list = /^Cpus_allowed_list:\s*(\S+)/m.exec(text)?.[1];
  if (!list) return undefined;
  const cpus = new Set<number>();
  for (const range of list.split(',')) {
    const [from, to = from] = range.split('-').map(Number);
    if (!Number.isInteger(from) || !Number.isInteger(to)) return undefined;
    for (let cpu = from!; cpu <= to!; cpu++) cpus.add(cpu);
  }
  return cpus.size > 0 ? cpus : undefined;
}

/**
 * How many of the host's cores were idle lately, from /proc/stat: one file read per call, no timer.
 * A call measures the interval since the sample before it, once that is at least `minIntervalMs`
 * long (shorter ones are a few clock ticks: noise); in between it repeats the last figure. So the
 * first figure after a quiet stretch averages that whole stretch, and the next ones are recent.
 * Undefined until two samples lie `minIntervalMs` apart, and where /proc/stat is missing. Only the
 * CPUs this process may run on count (a cpuset, `taskset`): idle cores elsewhere are no use to it.
 * A CPU quota (cgroup cpu.max) is not seen.
 */
export class CpuIdleProbe {
  private base: CpuTimes | undefined;
  private last: number | undefined;
  private readonly allowed: Set<number> | undefined;

  constructor(
    private readonly root = '/proc',
    private readonly minIntervalMs = 100,
    private readonly now: () => number = () => performance.now(),
  ) {
    this.allowed = allowedCpus(root);
  }

  private read(): CpuTimes | undefined {
    let text: string;
    try {
      text = readFileSync(join(this.root, 'stat'), 'latin1');
    } catch {
      return undefined;
    }
    const times = parseProcStat(text, this.allowed);
    return times ? { ...times, at: this.now() } : undefined;
  }

  /** Idle cores over the last measured interval (0 .. number of CPUs). */
  idleCores(): number | undefined {
    const base = this.base;
    if (base && this.now() - base.at < this.minIntervalMs) return this.last;
    const sample = this.read();
    if (!sample) return this.last;
    this.base = sample;
    if (!base) return this.last;
    const total = sample.total - base.total;
    if (total > 0) this.last = ((sample.idle - base.idle) / total) * sample.cpus;
    return this.last;
  }
}
