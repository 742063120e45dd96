/** Small numeric helpers for the report; every function accepts an empty input. */

export interface Distribution {
  count: number;
  /** null when count is 0. */
  median: number | null;
  p95: number | null;
  max: number | null;
  total: number;
}

/** Linear interpolation between closest ranks (the common "type 7" quantile). */
export function quantile(sorted: readonly number[], q: number): number | null {
  if (sorted.length === 0) return null;
  const pos = (sorted.length - 1) * q;
  const lo = Math.floor(pos);
  const hi = Math.ceil(pos);
  return sorted[lo]! + (sorted[hi]! - sorted[lo]!) * (pos - lo);
}

export function median(values: readonly number[]): number | null {
  return quantile(
    [...values].sort((a, b) => a - b),
    0.5,
  );
}

export function distribution(values: readonly number[]): Distribution {
  const sorted = [...values].sort((a, b) => a - b);
  return {
    count: sorted.length,
    median: round(quantile(sorted, 0.5)),
    p95: round(quantile(sorted, 0.95)),
    max: round(sorted.at(-1) ?? null),
    total: round(sorted.reduce((a, b) => a + b, 0))!,
  };
}

/** Slope of the least-squares line through (i, ys[i]); null below `minPoints` or for a flat x. */
export function slope(ys: readonly number[], minPoints = 3): number | null {
  const n = ys.length;
  if (n < minPoints) return null;
  const meanX = (n - 1) / 2;
  const meanY = ys.reduce((a, b) => a + b, 0) / n;
  let num = 0;
  let den = 0;
  for (let i = 0; i < n; i++) {
    num += (i - meanX) * (ys[i]! - meanY);
    den += (i - meanX) ** 2;
  }
  return den === 0 ? null : num / den;
}

export function round(value: number | null, digits = 2): number | null {
  if (value === null) return null;
  const f = 10 ** digits;
  return Math.round(value * f) / f;
}

export function maxOf(values: ReadonlyArray<number | undefined>): number | null {
  let best: number | null = null;
  for (const v of values) if (v !== undefined && (best === null || v > best)) best = v;
  return best;
}

/** Math.min/max without spreading: history arrays are far larger than the call-stack limit. */
export function extent(values: Iterable<number>): [number, number] | null {
  let lo = Infinity;
  let hi = -Infinity;
  for (const v of values) {
    if (v < lo) lo = v;
    if (v > hi) hi = v;
  }
  return lo > hi ? null : [lo, hi];
}
