// Load generation and statistics shared by every scenario. Contenders are objects
// `{ name, call(i) -> Promise, close() }`; a run keeps `inflight` calls outstanding (closed loop:
// each finished call starts the next) and records each call's latency.
import { performance } from 'node:perf_hooks';

export function percentile(sorted, p) {
  if (sorted.length === 0) return NaN;
  const rank = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[rank];
}

export function summarize(values) {
  const sorted = [...values].sort((a, b) => a - b);
  return { min: sorted[0], median: percentile(sorted, 50), max: sorted.at(-1) };
}

/** Runs `count` calls with `inflight` outstanding; returns throughput and latency percentiles. */
export async function drive(contender, { count, inflight, warmup = Math.min(200, count) }) {
  for (let i = 0; i < warmup; i += inflight) {
    await Promise.all(
      Array.from({ length: Math.min(inflight, warmup - i) }, (_, k) => contender.call(i + k)),
    );
  }
  const latencies = new Float64Array(count);
  let next = 0;
  const started = performance.now();
  async function lane() {
    while (next < count) {
      const i = next++;
      const t0 = performance.now();
      await contender.call(i);
      latencies[i] = performance.now() - t0;
    }
  }
  await Promise.all(Array.from({ length: Math.min(inflight, count) }, lane));
  const seconds = (performance.now() - started) / 1000;
  const sorted = Array.from(latencies).sort((a, b) => a - b);
  return {
    perSec: count / seconds,
    p50: percentile(sorted, 50),
    p99: percentile(sorted, 99),
    max: sorted.at(-1),
    seconds,
  };
}

/**
 * Interleaves variants round by round (A B C, A B C, ...) so a slow phase of the machine hurts every
 * variant alike; each variant is created fresh per round and closed after it.
 */
export async function interleave(variants, { rounds, run, onProgress }) {
  const results = new Map(variants.map((v) => [v.name, []]));
  for (let round = 1; round <= rounds; round++) {
    for (const variant of variants) {
      const contender = await variant.create();
      try {
        const result = await run(contender, variant);
        results.get(variant.name).push(result);
        onProgress?.(`round ${round}/${rounds} ${variant.name}: ${describe(result)}`);
      } finally {
        await contender.close();
      }
    }
  }
  return results;
}

function describe(result) {
  const parts = [];
  if (result.perSec !== undefined) parts.push(`${Math.round(result.perSec)}/s`);
  if (result.p99 !== undefined) parts.push(`p99 ${result.p99.toFixed(2)} ms`);
  return parts.join(', ');
}

/** min/median/max of one field over a variant's rounds. */
export function field(rounds, key) {
  return summarize(rounds.map((r) => r[key]));
}
