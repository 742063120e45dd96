// The library entry as an app meets it: `import ... from 'gpu-supervisor'` (the built dist/index.js) in a
// fresh node process. Importing it must not load the packages only some features need (prom-client for
// metrics, bullmq for the queue, better-sqlite3 for history, piscina for the thread backend), and every
// name it exports today is the public API, kept.
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { fileURLToPath } from 'node:url';

const run = promisify(execFile);
const RECORDER = fileURLToPath(new URL('./fixtures/record-modules.mjs', import.meta.url));
const APP = fileURLToPath(new URL('./fixtures/library-entry.mjs', import.meta.url));
const ENTRY_URL = new URL('../dist/index.js', import.meta.url).href;
/** Loaded only by the feature that needs it; ioredis comes with bullmq. */
const ON_USE_ONLY = ['prom-client', 'bullmq', 'ioredis', 'better-sqlite3', 'piscina'];

interface AppReport {
  exports: Record<string, string>;
  clientStatics: string[];
  queueClientStatics: string[];
  commonJsAtImport: string[];
  metricsText?: string;
  commonJsAfterMetrics?: string[];
}

const dir = mkdtempSync(join(tmpdir(), 'gpu-sup-entry-'));
after(() => rmSync(dir, { recursive: true, force: true }));

/** Runs the app in a fresh process; `resolved` is every URL the ESM loader resolved, in order. */
async function app(mode: 'import' | 'metrics'): Promise<{ report: AppReport; resolved: string[] }> {
  const file = join(dir, `${mode}.resolved.txt`);
  const env: NodeJS.ProcessEnv = { ...process.env, RECORD_MODULES_FILE: file };
  delete env.NODE_OPTIONS; // the test runner's loaders (tsx) must not load anything into the app
  const { stdout } = await run(process.execPath, ['--import', RECORDER, APP, mode], { env });
  const resolved = readFileSync(file, 'utf8').split('\n').filter(Boolean);
  return { report: JSON.parse(stdout) as AppReport, resolved };
}

const packagesIn = (paths: string[]): string[] =>
  ON_USE_ONLY.filter((name) => paths.some((p) => p.includes(`/node_modules/${name}/`)));

describe('library entry', () => {
  test('importing it loads none of prom-client, bullmq, ioredis, better-sqlite3, piscina', async () => {
    const { report, resolved } = await app('import');
    // The recorder saw the entry itself, so an empty list below means "not loaded", not "not watched".
    assert.ok(resolved.includes(ENTRY_URL), `entry not among ${resolved.length} resolved URLs`);
    assert.deepEqual(packagesIn(resolved), [], 'resolved by the ESM loader at import');
    assert.deepEqual(packagesIn(report.commonJsAtImport), [], 'loaded as CommonJS at import');
  });

  test('createMetrics loads prom-client when called, and still works synchronously', async () => {
    const { report } = await app('metrics');
    assert.deepEqual(packagesIn(report.commonJsAtImport), []);
    assert.deepEqual(packagesIn(report.commonJsAfterMetrics ?? []), ['prom-client']);
    assert.match(report.metricsText ?? '', /^# TYPE gpu_supervisor_tasks_total counter$/m);
    assert.match(report.metricsText ?? '', /^gpu_supervisor_workers\{state="ready"\} 0$/m);
  });

  test('every runtime export of the entry is still there, of the same kind', async () => {
    const { report } = await app('import');
    // The public API as of this test's writing (src/index.ts, README.md, docs/scale-out.md): extend, never rename.
    const expected: Record<string, string> = {
      Supervisor: 'function',
      DEFAULT_WORKER_MODULE: 'string',
      SupervisorClient: 'function',
      defaultSocketPath: 'function',
      SupervisorError: 'function',
      ErrorCode: 'object',
      loadConfig: 'function',
      DEFAULT_CONFIG_PATH: 'string',
      ConfigError: 'function',
      createMetrics: 'function',
      METRIC_PREFIX: 'string',
      startHttpFront: 'function',
      HistoryService: 'function',
      resolveHistoryPath: 'function',
      buildReport: 'function',
      computeReport: 'function',
      reportText: 'function',
      timelineSvg: 'function',
      QueueClient: 'function',
      submitToQueue: 'function',
      readClusterStats: 'function',
      formatClusterStats: 'function',
    };
    for (const [name, kind] of Object.entries(expected)) {
      assert.equal(report.exports[name], kind, `export ${name}`);
    }
    assert.deepEqual(report.clientStatics, ['fork', 'connect', 'queue']);
    assert.deepEqual(report.queueClientStatics, ['connect']);
  });
});
