// ONNX Runtime's optimized-model cache (sessionCache.dir, issue 16), through real worker starts: the
// first start writes the entry, the next loads it; a damaged or stale entry is rebuilt and the model is
// served correctly whatever happened to the entry.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import {
  copyFileSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  renameSync,
  statSync,
  truncateSync,
  writeFileSync,
} from 'node:fs';
import { join } from 'node:path';
import { Supervisor, type SupervisorEventMap } from 'gpu-supervisor';
import { InferenceSession, Tensor } from 'onnxruntime-node';
import { mlpReference } from '../dist/models/mlp.js';
import { createCachedSession } from '../workers/session-cache.js';
import { ROOT, scratchDir, sileroInputs } from './helpers.js';

type Outputs = { outputs: Record<string, { dims: number[]; data: ArrayLike<number> }> };
const X = Float32Array.from({ length: 512 }, (_, i) => Math.sin(i / 5));

/** One supervisor life: a worker starts with `model` preloaded, runs one task, and is shut down. */
async function startOnce(cacheDir: string, path: string, run: (sup: Supervisor) => Promise<void>) {
  const sup = new Supervisor({
    workers: 1,
    logLevel: 'silent',
    recycleEveryTasks: 0,
    sessionCache: { dir: cacheDir },
    models: { m: { path } },
    workerOptions: { preload: ['m'] },
  });
  let ready: SupervisorEventMap['worker-ready'] | undefined;
  sup.events.on('worker-ready', (e) => (ready ??= e));
  await sup.start();
  try {
    await run(sup);
  } finally {
    await sup.shutdown();
  }
  const session = ready!.phases.sessions?.find((s) => s.model === 'm');
  assert.ok(session, 'the preloaded session is in the start phases');
  return session.cache;
}

function assertMlp(value: unknown, seed: number): void {
  const y = (value as Outputs).outputs.y!;
  const expected = mlpReference(X, 1, { seed });
  let max = 0;
  for (let i = 0; i < expected.length; i++) max = Math.max(max, Math.abs(y.data[i]! - expected[i]!));
  assert.ok(max < 1e-3, `outputs match the seed-${seed} reference (max diff ${max})`);
}

const mlpTask = (sup: Supervisor) =>
  sup.run({ model: 'm', inputs: { x: { type: 'float32', dims: [1, 512], data: X } } });

function entries(cacheDir: string): string[] {
  return readdirSync(cacheDir).filter((name) => name !== 'sources' && !name.includes('.tmp-'));
}

function setup(): { cache: string; model: string } {
  const dir = scratchDir('gpu-sup-session-cache-');
  const model = join(dir, 'model.onnx');
  copyFileSync(join(ROOT, 'models', 'mlp.onnx'), model);
  return { cache: join(dir, 'cache'), model };
}

const served = (seed: number) => async (sup: Supervisor) => assertMlp(await mlpTask(sup), seed);

describe('session cache', () => {
  test('the first start writes the entry, the second loads it; both serve the same outputs', async () => {
    const { cache, model } = setup();
    assert.equal(await startOnce(cache, model, served(1)), 'miss');
    const [entry] = entries(cache);
    assert.ok(entry, 'an entry was written');
    const files = readdirSync(join(cache, entry)).sort();
    assert.deepEqual(files, ['meta.json', 'model.onnx', 'weights.bin']);
    // The weights as stored and, beside them, as MatMul packed them: the packing a hit skips.
    const weights = statSync(join(cache, entry, 'weights.bin')).size;
    const modelBytes = statSync(model).size;
    assert.ok(
      weights > 1.5 * modelBytes,
      `weights.bin (${weights} B) holds the packed weights too (model ${modelBytes} B)`,
    );
    assert.equal(await startOnce(cache, model, served(1)), 'hit');
    assert.equal(await startOnce('off', model, served(1)), 'off');
  });

  test('a truncated weights file or graph is detected and rebuilt, and the model is served correctly', async () => {
    const { cache, model } = setup();
    assert.equal(await startOnce(cache, model, served(1)), 'miss');
    const entry = join(cache, entries(cache)[0]!);
    for (const file of ['weights.bin', 'model.onnx']) {
      truncateSync(join(entry, file), Math.floor(statSync(join(entry, file)).size / 2));
      assert.equal(await startOnce(cache, model, served(1)), 'rebuilt', file);
      assert.equal(await startOnce(cache, model, served(1)), 'hit', `${file}: the rebuilt entry is used`);
    }
  });

  test('an entry written by another ORT version is rebuilt', async () => {
    const { cache, model } = setup();
    await startOnce(cache, model, served(1));
    const meta = join(cache, entries(cache)[0]!, 'meta.json');
    writeFileSync(meta, JSON.stringify({ ...JSON.parse(readFileSync(meta, 'utf8')), ortVersion: '0.0.1' }));
    assert.equal(await startOnce(cache, model, served(1)), 'rebuilt');
    assert.notEqual(JSON.parse(readFileSync(meta, 'utf8')).ortVersion, '0.0.1');
    assert.equal(await startOnce(cache, model, served(1)), 'hit');
  });

  test('a graph ORT refuses (same size, garbage inside) is rebuilt, never fatal', async () => {
    const { cache, model } = setup();
    await startOnce(cache, model, served(1));
    const graph = join(cache, entries(cache)[0]!, 'model.onnx');
    writeFileSync(graph, Buffer.alloc(statSync(graph).size, 0x5a));
    assert.equal(await startOnce(cache, model, served(1)), 'rebuilt');
    assert.equal(await startOnce(cache, model, served(1)), 'hit');
  });

  test('the model file changed under the same name: the new model is served, not the cached one', async () => {
    const { cache, model } = setup();
    await startOnce(cache, model, served(1));
    assert.equal(await startOnce(cache, model, served(1)), 'hit');
    // Same path, same size, same inode: only the content (and mtime) differ.
    const seed2 = join(scratchDir('gpu-sup-mlp-seed2-'), 'mlp.onnx');
    execFileSync(process.execPath, [
      join(ROOT, 'scripts', 'generate-mlp.mjs'),
      '--seed',
      '2',
      '--out',
      seed2,
    ]);
    const inode = statSync(model).ino;
    copyFileSync(seed2, model);
    assert.equal(statSync(model).ino, inode);
    assert.equal(await startOnce(cache, model, served(2)), 'miss');
    assert.equal(await startOnce(cache, model, served(2)), 'hit');
  });

  test('a cache directory that cannot be written: the model loads from its file', async () => {
    const { model } = setup();
    const blocker = join(scratchDir('gpu-sup-cache-blocked-'), 'a-file');
    writeFileSync(blocker, 'not a directory');
    assert.equal(await startOnce(join(blocker, 'cache'), model, served(1)), 'bypass');
  });

  test('silero-vad (a graph with subgraphs) through the cache: every start serves it, the third from the cache', async () => {
    const { cache } = setup();
    const silero = join(ROOT, 'models', 'silero_vad.onnx');
    const outputs: number[][] = [];
    const outcomes: string[] = [];
    const run = async (sup: Supervisor) => {
      const value = (await sup.run({ model: 'm', inputs: sileroInputs(512) })) as Outputs;
      outputs.push(Array.from(value.outputs.output!.data));
    };
    for (let i = 0; i < 3; i++) outcomes.push(await startOnce(cache, silero, run));
    const plain = await startOnce('off', silero, run);
    assert.equal(plain, 'off');
    assert.equal(outcomes[0], 'miss');
    assert.equal(outcomes[2], 'hit', outcomes.join(' '));
    for (const output of outputs) assert.deepEqual(output, outputs.at(-1));
  });
});

describe('session cache, in process (createCachedSession with a create that refuses to write)', () => {
  // An ORT build or execution provider that refuses the options an entry is written with must not fail
  // the start: the model is served from its own file, and the entry is marked so no start tries again.
  test('the writing session is refused: served from the model file, entry unusable, never tried again', async () => {
    const { cache, model } = setup();
    const calls: Array<'write' | 'plain'> = [];
    const create = (path: string, options: Parameters<typeof InferenceSession.create>[1] & object) => {
      calls.push(options.optimizedModelFilePath ? 'write' : 'plain');
      if (options.optimizedModelFilePath) return Promise.reject(new Error('option not supported here'));
      return InferenceSession.create(path, options);
    };
    const warnings: string[] = [];
    const log = { warn: (_: unknown, msg: string) => warnings.push(msg), debug: () => undefined };
    const context = { dir: cache, ortVersion: 'test', log: log as never, create };
    const first = await createCachedSession(context, model, { executionProviders: ['cpu'] });
    assert.equal(first.cache, 'bypass');
    assert.deepEqual(calls, ['write', 'plain']);
    const x = new Tensor('float32', X, [1, 512]);
    const y = (await first.session.run({ x })).y!;
    assertMlp({ outputs: { y: { dims: [...y.dims], data: y.data as Float32Array } } }, 1);
    assert.deepEqual(warnings, ['session cache: cannot write the entry; loading the model file']);
    const [entry] = entries(cache);
    assert.match(
      JSON.parse(readFileSync(join(cache, entry!, 'meta.json'), 'utf8')).unusable,
      /not supported/,
    );
    const second = await createCachedSession(context, model, { executionProviders: ['cpu'] });
    assert.equal(second.cache, 'bypass');
    assert.deepEqual(calls, ['write', 'plain', 'plain'], 'the second start does not try to write again');
  });

  test('a failure of the moment (disk full) is not a refusal: the next start tries to write again', async () => {
    const { cache, model } = setup();
    let full = true;
    const calls: string[] = [];
    const create = (path: string, options: Parameters<typeof InferenceSession.create>[1] & object) => {
      calls.push(options.optimizedModelFilePath ? 'write' : 'plain');
      if (options.optimizedModelFilePath && full)
        return Promise.reject(new Error('write weights.bin: No space left on device'));
      return InferenceSession.create(path, options);
    };
    const log = { warn: () => undefined, debug: () => undefined };
    const context = { dir: cache, ortVersion: 'test', log: log as never, create };
    assert.equal((await createCachedSession(context, model, {})).cache, 'bypass');
    assert.deepEqual(entries(cache), [], 'no unusable marker');
    full = false;
    assert.equal((await createCachedSession(context, model, {})).cache, 'miss');
    assert.equal((await createCachedSession(context, model, {})).cache, 'hit');
    assert.deepEqual(calls, ['write', 'plain', 'write', 'plain']);
  });

  test('a refusal while another worker wrote a good entry keeps that entry (no marker over it)', async () => {
    const { cache, model } = setup();
    const log = { warn: () => undefined, debug: () => undefined };
    const good = { dir: cache, ortVersion: 'test', log: log as never, create: InferenceSession.create };
    const create = async (path: string, options: Parameters<typeof InferenceSession.create>[1] & object) => {
      if (!options.optimizedModelFilePath) return InferenceSession.create(path, options);
      // Worker A finishes its entry while this one (B) is refused.
      assert.equal((await createCachedSession(good, model, {})).cache, 'miss');
      throw new Error('option not supported here');
    };
    const refused = { ...good, create };
    assert.equal((await createCachedSession(refused, model, {})).cache, 'bypass');
    const [entry] = entries(cache);
    assert.equal(JSON.parse(readFileSync(join(cache, entry!, 'meta.json'), 'utf8')).unusable, undefined);
    assert.equal((await createCachedSession(good, model, {})).cache, 'hit');
  });

  test('an entry another worker replaces while this one loads it is not taken for a refusal', async () => {
    const { cache, model } = setup();
    const log = { warn: () => undefined, debug: () => undefined };
    const good = { dir: cache, ortVersion: 'test', log: log as never, create: InferenceSession.create };
    assert.equal((await createCachedSession(good, model, {})).cache, 'miss');
    const [name] = entries(cache);
    const entry = join(cache, name!);
    const meta = readFileSync(join(entry, 'meta.json'), 'utf8');
    const create = async (path: string, options: Parameters<typeof InferenceSession.create>[1] & object) => {
      if (!path.startsWith(entry)) return InferenceSession.create(path, options);
      // Another worker's commit: the old entry is removed, then its own renamed into place.
      renameSync(entry, `${entry}.away`);
      try {
        return await InferenceSession.create(path, options);
      } finally {
        renameSync(`${entry}.away`, entry);
      }
    };
    const racing = { ...good, create };
    for (let i = 0; i < 2; i++) assert.equal((await createCachedSession(racing, model, {})).cache, 'bypass');
    assert.equal(readFileSync(join(entry, 'meta.json'), 'utf8'), meta, 'no rebuild, no marker');
    assert.equal((await createCachedSession(good, model, {})).cache, 'hit');
  });

  test('two workers missing at once: the first entry written stays, the second is dropped', async () => {
    const { cache, model } = setup();
    const log = { warn: () => undefined, debug: () => undefined };
    const good = { dir: cache, ortVersion: 'test', log: log as never, create: InferenceSession.create };
    let first: number | undefined;
    const create = async (path: string, options: Parameters<typeof InferenceSession.create>[1] & object) => {
      const session = await InferenceSession.create(path, options);
      if (options.optimizedModelFilePath && first === undefined) {
        // Worker A commits its entry while this one (B) is still building.
        assert.equal((await createCachedSession(good, model, {})).cache, 'miss');
        first = statSync(join(cache, entries(cache)[0]!)).ino;
      }
      return session;
    };
    assert.equal((await createCachedSession({ ...good, create }, model, {})).cache, 'miss');
    assert.equal(entries(cache).length, 1);
    assert.equal(statSync(join(cache, entries(cache)[0]!)).ino, first, 'the first entry was kept in place');
    assert.equal((await createCachedSession(good, model, {})).cache, 'hit');
  });

  test('a writer that died mid-write leaves nothing behind: its temporary entry and hash record are swept', async () => {
    const { cache, model } = setup();
    const log = { warn: () => undefined, debug: () => undefined };
    const context = { dir: cache, ortVersion: 'test', log: log as never, create: InferenceSession.create };
    const dead = spawnSync(process.execPath, ['-e', '']).pid;
    mkdirSync(join(cache, 'sources'), { recursive: true });
    mkdirSync(join(cache, `abc.tmp-${dead}-0001`));
    writeFileSync(join(cache, 'sources', `def.json.tmp-${dead}-0002`), '{}');
    const alive = `ghi.tmp-${process.pid}-0003`;
    mkdirSync(join(cache, alive));
    assert.equal((await createCachedSession(context, model, {})).cache, 'miss');
    const left = [...readdirSync(cache), ...readdirSync(join(cache, 'sources'))].filter((n) =>
      n.includes('.tmp-'),
    );
    assert.deepEqual(left, [alive], "only a live writer's temporary entry is kept");
  });

  test('a broken model still fails with its own error', async () => {
    const { cache, model } = setup();
    writeFileSync(model, Buffer.alloc(4096, 0x33));
    const log = { warn: () => undefined, debug: () => undefined };
    const context = { dir: cache, ortVersion: 'test', log: log as never, create: InferenceSession.create };
    await assert.rejects(createCachedSession(context, model, {}), /protobuf|parse|invalid|failed/i);
  });
});
