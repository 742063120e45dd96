import { readFileSync } from 'node:fs';
import { join } from 'node:path';

interface CpuTimes {
  at: number;
  idle: number;
  total: number;
  cpus: number;
}

/** The aggregate `cpu` line of /proc/stat: idle + iowait ticks, all ticks, and how many CPUs it sums. */
export function parseProcStat(text: string): Omit<CpuTimes, 'at'> | undefined {
  const lines = text.split('\n');
  const all = lines.find((line) => line.startsWith('cpu '));
  if (!all) return undefined;
  // user nice system idle iowait irq softirq steal (guest, guest_nice are already in user and nice).
  const ticks = all.trim().split(/\s+/).slice(1, 9).map(Number);
  if (ticks.length < 4 || ticks.some((t) => !Number.isFinite(t))) return undefined;
  const cpus = lines.filter((line) => /^cpu\d+\s/.test(line)).length;
  return {
    idle: ticks[3]! + (ticks[4] ?? 0),
    total: ticks.reduce((sum, t) => sum + t, 0),
    cpus: Math.max(1, cpus),
  };
}

/**
 * How many of the host's cores were idle lately, from /proc/stat: one file read per call, no timer.
 * A call measures the interval since the sample before it, once that is at least `minIntervalMs`
 * long (shorter ones are a few clock ticks: noise); in between it repeats the last figure. So the
 * first figure after a quiet stretch averages that whole stretch, and the next ones are recent.
 * Undefined until two samples lie `minIntervalMs` apart, and where /proc/stat is missing.
 */
export class CpuIdleProbe {
  private base: CpuTimes | undefined;
  private last: number | undefined;

  constructor(
    private readonly root = '/proc',
    private readonly minIntervalMs = 100,
    private readonly now: () => number = () => performance.now(),
  ) {}

  private read(): CpuTimes | undefined {
    let text: string;
    try {
      text = readFileSync(join(this.root, 'stat'), 'latin1');
    } catch {
      return undefined;
    }
    const times = parseProcStat(text);
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
