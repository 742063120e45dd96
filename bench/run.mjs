#!/usr/bin/env node
// `npm run bench`: every comparison of issue 6 in one process run, results in bench/results/*.md.
//   npm run bench                       the full run (several minutes on 2 cores)
//   npm run bench -- --quick            a smoke run (seconds; CI runs it so the benches cannot rot)
//   npm run bench -- --only dispatch    one scenario (comma-separated names; e.g. prespawn-dip)
//   npm run bench -- --rounds 5         rounds per comparison (default 3; 1 with --quick)
import { parseArgs } from 'node:util';
import { fmt, log, table, writeResult } from './lib/report.mjs';

const SCENARIOS = [
  'dispatch',
  'tensors',
  'inference',
  'recycling',
  'memory',
  'overhead',
  'limits',
  'prespawn-dip',
  'coldstart',
  'gpu-probe',
];

const { values } = parseArgs({
  options: {
    quick: { type: 'boolean', default: false },
    only: { type: 'string' },
    rounds: { type: 'string' },
  },
});
const quick = values.quick;
const rounds = Number(values.rounds ?? (quick ? 1 : 3));
const only = values.only ? values.only.split(',').map((s) => s.trim()) : SCENARIOS;
const unknown = only.filter((name) => !SCENARIOS.includes(name));
if (unknown.length > 0) {
  process.stderr.write(`unknown scenario ${unknown.join(', ')}; expected ${SCENARIOS.join(', ')}\n`);
  process.exit(2);
}

/** A target: `{ label, value, goal, kind: 'min' | 'max' (default 'min'), unit: 'x' | 'MiB' | '%' }`. */
function targetRows(targets, withScenario = false) {
  const show = (n, unit = 'x') => (unit === 'x' ? fmt.ratio(n) : `${n.toFixed(1)} ${unit}`);
  return table(
    [...(withScenario ? ['scenario'] : []), 'target', 'measured', 'goal', ''],
    targets.map((t) => [
      ...(withScenario ? [t.scenario] : []),
      t.label,
      show(t.value, t.unit),
      `${t.kind === 'max' ? '<=' : '>='} ${show(t.goal, t.unit)}`,
      (t.kind === 'max' ? t.value <= t.goal : t.value >= t.goal) ? 'met' : 'missed',
    ]),
  );
}

const summary = [];
const started = Date.now();
for (const [index, name] of SCENARIOS.entries()) {
  if (!only.includes(name)) continue;
  const scenario = await import(`./scenarios/${name}.mjs`);
  log(`scenario ${index + 1} ${name}: ${scenario.title}`);
  const t0 = Date.now();
  const { markdown, targets = [] } = await scenario.run({ quick, rounds });
  const targetTable = targets.length ? `\n\n### Targets\n\n${targetRows(targets)}` : '';
  const path = writeResult(`${index + 1}-${name}`, scenario.title, `${markdown}${targetTable}`, { quick });
  log(`scenario ${name} done in ${((Date.now() - t0) / 1000).toFixed(0)} s -> ${path}`);
  process.stdout.write(`\n## ${scenario.title}\n\n${markdown}${targetTable}\n`);
  summary.push(...targets.map((t) => ({ scenario: name, ...t })));
}
if (summary.length > 0 && !values.only) {
  writeResult('0-summary', 'Every target, one run', targetRows(summary, true), { quick });
}
log(`all done in ${((Date.now() - started) / 1000).toFixed(0)} s`);
// The pools' worker handles may keep the loop alive a moment after close(); the results are written.
process.exit(0);
