import assert from 'node:assert/strict';

// A strict reader of the Prometheus text format (0.0.4), enough to hold /metrics to it in tests.

export type Labels = Record<string, string>;
export interface Sample {
  name: string;
  labels: Labels;
  value: number;
}
export interface Family {
  name: string;
  type: string;
  help: string | undefined;
  typed: boolean;
  samples: Sample[];
}

const METRIC_NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
const TYPES = new Set(['counter', 'gauge', 'histogram', 'summary', 'untyped']);
const SUFFIXES: Record<string, string[]> = {
  histogram: ['_bucket', '_sum', '_count'],
  summary: ['', '_sum', '_count'],
};

function parseValue(text: string, where: string): number {
  // The special values as Prometheus reads them (Go's ParseFloat: any case); prom-client writes "Nan".
  if (/^[+]?inf(inity)?$/i.test(text)) return Infinity;
  if (/^-inf(inity)?$/i.test(text)) return -Infinity;
  if (/^nan$/i.test(text)) return NaN;
  assert.match(text, /^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$/, `bad value at ${where}`);
  return Number(text);
}

function parseLabels(text: string, where: string): Labels {
  const labels: Labels = {};
  let i = 0;
  while (i < text.length) {
    const name = /^[a-zA-Z_][a-zA-Z0-9_]*/.exec(text.slice(i))?.[0];
    assert.ok(name, `bad label name at ${where}`);
    assert.ok(!(name in labels), `duplicate label ${name} at ${where}`);
    i += name.length;
    assert.equal(text.slice(i, i + 2), '="', `expected =" at ${where}`);
    i += 2;
    let value = '';
    for (; text[i] !== '"'; i++) {
      assert.ok(i < text.length, `unterminated label value at ${where}`);
      if (text[i] === '\\') {
        const escaped = text[++i];
        assert.ok(escaped === '\\' || escaped === '"' || escaped === 'n', `bad escape at ${where}`);
        value += escaped === 'n' ? '\n' : escaped;
      } else value += text[i];
    }
    labels[name] = value;
    i++;
    if (i < text.length) assert.equal(text[i++], ',', `expected , at ${where}`);
  }
  return labels;
}

function parseSample(line: string, where: string): Sample {
  const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)(?: -?\d+)?$/.exec(line);
  assert.ok(m, `not a sample: ${where}`);
  return { name: m[1]!, labels: parseLabels(m[2] ?? '', where), value: parseValue(m[3]!, where) };
}

export function parseExposition(text: string): Map<string, Family> {
  assert.ok(text.endsWith('\n'), 'the exposition ends with a newline');
  const families = new Map<string, Family>();
  const series = new Set<string>();
  let current: Family | undefined;
  for (const [index, line] of text.split('\n').entries()) {
    const where = `line ${index + 1} ${JSON.stringify(line)}`;
    if (line === '') continue;
    const meta = /^# (HELP|TYPE) (\S+) ?(.*)$/.exec(line);
    if (meta) {
      const [, kind, name, rest] = meta as unknown as [string, string, string, string];
      assert.match(name, METRIC_NAME, where);
      if (current?.name !== name) assert.ok(!families.has(name), `family ${name} is split: ${where}`);
      const family = families.get(name) ?? {
        name,
        type: 'untyped',
        help: undefined,
        typed: false,
        samples: [],
      };
      assert.equal(family.samples.length, 0, `HELP/TYPE after samples: ${where}`);
      if (kind === 'HELP') {
        assert.equal(family.help, undefined, `second HELP: ${where}`);
        family.help = rest;
      } else {
        assert.ok(!family.typed && TYPES.has(rest), `bad or second TYPE: ${where}`);
        family.type = rest;
        family.typed = true;
      }
      families.set(name, family);
      current = family;
      continue;
    }
    assert.ok(!line.startsWith('#') || line.startsWith('# '), where);
    if (line.startsWith('#')) continue;
    const sample = parseSample(line, where);
    assert.ok(current?.typed, `sample before its TYPE: ${where}`);
    const suffixes = SUFFIXES[current.type] ?? [''];
    assert.ok(
      suffixes.some((s) => sample.name === current!.name + s),
      `${sample.name} does not belong to ${current.type} ${current.name}: ${where}`,
    );
    const key = `${sample.name}${JSON.stringify(Object.entries(sample.labels).sort())}`;
    assert.ok(!series.has(key), `duplicate series: ${where}`);
    series.add(key);
    if (current.type === 'counter') assert.ok(sample.value >= 0, `negative counter: ${where}`);
    current.samples.push(sample);
  }
  for (const family of families.values()) if (family.type === 'histogram') checkHistogram(family);
  return families;
}

/** Per label set: le ascending, counts non-decreasing, a +Inf bucket equal to _count, and a _sum. */
function checkHistogram(family: Family): void {
  const groups = new Map<string, { buckets: Array<[number, number]>; sum?: number; count?: number }>();
  for (const s of family.samples) {
    const { le, ...rest } = s.labels;
    const key = JSON.stringify(Object.entries(rest).sort());
    const group = groups.get(key) ?? { buckets: [] };
    groups.set(key, group);
    if (s.name.endsWith('_bucket')) {
      assert.ok(le !== undefined, `${family.name}: bucket without le`);
      group.buckets.push([parseValue(le, `${family.name} le`), s.value]);
    } else if (s.name.endsWith('_sum')) group.sum = s.value;
    else group.count = s.value;
  }
  for (const [key, g] of groups) {
    const what = `${family.name}${key}`;
    assert.ok(g.buckets.length > 0 && g.sum !== undefined && g.count !== undefined, `${what}: incomplete`);
    for (let i = 1; i < g.buckets.length; i++) {
      assert.ok(g.buckets[i]![0] > g.buckets[i - 1]![0], `${what}: le not ascending`);
      assert.ok(g.buckets[i]![1] >= g.buckets[i - 1]![1], `${what}: bucket counts decrease`);
    }
    assert.equal(g.buckets.at(-1)![0], Infinity, `${what}: no +Inf bucket`);
    assert.equal(g.buckets.at(-1)![1], g.count, `${what}: +Inf bucket != _count`);
  }
}

/** The value of the one series `name` with exactly these labels; undefined when there is none. */
export function valueOf(
  families: Map<string, Family>,
  name: string,
  labels: Labels = {},
): number | undefined {
  const family = families.get(name) ?? families.get(name.replace(/_(bucket|sum|count)$/, ''));
  const want = JSON.stringify(Object.entries(labels).sort());
  return family?.samples.find(
    (s) => s.name === name && JSON.stringify(Object.entries(s.labels).sort()) === want,
  )?.value;
}
