// The logger a worker hands its module is made on its first line at an enabled level: a line below the
// level (a debug line in every start) must not load pino, which costs a recycled worker's start ~25 ms.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { ROOT } from './helpers.js';

const PROBE = `
import { createRequire } from 'node:module';
import { lazyLogger } from './dist/logging/logger.js';
const loaded = () => Object.keys(createRequire(import.meta.url).cache).some((p) => p.includes('/node_modules/pino/'));
const log = lazyLogger(process.argv[1], { pid: 1 });
log.debug({ n: 1 }, 'below the level');
log.trace('below the level too');
const afterDebug = loaded();
log.warn({ n: 2 }, 'at the level');
process.stderr.write(JSON.stringify({ afterDebug, afterWarn: loaded() }));
`;

function probe(level: string): { lines: Array<Record<string, unknown>>; loaded: Record<string, boolean> } {
  const run = spawnSync(process.execPath, ['--input-type=module', '-e', PROBE, level], {
    cwd: ROOT,
    encoding: 'utf8',
  });
  assert.equal(run.status, 0, run.stderr);
  const lines = run.stdout
    .split('\n')
    .filter(Boolean)
    .map((line) => JSON.parse(line) as Record<string, unknown>);
  return { lines, loaded: JSON.parse(run.stderr) as Record<string, boolean> };
}

test('a line below the level loads nothing; the first enabled line makes the logger and is written', () => {
  const info = probe('info');
  assert.deepEqual(info.loaded, { afterDebug: false, afterWarn: true });
  assert.deepEqual(
    info.lines.map((l) => [l.msg, l.n]),
    [['at the level', 2]],
  );
});

test('at level debug the debug line is made and written', () => {
  const debug = probe('debug');
  assert.deepEqual(debug.loaded, { afterDebug: true, afterWarn: true });
  assert.deepEqual(
    debug.lines.map((l) => l.msg),
    ['below the level', 'at the level'],
  );
});

test('silent: nothing loads, nothing is written', () => {
  const silent = probe('silent');
  assert.deepEqual(silent.loaded, { afterDebug: false, afterWarn: false });
  assert.deepEqual(silent.lines, []);
});
