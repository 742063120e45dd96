// scripts/check-layers.mjs (run by `npm run lint`) as lint runs it: a real process over a real source tree,
// here small trees written for the test, so each kind of reference is shown to count.
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';

const SCRIPT = join(import.meta.dirname, '..', 'scripts', 'check-layers.mjs');
const roots: string[] = [];

/** Writes `files` (path -> source) under a fresh src/ and runs the check on it. */
function check(files: Record<string, string>): { code: number; out: string } {
  const root = mkdtempSync(join(tmpdir(), 'check-layers-'));
  roots.push(root);
  const src = join(root, 'src');
  for (const [path, text] of Object.entries(files)) {
    mkdirSync(dirname(join(src, path)), { recursive: true });
    writeFileSync(join(src, path), text);
  }
  try {
    const stdout = execFileSync(process.execPath, [SCRIPT, src], { encoding: 'utf8', stdio: 'pipe' });
    return { code: 0, out: stdout };
  } catch (error) {
    const e = error as { status: number; stdout: string; stderr: string };
    return { code: e.status, out: e.stdout + e.stderr };
  }
}

after(() => {
  for (const root of roots) rmSync(root, { recursive: true, force: true });
});

describe('check-layers', () => {
  test('a layered tree passes', () => {
    const result = check({
      'index.ts': "export { a } from './a/a.js';\n",
      'a/a.ts': "import { b } from '../b/b.js';\nexport const a = b + 1;\n",
      'a/helper.ts': "import { a } from './a.js';\nexport const twice = a * 2;\n",
      'b/b.ts': "import type { Stats } from 'node:fs';\nexport const b = 1;\nexport type S = Stats;\n",
    });
    assert.equal(result.code, 0, result.out);
    assert.match(result.out, /no import cycle among 4 files in 3 folder nodes/);
  });

  test('a type-only import and an export-from close a folder cycle, with the lines that make it', () => {
    const result = check({
      'a/a.ts': "import type { B } from '../b/b.js';\nexport interface A {\n  b: B;\n}\n",
      'b/b.ts': "export type { A } from '../a/a.js';\nexport interface B {\n  n: number;\n}\n",
    });
    assert.equal(result.code, 1, result.out);
    assert.match(result.out, /folder cycle: \{a\/, b\/\}/);
    assert.match(result.out, /a\/a\.ts:1 -> b\/b\.ts/);
    assert.match(result.out, /b\/b\.ts:1 -> a\/a\.ts/);
  });

  test('a src/*.ts file is a node of its own, and nested folders belong to their top folder', () => {
    const result = check({
      'events.ts': "import type { State } from './pool/runtime/state.js';\nexport type E = State;\n",
      'pool/runtime/state.ts': "import type { E } from '../../events.js';\nexport type State = E | 'idle';\n",
    });
    assert.equal(result.code, 1, result.out);
    assert.match(result.out, /folder cycle: \{events\.ts, pool\/\}/);
  });

  test('import() in a type and a dynamic import close a file cycle inside one folder', () => {
    const result = check({
      'h/store.ts': "export type Log = import('./outage.js').Outage;\nexport const store = 1;\n",
      'h/outage.ts':
        "export interface Outage {\n  n: number;\n}\nexport const load = () => import('./store.js');\n",
      'h/other.ts': "import { store } from './store.js';\nexport const other = store;\n",
    });
    assert.equal(result.code, 1, result.out);
    assert.match(result.out, /file cycle in h\/: \{h\/outage\.ts, h\/store\.ts\}/);
    assert.doesNotMatch(result.out, /folder cycle/);
  });
});
