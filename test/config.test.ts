// Configuration: config/default.json < --config FILE < library options < env < flags, and the one-line
// ConfigError a bad value produces, both from loadConfig and from the real CLI.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, dirname, join } from 'node:path';
import { CONFIG_DEFAULTS, ConfigError, DEFAULT_CONFIG_PATH, loadConfig } from 'gpu-supervisor';
import type { LoadInput } from '../dist/config/load.js';
import { usage } from '../dist/config/load.js';
import { configSchema } from '../dist/config/schema.js';
import { ENV_PREFIX, SETTINGS } from '../dist/config/settings.js';
import { ROOT, SUPERVISOR_ENTRY } from './helpers.js';

/**
 * The README's Configuration table, value for value, written out by hand: the contract users read. The
 * loaded defaults must equal it; default.json is not the reference for its own values.
 */
const README_DEFAULTS: Record<string, unknown> = {
  workers: 2,
  backend: 'process',
  minWorkers: null,
  maxWorkers: null,
  idleTimeoutMs: 30000,
  spareWorkers: 0,
  pipelineDepth: 2,
  worker: null,
  workerOptions: {},
  workerExecArgv: [],
  recycleEveryTasks: 1000,
  taskTimeoutMs: 60000,
  startTimeoutMs: 30000,
  killTimeoutMs: 5000,
  idleReleaseMs: 0,
  minUptimeMs: 1000,
  maxFailedStarts: 5,
  retries: 0,
  shutdownTimeoutMs: 30000,
  maxQueue: 10000,
  historySize: 1000,
  ipcSerialization: 'auto',
  logLevel: 'info',
  'cleanup.afterTask': true,
  'cleanup.everyTasks': 1,
  'cleanup.force': false,
  'cleanup.lightGcMinKiB': 1024,
  'cleanup.timeoutMs': 10000,
  'cleanup.measure': true,
  'cleanup.gpu': true,
  'recycle.gpuMiB': 0,
  'recycle.rssMiB': 0,
  'recycle.leakHorizonTasks': 0,
  'recycle.maxAgeMs': 0,
  'recycle.jitter': 0,
  'recycle.maxConcurrent': 1,
  'recycle.prespawn': 'auto',
  'recycle.prespawnMarginMiB': 256,
  'limits.rssMiB': 0,
  'limits.gpuMiB': 0,
  'limits.intervalMs': 100,
  socket: 'auto',
  maxMessageBytes: 67108864,
  maxClients: 64,
  adminToken: null,
  adminTokenFile: null,
  requireToken: false,
  'sessionCache.dir': 'auto',
  'history.path': 'auto',
  'history.maxAgeDays': 30,
  'history.maxRows': 1000000,
  'history.flushMs': 250,
  'http.port': null,
  'http.host': '127.0.0.1',
  'http.consolePublic': false,
  source: null,
  gpus: [],
  'gpuProbe.kind': 'auto',
  'gpuProbe.nvmlLibrary': 'libnvidia-ml.so.1',
  'gpuProbe.nvmlIntervalMs': 100,
  'gpuProbe.command': 'nvidia-smi',
  'gpuProbe.minIntervalMs': 500,
  'gpuProbe.timeoutMs': 5000,
  'gpuProbe.reclaimTimeoutMs': 10000,
  executionProviders: ['cpu'],
  sessionOptions: { intraOpNumThreads: 1, interOpNumThreads: 1 },
  models: {
    'silero-vad': { path: join(ROOT, 'models', 'silero_vad.onnx') },
    // Dynamic batch: memory pattern planning costs start time and gives nothing (README, Cold starts).
    mlp: { path: join(ROOT, 'models', 'mlp.onnx'), sessionOptions: { enableMemPattern: false } },
  },
};

const DEFAULTS = JSON.parse(readFileSync(join(ROOT, 'config', 'default.json'), 'utf8')) as Record<
  string,
  unknown
>;

let dir: string;
before(() => {
  dir = mkdtempSync(join(tmpdir(), 'gpu-supervisor-config-'));
});
after(() => {
  rmSync(dir, { recursive: true, force: true });
});

let fileCount = 0;
/** Writes a config file under the temp dir (optionally in a subfolder) and returns its absolute path. */
function configFile(content: unknown, sub = ''): string {
  const folder = join(dir, sub);
  mkdirSync(folder, { recursive: true });
  const path = join(folder, `config-${++fileCount}.json`);
  writeFileSync(path, typeof content === 'string' ? content : JSON.stringify(content, null, 2));
  return path;
}

/** loadConfig with no ambient environment: every test says exactly which env it means. */
function load(input: LoadInput = {}) {
  return loadConfig({ env: {}, argv: [], cwd: dir, ...input });
}

function configErrorOf(input: LoadInput): ConfigError {
  try {
    load(input);
  } catch (error) {
    assert.ok(error instanceof ConfigError, `expected a ConfigError, got ${String(error)}`);
    return error;
  }
  assert.fail(`expected a ConfigError for ${JSON.stringify(input)}`);
}

function escape(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

/** An environment for child processes with none of our own settings leaking in from the test runner. */
function cleanEnv(): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [key, value] of Object.entries(process.env)) {
    if (!key.startsWith(ENV_PREFIX) && key !== 'LOG_LEVEL') env[key] = value;
  }
  return env;
}

describe('config/default.json', () => {
  test('validates on its own against the schema', () => {
    const result = configSchema.safeParse(DEFAULTS);
    assert.ok(result.success, JSON.stringify(!result.success && result.error.issues));
  });

  test('holds every key of the schema, and nothing else (defaults live in one place)', () => {
    assert.deepEqual(Object.keys(DEFAULTS).sort(), Object.keys(configSchema.shape).sort());
    assert.deepEqual(
      Object.keys(DEFAULTS.cleanup as object).sort(),
      Object.keys(configSchema.shape.cleanup.shape).sort(),
    );
  });

  test('is the typed defaults (src/config/defaults.ts), key for key and value for value', () => {
    // Both ways: a key only in the file, only in the code, or with another value fails here.
    assert.deepEqual(DEFAULTS, structuredClone(CONFIG_DEFAULTS));
    assert.ok(Object.isFrozen(CONFIG_DEFAULTS.recycle), 'the typed defaults cannot be changed by a caller');
  });

  test('DEFAULT_CONFIG_PATH is the file in the package', () => {
    assert.equal(DEFAULT_CONFIG_PATH, join(ROOT, 'config', 'default.json'));
  });

  test('loadConfig with nothing else gives default.json, model paths resolved next to it', () => {
    const { config, sources, help } = load();
    assert.equal(help, false);
    const expected = structuredClone(DEFAULTS) as Record<string, unknown> & {
      models: Record<string, { path: string }>;
    };
    for (const model of Object.values(expected.models)) model.path = join(ROOT, 'config', model.path);
    assert.deepEqual(config, expected);
    assert.equal(config.models['silero-vad']?.path, join(ROOT, 'models', 'silero_vad.onnx'));
    assert.equal(config.models.mlp?.path, join(ROOT, 'models', 'mlp.onnx'));
    for (const key of Object.keys(DEFAULTS)) assert.equal(sources[key], DEFAULT_CONFIG_PATH, key);
  });

  test("the loaded defaults are the README's Configuration table, key for key and value for value", () => {
    const { config } = load();
    const at = (key: string): unknown =>
      key.split('.').reduce<unknown>((o, k) => (o as Record<string, unknown>)[k], config);
    for (const [key, value] of Object.entries(README_DEFAULTS)) assert.deepEqual(at(key), value, key);
    // Every key the README's table lists is pinned here (the table is the contract, rows may be added).
    const readme = readFileSync(join(ROOT, 'README.md'), 'utf8');
    const section = readme.slice(readme.indexOf('## Configuration'), readme.indexOf('## The default worker'));
    const keys = [...section.matchAll(/^\| `([\w.]+)`\s+\|/gm)].map((m) => m[1]);
    assert.deepEqual(keys.sort(), Object.keys(README_DEFAULTS).sort());
  });

  test('--help and -h set help without changing the config', () => {
    assert.equal(load({ argv: ['--help'] }).help, true);
    assert.equal(load({ argv: ['-h'] }).help, true);
    assert.equal(load({ argv: ['-h'] }).config.workers, 2);
  });
});

describe('layer precedence', () => {
  const fileValues = { workers: 3, recycleEveryTasks: 30, worker: './file-worker.mjs' };

  test('a --config file overrides default.json and is named as the source', () => {
    const file = configFile(fileValues);
    const { config, sources } = load({ argv: ['--config', file] });
    assert.equal(config.workers, 3);
    assert.equal(config.recycleEveryTasks, 30);
    assert.equal(config.worker, join(dirname(file), 'file-worker.mjs'));
    assert.equal(sources.workers, file);
    assert.equal(sources.taskTimeoutMs, DEFAULT_CONFIG_PATH);
    assert.equal(config.taskTimeoutMs, 60000);
  });

  test('GPU_SUPERVISOR_CONFIG names the file when --config is absent', () => {
    const file = configFile(fileValues);
    const { config, sources } = load({ env: { GPU_SUPERVISOR_CONFIG: file } });
    assert.equal(config.workers, 3);
    assert.equal(sources.workers, file);
  });

  test('--config wins over GPU_SUPERVISOR_CONFIG (only one file is read)', () => {
    const fromEnv = configFile({ workers: 4, maxQueue: 7 });
    const fromFlag = configFile({ workers: 5 });
    const { config } = load({ argv: ['--config', fromFlag], env: { GPU_SUPERVISOR_CONFIG: fromEnv } });
    assert.equal(config.workers, 5);
    assert.equal(config.maxQueue, 10000, 'the env-named file must not be merged too');
  });

  test('a relative --config path resolves against cwd', () => {
    const file = configFile({ workers: 6 }, 'rel');
    const { config, sources } = load({ argv: ['--config', join('rel', basename(file))], cwd: dir });
    assert.equal(config.workers, 6);
    assert.equal(sources.workers, file);
  });

  test('env GPU_SUPERVISOR_* overrides the config file', () => {
    const file = configFile(fileValues);
    const { config, sources } = load({
      argv: ['--config', file],
      env: {
        GPU_SUPERVISOR_WORKERS: '7',
        GPU_SUPERVISOR_RECYCLE_EVERY: '70',
        GPU_SUPERVISOR_WORKER: '/abs/env-worker.mjs',
      },
    });
    assert.equal(config.workers, 7);
    assert.equal(config.recycleEveryTasks, 70);
    assert.equal(config.worker, '/abs/env-worker.mjs');
    assert.equal(sources.workers, 'env GPU_SUPERVISOR_WORKERS');
    assert.equal(sources.recycleEveryTasks, 'env GPU_SUPERVISOR_RECYCLE_EVERY');
    assert.equal(sources.worker, 'env GPU_SUPERVISOR_WORKER');
  });

  test('flags override env and the config file', () => {
    const file = configFile(fileValues);
    const { config, sources } = load({
      argv: ['--config', file, '--workers', '9', '--recycle-every', '0', '--worker', '/abs/flag-worker.mjs'],
      env: {
        GPU_SUPERVISOR_WORKERS: '7',
        GPU_SUPERVISOR_RECYCLE_EVERY: '70',
        GPU_SUPERVISOR_WORKER: '/abs/env-worker.mjs',
      },
    });
    assert.equal(config.workers, 9);
    assert.equal(config.recycleEveryTasks, 0);
    assert.equal(config.worker, '/abs/flag-worker.mjs');
    assert.equal(sources.workers, '--workers');
    assert.equal(sources.recycleEveryTasks, '--recycle-every');
    assert.equal(sources.worker, '--worker');
  });

  test('library options sit between the config file and env', () => {
    const file = configFile({ workers: 3, maxQueue: 33 });
    const { config, sources } = load({
      argv: ['--config', file],
      options: { workers: 4, maxQueue: 44 },
      env: { GPU_SUPERVISOR_WORKERS: '5' },
    });
    assert.equal(config.maxQueue, 44);
    assert.equal(sources.maxQueue, 'library options');
    assert.equal(config.workers, 5);
  });

  test('library options.config is read when neither flag nor env names a file', () => {
    const file = configFile({ workers: 8 });
    assert.equal(load({ options: { config: file } }).config.workers, 8);
  });

  test('log level: LOG_LEVEL < GPU_SUPERVISOR_LOG_LEVEL < --log-level, and LOG_LEVEL beats a file', () => {
    const file = configFile({ logLevel: 'error' });
    const cases: Array<[LoadInput, string, string]> = [
      [{ argv: ['--config', file] }, 'error', file],
      [{ argv: ['--config', file], env: { LOG_LEVEL: 'debug' } }, 'debug', 'env LOG_LEVEL'],
      [{ env: { GPU_SUPERVISOR_LOG_LEVEL: 'warn' } }, 'warn', 'env GPU_SUPERVISOR_LOG_LEVEL'],
      [
        { env: { LOG_LEVEL: 'debug', GPU_SUPERVISOR_LOG_LEVEL: 'warn' } },
        'warn',
        'env GPU_SUPERVISOR_LOG_LEVEL',
      ],
      [
        { argv: ['--log-level', 'trace'], env: { LOG_LEVEL: 'debug', GPU_SUPERVISOR_LOG_LEVEL: 'warn' } },
        'trace',
        '--log-level',
      ],
    ];
    for (const [input, level, source] of cases) {
      const { config, sources } = load(input);
      assert.equal(config.logLevel, level, JSON.stringify(input));
      assert.equal(sources.logLevel, source, JSON.stringify(input));
    }
  });

  test('empty env values are ignored', () => {
    const { config, sources } = load({
      env: { GPU_SUPERVISOR_WORKERS: '', LOG_LEVEL: '', GPU_SUPERVISOR_WORKER: '' },
    });
    assert.equal(config.workers, 2);
    assert.equal(config.logLevel, 'info');
    assert.equal(config.worker, null);
    assert.equal(sources.workers, DEFAULT_CONFIG_PATH);
  });

  test('list settings split on commas and trim', () => {
    assert.deepEqual(
      load({ env: { GPU_SUPERVISOR_EXECUTION_PROVIDERS: ' cuda , cpu,' } }).config.executionProviders,
      ['cuda', 'cpu'],
    );
    assert.deepEqual(load({ argv: ['--execution-providers', 'cpu'] }).config.executionProviders, ['cpu']);
  });

  test('integers accept surrounding spaces and the --flag=value form', () => {
    assert.equal(load({ argv: ['--workers= 4 '] }).config.workers, 4);
    assert.equal(load({ env: { GPU_SUPERVISOR_WORKERS: ' 5' } }).config.workers, 5);
  });

  test('cleanup.everyTasks: 1 by default, --cleanup-every over GPU_SUPERVISOR_CLEANUP_EVERY, at least 1', () => {
    assert.equal(load().config.cleanup.everyTasks, 1);
    const fromEnv = load({ env: { GPU_SUPERVISOR_CLEANUP_EVERY: '4' } });
    assert.equal(fromEnv.config.cleanup.everyTasks, 4);
    const fromFlag = load({ argv: ['--cleanup-every', '3'], env: { GPU_SUPERVISOR_CLEANUP_EVERY: '4' } });
    assert.equal(fromFlag.config.cleanup.everyTasks, 3);
    assert.equal(fromFlag.sources.cleanup, '--cleanup-every');
    assert.match(configErrorOf({ argv: ['--cleanup-every', '0'] }).message, /cleanup\.everyTasks = 0/);
  });

  test('a repeated flag: the last one wins', () => {
    assert.equal(load({ argv: ['--workers', '2', '--workers', '3'] }).config.workers, 3);
  });
});

describe('nested merge and paths', () => {
  test('a file setting cleanup.force keeps the other cleanup keys', () => {
    const file = configFile({ cleanup: { force: true } });
    const { config, sources } = load({ argv: ['--config', file] });
    assert.deepEqual(config.cleanup, {
      afterTask: true,
      everyTasks: 1,
      force: true,
      lightGcMinKiB: 1024,
      timeoutMs: 10000,
      measure: true,
      gpu: true,
    });
    assert.equal(sources.cleanup, file);
  });

  test('sessionOptions merge key by key', () => {
    const file = configFile({ sessionOptions: { executionMode: 'parallel' } });
    const { config } = load({ argv: ['--config', file] });
    assert.deepEqual(config.sessionOptions, {
      intraOpNumThreads: 1,
      interOpNumThreads: 1,
      executionMode: 'parallel',
    });
  });

  test('models from a file are added to the default registry, relative paths resolved against the file', () => {
    const file = configFile(
      { models: { mine: { path: 'nets/mine.onnx' }, abs: { path: '/opt/models/abs.onnx' } } },
      'project/conf',
    );
    const { config } = load({ argv: ['--config', file] });
    assert.deepEqual(Object.keys(config.models).sort(), ['abs', 'mine', 'mlp', 'silero-vad']);
    assert.equal(config.models.mine?.path, join(dir, 'project', 'conf', 'nets', 'mine.onnx'));
    assert.equal(config.models.abs?.path, '/opt/models/abs.onnx');
    assert.equal(config.models.mlp?.path, join(ROOT, 'models', 'mlp.onnx'));
    assert.equal(config.models['silero-vad']?.path, join(ROOT, 'models', 'silero_vad.onnx'));
  });

  test('a file can amend a default model without repeating its path', () => {
    const file = configFile({ models: { mlp: { executionProviders: ['cuda', 'cpu'] } } });
    const { config } = load({ argv: ['--config', file] });
    assert.deepEqual(config.models.mlp, {
      path: join(ROOT, 'models', 'mlp.onnx'),
      sessionOptions: { enableMemPattern: false },
      executionProviders: ['cuda', 'cpu'],
    });
  });

  test('a relative model path in a file overriding a default model resolves against that file', () => {
    const file = configFile({ models: { mlp: { path: './my-mlp.onnx' } } }, 'override');
    assert.equal(
      load({ argv: ['--config', file] }).config.models.mlp?.path,
      join(dir, 'override', 'my-mlp.onnx'),
    );
  });

  test('worker paths: a file resolves against its folder, flags and env against cwd', () => {
    const file = configFile({ worker: './w.mjs' }, 'wdir');
    assert.equal(load({ argv: ['--config', file] }).config.worker, join(dir, 'wdir', 'w.mjs'));
    const cwd = join(dir, 'elsewhere');
    assert.equal(load({ argv: ['--worker', './x.mjs'], cwd }).config.worker, join(cwd, 'x.mjs'));
    assert.equal(load({ argv: ['--worker', 'x.mjs'], cwd }).config.worker, join(cwd, 'x.mjs'));
    assert.equal(load({ env: { GPU_SUPERVISOR_WORKER: '../y.mjs' }, cwd }).config.worker, join(dir, 'y.mjs'));
    assert.equal(load({ argv: ['--worker', '/abs/z.mjs'], cwd }).config.worker, '/abs/z.mjs');
    assert.equal(load({ options: { worker: 'lib.mjs' }, cwd }).config.worker, join(cwd, 'lib.mjs'));
  });

  test('arrays replace rather than merge', () => {
    const file = configFile({ executionProviders: ['cuda'] });
    assert.deepEqual(load({ argv: ['--config', file] }).config.executionProviders, ['cuda']);
  });
});

describe('errors: one-line ConfigError naming key, value, source and rule', () => {
  const cases: Array<{ name: string; input: () => LoadInput; expect: (string | RegExp)[] }> = [
    {
      name: '--workers 0',
      input: () => ({ argv: ['--workers', '0'] }),
      expect: [/^invalid config: workers = 0 /, '(from --workers)', />=\s*1/],
    },
    {
      name: '--workers abc',
      input: () => ({ argv: ['--workers', 'abc'] }),
      expect: [/^invalid config: workers = "abc" /, '(from --workers)', /expected an integer/],
    },
    {
      name: '--workers 1.5',
      input: () => ({ argv: ['--workers', '1.5'] }),
      expect: [/workers = "1\.5"/, '(from --workers)', /integer/],
    },
    {
      name: '--workers beyond a safe integer',
      input: () => ({ argv: ['--workers', '99999999999999999999'] }),
      expect: [/^invalid config: workers = 100000000000000000000 /, '(from --workers)', /9007199254740991/],
    },
    {
      name: '--recycle-every=-1',
      input: () => ({ argv: ['--recycle-every=-1'] }),
      expect: [/^invalid config: recycleEveryTasks = -1 /, '(from --recycle-every)', />=\s*0/],
    },
    {
      name: 'GPU_SUPERVISOR_RECYCLE_EVERY=-1',
      input: () => ({ env: { GPU_SUPERVISOR_RECYCLE_EVERY: '-1' } }),
      expect: [/recycleEveryTasks = -1 /, '(from env GPU_SUPERVISOR_RECYCLE_EVERY)', />=\s*0/],
    },
    {
      name: 'GPU_SUPERVISOR_WORKERS=0',
      input: () => ({ env: { GPU_SUPERVISOR_WORKERS: '0' } }),
      expect: [/workers = 0 /, '(from env GPU_SUPERVISOR_WORKERS)', />=\s*1/],
    },
    {
      name: '--log-level loud',
      input: () => ({ argv: ['--log-level', 'loud'] }),
      expect: [/^invalid config: logLevel = "loud" /, '(from --log-level)', /expected one of/, /"info"/],
    },
    {
      name: 'LOG_LEVEL=loud',
      input: () => ({ env: { LOG_LEVEL: 'loud' } }),
      expect: [/logLevel = "loud" /, '(from env LOG_LEVEL)'],
    },
    {
      name: 'library option workers: 0',
      input: () => ({ options: { workers: 0 } }),
      expect: [/workers = 0 /, '(from library options)'],
    },
    {
      name: 'empty execution provider list',
      input: () => ({ env: { GPU_SUPERVISOR_EXECUTION_PROVIDERS: ',' } }),
      expect: [/executionProviders = \[\] /, '(from env GPU_SUPERVISOR_EXECUTION_PROVIDERS)', />=\s*1/],
    },
    {
      name: 'unknown key in a file',
      input: () => ({ argv: ['--config', configFile({ wokers: 2 })] }),
      expect: [/^invalid config: unknown key wokers \(from /, /config-\d+\.json\)$/],
    },
    {
      name: 'unknown nested key in a file',
      input: () => ({ argv: ['--config', configFile({ cleanup: { forse: true } })] }),
      expect: [/^invalid config: unknown key cleanup\.forse \(from /, /config-\d+\.json\)$/],
    },
    {
      name: 'wrong type in a file',
      input: () => ({ argv: ['--config', configFile({ workers: '2' })] }),
      expect: [
        /^invalid config: workers = "2" \(from /,
        /config-\d+\.json\)/,
        /expected number, received string/,
      ],
    },
    {
      name: 'wrong nested type in a file',
      input: () => ({ argv: ['--config', configFile({ cleanup: { force: 'yes' } })] }),
      expect: [/cleanup\.force = "yes" \(from /, /config-\d+\.json\)/, /expected boolean/],
    },
    {
      name: 'a model without a path',
      input: () => ({ argv: ['--config', configFile({ models: { x: { executionProviders: ['cpu'] } } })] }),
      expect: [/models\.x\.path = undefined \(from /, /config-\d+\.json\)/, /expected string/],
    },
    {
      name: 'a missing config file',
      input: () => ({ argv: ['--config', join(dir, 'no-such-config.json')] }),
      expect: [/^cannot read config file /, join(dir, 'no-such-config.json'), /ENOENT/],
    },
    {
      name: 'invalid JSON (one-line file)',
      input: () => ({ argv: ['--config', configFile('{"workers": }')] }),
      expect: [/^config file .*config-\d+\.json is not valid JSON: /],
    },
    {
      name: 'a config file that is not an object',
      input: () => ({ argv: ['--config', configFile('[1, 2]')] }),
      expect: [/^config file .*config-\d+\.json must hold a JSON object$/],
    },
    {
      name: 'unknown flag --nope',
      input: () => ({ argv: ['--nope'] }),
      expect: [/^invalid command line: /, /'--nope'/],
    },
    {
      name: 'a flag without its value',
      input: () => ({ argv: ['--workers'] }),
      expect: [/^invalid command line: /, /--workers/, /missing/],
    },
    {
      name: 'a positional argument',
      input: () => ({ argv: ['extra'] }),
      expect: [/^invalid command line: /, /'extra'/],
    },
  ];

  for (const { name, input, expect } of cases) {
    test(name, () => {
      const error = configErrorOf(input());
      assert.equal(error.code, 'E_CONFIG');
      assert.equal(error.name, 'ConfigError');
      assert.ok(error instanceof Error);
      assert.ok(!error.message.includes('\n'), `one line, got ${JSON.stringify(error.message)}`);
      for (const part of expect) {
        const pattern = typeof part === 'string' ? new RegExp(escape(part)) : part;
        assert.match(error.message, pattern);
      }
    });
  }

  test('the failing layer is named even when a later layer sets other keys', () => {
    const file = configFile({ workers: 0 });
    const error = configErrorOf({ argv: ['--config', file, '--max-queue', '5'] });
    assert.match(error.message, new RegExp(`workers = 0 \\(from ${escape(file)}\\)`));
  });

  test('the failing layer is named even when a later layer sets a sibling key in the same section', () => {
    const cases: Array<{
      file: Record<string, unknown>;
      argv?: string[];
      env?: Record<string, string>;
      key: string;
    }> = [
      { file: { history: { flushMs: 0 } }, argv: ['--history', 'off'], key: 'history.flushMs' },
      { file: { history: { flushMs: 0 } }, env: { GPU_SUPERVISOR_HISTORY: 'off' }, key: 'history.flushMs' },
      { file: { recycle: { rssMiB: -1 } }, argv: ['--prespawn-margin', '5'], key: 'recycle.rssMiB' },
      { file: { http: { port: 'x' } }, argv: ['--http-host', '0.0.0.0'], key: 'http.port' },
    ];
    for (const { file, argv = [], env = {}, key } of cases) {
      const path = configFile(file);
      const error = configErrorOf({ argv: ['--config', path, ...argv], env });
      assert.match(
        error.message,
        new RegExp(`${escape(key)} = .* \\(from ${escape(path)}\\)`),
        error.message,
      );
    }
  });

  test('a key a later layer leaves undefined is not named as that layer', () => {
    const path = configFile({ http: { port: 'x' } });
    const nested = configErrorOf({
      options: { config: path, http: { port: undefined, host: '127.0.0.1' } } as never,
    });
    assert.match(nested.message, new RegExp(`http\\.port = "x" \\(from ${escape(path)}\\)`), nested.message);
    const top = configErrorOf({
      argv: ['--config', configFile({ workers: 0 })],
      options: { workers: undefined } as never,
    });
    assert.match(top.message, /workers = 0 \(from .*config-\d+\.json\)/, top.message);
  });

  test('a model may be named "constructor" or "prototype"; an unknown top-level "constructor" is refused', () => {
    const file = configFile({
      models: { constructor: { path: 'a.onnx' }, prototype: { path: 'b.onnx' } },
    });
    const { models } = load({ argv: ['--config', file] }).config;
    assert.ok(
      Object.hasOwn(models, 'constructor') && Object.hasOwn(models, 'prototype'),
      JSON.stringify(models),
    );
    assert.match(
      configErrorOf({ argv: ['--config', configFile({ constructor: 1 })] }).message,
      /unknown key constructor/,
    );
  });

  test('free-form workerOptions may hold a cycle or a large buffer', () => {
    const cyclic: Record<string, unknown> = { a: 1 };
    cyclic.self = cyclic;
    assert.equal(load({ options: { workerOptions: cyclic } }).config.workerOptions.a, 1);
    const blob = Buffer.alloc(4 << 20);
    assert.equal(load({ options: { workerOptions: { blob } } }).config.workerOptions.blob, blob);
  });

  test('a bad value overridden by a later layer is no error', () => {
    const file = configFile({ workers: 0 });
    assert.equal(load({ argv: ['--config', file, '--workers', '2'] }).config.workers, 2);
  });

  // Regressions of bugs found by these suites.
  test('`--recycle-every -1` (space-separated negative) gives a one-line error', () => {
    const error = configErrorOf({ argv: ['--recycle-every', '-1'] });
    assert.ok(!error.message.includes('\n'), JSON.stringify(error.message));
    assert.match(error.message, /recycle-every|recycleEveryTasks/);
  });

  test('invalid JSON in a multi-line file gives a one-line error', () => {
    const error = configErrorOf({ argv: ['--config', configFile('{\n  "workers": ,\n}\n')] });
    assert.ok(!error.message.includes('\n'), JSON.stringify(error.message));
  });

  test('a BigInt library option is a ConfigError naming the key', () => {
    const error = configErrorOf({ options: { workers: 2n as unknown as number } });
    assert.match(error.message, /workers/);
  });

  test('an empty GPU_SUPERVISOR_CONFIG does not hide options.config', () => {
    const file = configFile({ workers: 8 });
    assert.equal(load({ env: { GPU_SUPERVISOR_CONFIG: '' }, options: { config: file } }).config.workers, 8);
  });
});

describe('the CLI', () => {
  const cli = (...args: string[]) =>
    spawnSync(process.execPath, [SUPERVISOR_ENTRY, ...args], {
      encoding: 'utf8',
      timeout: 20_000,
      env: cleanEnv(),
      cwd: dir,
    });

  test('a duration past what a Node timer holds is refused, naming it; an age that long is not', () => {
    const result = cli('--shutdown-timeout', '3000000000');
    assert.equal(result.status, 2, result.stderr);
    assert.match(result.stderr, /invalid config: shutdownTimeoutMs = 3000000000 \(from --shutdown-timeout\)/);
    assert.throws(() => load({ options: { killTimeoutMs: 2 ** 31 } }), /killTimeoutMs/);
    // 40 days: checked by timers armed at most 2^31-1 ms ahead, never fired early as a whole.
    assert.equal(
      load({ options: { recycle: { maxAgeMs: 40 * 86_400_000 } } }).config.recycle.maxAgeMs,
      40 * 86_400_000,
    );
  });

  test('--workers 0 exits 2 with exactly one line on stderr', () => {
    const result = cli('--workers', '0');
    assert.equal(result.error, undefined);
    assert.equal(result.status, 2, result.stderr);
    assert.equal(result.stdout, '');
    assert.ok(result.stderr.endsWith('\n'), JSON.stringify(result.stderr));
    const lines = result.stderr.slice(0, -1).split('\n');
    assert.equal(lines.length, 1, JSON.stringify(result.stderr));
    assert.match(lines[0]!, /^gpu-supervisor: invalid config: workers = 0 \(from --workers\): /);
  });

  test('the configuration logged at debug level says a token is set, never what it is', () => {
    const token = 'never-in-a-log-0123';
    const result = spawnSync(
      process.execPath,
      [SUPERVISOR_ENTRY, '--log-level', 'debug', '--worker', join(dir, 'no-such-worker.mjs')],
      {
        encoding: 'utf8',
        timeout: 20_000,
        env: { ...cleanEnv(), GPU_SUPERVISOR_ADMIN_TOKEN: token },
        cwd: dir,
      },
    );
    const line = result.stdout.split('\n').find((l) => l.includes('"msg":"configuration"'));
    assert.ok(line, `no configuration line in: ${result.stdout.slice(0, 500)}`);
    assert.equal(JSON.parse(line).config.adminToken, '[set]');
    assert.ok(!result.stdout.includes(token) && !result.stderr.includes(token), 'the token was logged');
  });

  test('a bad env value exits 2 naming the variable', () => {
    const result = spawnSync(process.execPath, [SUPERVISOR_ENTRY], {
      encoding: 'utf8',
      timeout: 20_000,
      env: { ...cleanEnv(), GPU_SUPERVISOR_LOG_LEVEL: 'loud' },
    });
    assert.equal(result.status, 2, result.stderr);
    assert.match(
      result.stderr,
      /^gpu-supervisor: invalid config: logLevel = "loud" \(from env GPU_SUPERVISOR_LOG_LEVEL\)/,
    );
  });

  test('an unknown flag exits 2', () => {
    const result = cli('--nope');
    assert.equal(result.status, 2, result.stderr);
    assert.match(result.stderr, /^gpu-supervisor: invalid command line: .*--nope/);
  });

  test('--help exits 0 and prints every flag with its env variable', () => {
    const result = cli('--help');
    assert.equal(result.error, undefined);
    assert.equal(result.status, 0, result.stderr);
    assert.equal(result.stderr, '');
    assert.match(result.stdout, /^usage: /);
    assert.match(result.stdout, /--config FILE/);
    assert.match(result.stdout, /GPU_SUPERVISOR_CONFIG/);
    assert.match(result.stdout, /--help/);
    for (const setting of SETTINGS) {
      if (setting.flag)
        assert.match(result.stdout, new RegExp(`^  --${escape(setting.flag)} `, 'm'), setting.flag);
      assert.ok(result.stdout.includes(`${ENV_PREFIX}${setting.env[0]}`), setting.flag);
    }
    for (const flag of ['workers', 'recycle-every', 'worker', 'log-level']) {
      assert.ok(
        SETTINGS.some((s) => s.flag === flag),
        `flag --${flag} is a public contract`,
      );
    }
  });

  test('usage() keeps every flag apart from its help text', () => {
    for (const line of usage()
      .split('\n')
      .filter((l) => l.startsWith('  --'))) {
      assert.match(line, /^ {2}--\S+( [A-Z]+)? {2,}\S/, JSON.stringify(line));
    }
  });
});

describe('nested settings, booleans, tokens and the BullMQ source', () => {
  test('--http-port and GPU_SUPERVISOR_HISTORY set nested keys and keep their siblings', () => {
    const { config, sources } = load({
      argv: ['--http-port', '9464'],
      env: { GPU_SUPERVISOR_HISTORY: 'data/history.db' },
    });
    assert.equal(config.http.port, 9464);
    assert.equal(config.http.host, '127.0.0.1');
    assert.equal(config.history.path, join(dir, 'data/history.db'));
    assert.equal(config.history.maxRows, 1000000);
    assert.equal(sources.http, '--http-port');
  });

  test('http.consolePublic is off by default; --console-public and its env turn it on', () => {
    assert.equal(load({}).config.http.consolePublic, false);
    assert.equal(load({ argv: ['--console-public', 'true'] }).config.http.consolePublic, true);
    const fromEnv = load({ env: { GPU_SUPERVISOR_CONSOLE_PUBLIC: '1' } });
    assert.equal(fromEnv.config.http.consolePublic, true);
    assert.equal(fromEnv.config.http.host, '127.0.0.1');
    assert.throws(() => load({ env: { GPU_SUPERVISOR_CONSOLE_PUBLIC: 'yes' } }), /expected true or false/);
  });

  test('"auto" and "off" are placements, not paths relative to cwd', () => {
    const { config } = load({ argv: ['--socket', 'off', '--history', 'auto'] });
    assert.equal(config.socket, 'off');
    assert.equal(config.history.path, 'auto');
  });

  test('--require-token takes true/false/1/0 and rejects anything else in one line', () => {
    assert.equal(load({ argv: ['--require-token', 'true'] }).config.requireToken, true);
    assert.equal(load({ env: { GPU_SUPERVISOR_REQUIRE_TOKEN: '0' } }).config.requireToken, false);
    assert.match(
      configErrorOf({ argv: ['--require-token', 'yes'] }).message,
      /^invalid config: requireToken = "yes" \(from --require-token\): expected true or false$/,
    );
  });

  test('the admin token comes from the environment or a file, never a flag', () => {
    assert.equal(
      load({ env: { GPU_SUPERVISOR_ADMIN_TOKEN: 'secret-token-1' } }).config.adminToken,
      'secret-token-1',
    );
    assert.throws(() => load({ argv: ['--admin-token', 'x'] }), /invalid command line/);
    const file = join(dir, 'token.txt');
    writeFileSync(file, 'file-token-123\n');
    assert.equal(load({ argv: ['--admin-token-file', file] }).config.adminToken, 'file-token-123');
    writeFileSync(file, 'short');
    assert.match(configErrorOf({ argv: ['--admin-token-file', file] }).message, /at least 8 characters/);
    assert.match(
      configErrorOf({ argv: ['--admin-token-file', join(dir, 'missing.txt')] }).message,
      /^invalid config: adminTokenFile = .*missing\.txt.*ENOENT/,
    );
  });

  test('file < env < flags holds for the token too: --admin-token-file wins over the env token', () => {
    const file = join(dir, 'token-later.txt');
    writeFileSync(file, 'from-the-flag-file\n');
    const env = { GPU_SUPERVISOR_ADMIN_TOKEN: 'from-the-env-123' };
    assert.equal(load({ env, argv: ['--admin-token-file', file] }).config.adminToken, 'from-the-flag-file');
    // A token file named in the config file is an earlier layer than the env token.
    const config = configFile({ adminTokenFile: file });
    assert.equal(load({ env, argv: ['--config', config] }).config.adminToken, 'from-the-env-123');
  });

  test('--redis and --queue name a BullMQ source; a file can add its options', () => {
    const file = configFile({
      source: { type: 'bullmq', connection: 'redis://a:1', queue: 'q', concurrency: 4 },
    });
    const { config } = load({
      argv: ['--config', file, '--redis', 'redis://127.0.0.1:6390', '--queue', 'jobs'],
    });
    assert.deepEqual(config.source, {
      type: 'bullmq',
      connection: 'redis://127.0.0.1:6390',
      queue: 'jobs',
      concurrency: 4,
    });
    assert.equal(load().config.source, null);
    assert.match(
      configErrorOf({ argv: ['--redis', 'redis://x'] }).message,
      /^invalid config: source\.queue = /,
    );
  });

  test('hard limits: off by default (0, 0, read every 100 ms); flags and env set them, apart from recycle.*', () => {
    assert.deepEqual(load().config.limits, { rssMiB: 0, gpuMiB: 0, intervalMs: 100 });
    const flags = load({
      argv: ['--limit-rss-mib', '400', '--limit-gpu-mib', '2048', '--limit-interval-ms', '25'],
    });
    assert.deepEqual(flags.config.limits, { rssMiB: 400, gpuMiB: 2048, intervalMs: 25 });
    assert.equal(flags.config.recycle.rssMiB, 0);
    assert.equal(flags.config.recycle.gpuMiB, 0);
    assert.equal(flags.sources.limits, '--limit-interval-ms');
    const env = load({
      env: {
        GPU_SUPERVISOR_LIMIT_RSS_MIB: '512',
        GPU_SUPERVISOR_LIMIT_GPU_MIB: '1024',
        GPU_SUPERVISOR_LIMIT_INTERVAL_MS: '50',
      },
    });
    assert.deepEqual(env.config.limits, { rssMiB: 512, gpuMiB: 1024, intervalMs: 50 });
    const file = configFile({ limits: { rssMiB: 300 } });
    assert.deepEqual(load({ argv: ['--config', file] }).config.limits, {
      rssMiB: 300,
      gpuMiB: 0,
      intervalMs: 100,
    });
    assert.match(
      configErrorOf({ argv: ['--limit-interval-ms', '0'] }).message,
      /^invalid config: limits\.intervalMs = 0 \(from --limit-interval-ms\)/,
    );
    assert.match(
      configErrorOf({ env: { GPU_SUPERVISOR_LIMIT_RSS_MIB: '-1' } }).message,
      /^invalid config: limits\.rssMiB = -1 \(from env GPU_SUPERVISOR_LIMIT_RSS_MIB\)/,
    );
  });

  test('backend is process or thread', () => {
    assert.equal(load({ argv: ['--backend', 'thread'] }).config.backend, 'thread');
    assert.match(
      configErrorOf({ argv: ['--backend', 'fiber'] }).message,
      /^invalid config: backend = "fiber"/,
    );
  });
});
