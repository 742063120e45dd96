// A side-by-side comparison: every variant under every load mode, interleaved over rounds, reduced to
// one markdown table with ratios against a reference variant.
import { drive, field, interleave } from './harness.mjs';
import { fmt, log, table } from './report.mjs';

/**
 * @param {object} spec
 * @param {{ name: string, create: () => Promise<object> }[]} spec.variants
 * @param {{ label: string, inflight: number, count: number }[]} spec.modes
 * @param {(i: number) => unknown} spec.payload  built once per call
 * @param {(value: unknown, i: number) => void} [spec.check]  throws on a wrong answer
 * @param {string} spec.reference  the variant the ratios divide by
 */
/**
 * No-op echo tasks at two loads, closed loop (2 in flight) and saturated (64), each answer checked:
 * the dispatch cost alone, as the dispatch and limits scenarios measure it.
 */
export function echoWorkload(n) {
  return {
    modes: [
      { label: 'closed loop', inflight: 2, count: n },
      { label: 'saturated', inflight: 64, count: n * 2 },
    ],
    payload: (i) => ({ i }),
    check: (value, i) => {
      if (value?.i !== i) throw new Error(`wrong answer for ${i}: ${JSON.stringify(value)}`);
    },
  };
}

export async function compare({ variants, modes, payload, check, reference, rounds }) {
  const byMode = [];
  for (const mode of modes) {
    log(
      `${mode.label}: ${variants.length} variants x ${rounds} rounds, ${mode.count} calls, ${mode.inflight} in flight`,
    );
    const results = await interleave(variants, {
      rounds,
      onProgress: log,
      run: (contender) =>
        drive(
          {
            call: async (i) => {
              const value = await contender.call(payload(i));
              check?.(value, i);
            },
          },
          mode,
        ),
    });
    byMode.push({ mode, results });
  }
  return {
    byMode,
    markdown: toMarkdown(byMode, reference),
    ratio: (a, b, label) => ratioOf(byMode, a, b, label),
  };
}

function ratioOf(byMode, a, b, label) {
  const entry = byMode.find((m) => m.mode.label === label);
  return field(entry.results.get(a), 'perSec').median / field(entry.results.get(b), 'perSec').median;
}

function toMarkdown(byMode, reference) {
  const sections = [];
  for (const { mode, results } of byMode) {
    const ref = field(results.get(reference), 'perSec').median;
    const rows = [...results.entries()].map(([name, rounds]) => {
      const rate = field(rounds, 'perSec');
      return [
        name,
        fmt.range(rate, fmt.rate),
        fmt.ms(field(rounds, 'p50').median),
        fmt.ms(field(rounds, 'p99').median),
        fmt.ratio(rate.median / ref),
      ];
    });
    sections.push(
      `### ${mode.label} (${mode.inflight} in flight, ${mode.count} calls per round)\n\n` +
        table(['variant', 'per s: median (min–max)', 'p50 ms', 'p99 ms', `vs ${reference}`], rows),
    );
  }
  return sections.join('\n\n');
}
