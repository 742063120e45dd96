// Markdown results with the machine they were measured on, and console progress.
import { mkdirSync, writeFileSync } from 'node:fs';
import { cpus, totalmem } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const RESULTS_DIR = join(dirname(fileURLToPath(import.meta.url)), '..', 'results');

export function machine() {
  const cpu = cpus();
  return {
    cpu: `${cpu.length} x ${cpu[0]?.model ?? 'unknown'}`,
    memoryGiB: Math.round(totalmem() / 2 ** 30),
    node: process.version,
    date: new Date().toISOString().slice(0, 10),
  };
}

export const fmt = {
  rate: (n) => (n >= 1000 ? `${(n / 1000).toFixed(1)}k` : n.toFixed(n >= 100 ? 0 : 1)),
  ms: (n) => (n >= 100 ? n.toFixed(0) : n.toFixed(2)),
  mib: (n) => n.toFixed(1),
  ratio: (n) => `${n.toFixed(2)}x`,
  range: (s, f) => `${f(s.median)} (${f(s.min)}–${f(s.max)})`,
};

export function table(header, rows) {
  const lines = [`| ${header.join(' | ')} |`, `|${header.map(() => '---').join('|')}|`];
  for (const row of rows) lines.push(`| ${row.join(' | ')} |`);
  return lines.join('\n');
}

/** Writes bench/results/<name>.md (or a quick-run copy under a separate name) and returns the path. */
export function writeResult(name, title, body, { quick }) {
  const m = machine();
  const header = [
    `# ${title}`,
    '',
    `Measured ${m.date} on ${m.cpu}, ${m.memoryGiB} GiB, Node ${m.node}${quick ? ' (quick smoke run: numbers mean little)' : ''}.`,
    name === '0-summary'
      ? 'Rerun: `npm run bench`.'
      : `Rerun: \`npm run bench -- --only ${name.replace(/^\d+-/, '')}\`.`,
    '',
    '',
  ].join('\n');
  mkdirSync(RESULTS_DIR, { recursive: true });
  const path = join(RESULTS_DIR, quick ? `quick-${name}.md` : `${name}.md`);
  writeFileSync(path, `${header}${body}\n`);
  return path;
}

export function log(line) {
  process.stderr.write(`[bench ${new Date().toISOString().slice(11, 19)}] ${line}\n`);
}
