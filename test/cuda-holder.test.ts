// The cuda-holder addon and the cuda-worker fixture built on it. Runs without a GPU: the addon's
// CUDA path is exercised against a stand-in libcuda.so.1 (fixtures/cuda-holder/fake_libcuda.c)
// in child processes, and the worker's simulation mode against a temp FAKE_NVIDIA_SMI_DIR.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { copyFileSync, existsSync, mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { promisify } from 'node:util';
import { skipTest } from './fixtures/ci-skip.js';

const run = promisify(execFile);

const HOLDER_DIR = fileURLToPath(new URL('./fixtures/cuda-holder/', import.meta.url));
const ADDON_PATH = join(HOLDER_DIR, 'build', 'Release', 'cuda_holder.node');
const WORKER_PATH = fileURLToPath(new URL('./fixtures/cuda-worker.mjs', import.meta.url));
const DEFAULT_UUID = 'GPU-00000000-0000-4000-8000-000000000000';

interface CudaHolder {
  available(): boolean;
  loadError(): string;
  init(deviceOrdinal?: number): void;
  alloc(mib: number): number;
  free(id: number): void;
  freeAll(): number;
  allocatedMiB(): number;
  destroy(): void;
}

interface Report {
  pid: number;
  mode: 'cuda' | 'simulated';
  allocatedMiB: number;
}

interface CudaWorker {
  setup(context: unknown): void;
  run(payload: unknown, context: unknown): Report;
  cleanup(context: unknown, options: { force: boolean }): void;
}

const quietLog = { info() {}, warn() {}, error() {}, debug() {} };
const contextWith = (options: Record<string, unknown>) => ({
  workerId: 0,
  config: { options, models: {}, executionProviders: ['cpu'], sessionOptions: {} },
  log: quietLog,
});

/** Runs an ES-module script in a fresh node; resolves with its exit code and output. */
async function node(script: string, env: NodeJS.ProcessEnv = {}) {
  try {
    const { stdout, stderr } = await run(process.execPath, ['--input-type=module', '-e', script], {
      env: { ...process.env, ...env },
      timeout: 30_000,
    });
    return { code: 0, stdout, stderr };
  } catch (err) {
    const e = err as { code?: number; stdout?: string; stderr?: string };
    return { code: e.code ?? -1, stdout: e.stdout ?? '', stderr: e.stderr ?? '' };
  }
}

let addon: CudaHolder;
let cudaHere = false; // a real libcuda in this process: the no-GPU expectations don't apply

before(
  async () => {
    // From a clean clone the addon isn't built yet: build it the way the README of the fixture says.
    if (!existsSync(ADDON_PATH)) {
      await run('npx', ['node-gyp', 'rebuild'], { cwd: HOLDER_DIR, timeout: 280_000 });
    }
    addon = createRequire(import.meta.url)(ADDON_PATH) as CudaHolder;
    cudaHere = addon.available();
  },
  { timeout: 300_000 },
);

describe('cuda-holder addon', () => {
  test('builds and loads with its API', () => {
    assert.ok(existsSync(ADDON_PATH));
    assert.deepEqual(Object.keys(addon).sort(), [
      'alloc',
      'allocatedMiB',
      'available',
      'destroy',
      'free',
      'freeAll',
      'init',
      'loadError',
    ]);
    for (const fn of Object.values(addon)) assert.equal(typeof fn, 'function');
  });

  test('without libcuda: available() is false and every CUDA call throws a clear error', (t) => {
    if (cudaHere) return skipTest(t, 'libcuda.so.1 is present here (a GPU machine)', { holdsOnCi: true });
    assert.equal(addon.available(), false);
    assert.match(addon.loadError(), /libcuda\.so\.1/);
    const unavailable = { code: 'ERR_CUDA_UNAVAILABLE', message: /CUDA is not available \(libcuda\.so\.1/ };
    assert.throws(() => addon.init(), unavailable);
    assert.throws(() => addon.init(0), unavailable);
    assert.throws(() => addon.alloc(1), unavailable);
    assert.throws(() => addon.free(1), unavailable);
    assert.throws(() => addon.freeAll(), unavailable);
    assert.throws(() => addon.destroy(), unavailable);
    assert.equal(addon.allocatedMiB(), 0);
  });

  describe('against a stand-in libcuda.so.1', () => {
    let libDir: string;
    before(async () => {
      libDir = mkdtempSync(join(tmpdir(), 'fake-libcuda-'));
      const src = join(HOLDER_DIR, 'fake_libcuda.c');
      await run('cc', ['-shared', '-fPIC', '-o', join(libDir, 'libcuda.so.1'), src], { timeout: 60_000 });
    });
    after(() => rmSync(libDir, { recursive: true, force: true }));

    const fakeEnv = (extra: NodeJS.ProcessEnv = {}) => ({
      LD_LIBRARY_PATH: libDir,
      FAKE_CUDA_LOG: join(libDir, 'calls.log'),
      FAKE_NVIDIA_SMI_DIR: '',
      ...extra,
    });
    const calls = () => readFileSync(join(libDir, 'calls.log'), 'utf8').trim().split('\n');

    test('init, alloc, free, freeAll, destroy and CUresult errors', async () => {
      rmSync(join(libDir, 'calls.log'), { force: true });
      const script = `
        import { createRequire } from 'node:module';
        const a = createRequire(import.meta.url)(${JSON.stringify(ADDON_PATH)});
        const out = {}, err = (f) => { try { f(); return null; } catch (e) {
          return { code: e.code, cuResult: e.cuResult, message: e.message }; } };
        out.available = a.available();
        out.beforeInit = err(() => a.alloc(1));
        out.badDevice = err(() => a.init(7));
        a.init(); a.init(); // idempotent
        const x = a.alloc(16), y = a.alloc(8);
        out.ids = [x, y];
        out.afterAlloc = a.allocatedMiB();
        out.oom = err(() => a.alloc(100));
        a.free(x);
        out.doubleFree = err(() => a.free(x));
        out.afterFree = a.allocatedMiB();
        a.alloc(4);
        out.freedAll = a.freeAll();
        a.alloc(2);
        a.destroy();
        out.afterDestroy = a.allocatedMiB();
        out.allocAfterDestroy = err(() => a.alloc(1));
        console.log(JSON.stringify(out));`;
      const { code, stdout, stderr } = await node(script, fakeEnv({ FAKE_CUDA_TOTAL_MIB: '64' }));
      assert.equal(code, 0, stderr);
      const out = JSON.parse(stdout);
      assert.equal(out.available, true);
      assert.equal(out.beforeInit.code, 'ERR_CUDA_NO_CONTEXT');
      assert.deepEqual(out.badDevice, {
        code: 'CUDA_ERROR_INVALID_DEVICE',
        cuResult: 101,
        message: 'cuda-holder: cuDeviceGet failed: CUresult 101 (CUDA_ERROR_INVALID_DEVICE)',
      });
      assert.deepEqual(out.ids, [1, 2]);
      assert.equal(out.afterAlloc, 24);
      assert.equal(out.oom.code, 'CUDA_ERROR_OUT_OF_MEMORY');
      assert.equal(out.oom.cuResult, 2);
      assert.match(out.oom.message, /cuMemAlloc_v2 failed: CUresult 2/);
      assert.match(out.doubleFree.message, /unknown or already freed handle/);
      assert.equal(out.afterFree, 8);
      assert.equal(out.freedAll, 2);
      assert.equal(out.afterDestroy, 0);
      assert.equal(out.allocAfterDestroy.code, 'ERR_CUDA_NO_CONTEXT');
      const MiB = 1024 * 1024;
      assert.deepEqual(calls(), [
        'cuInit 0 -> 0',
        'cuDeviceGet 7 -> 101',
        'cuInit 0 -> 0',
        'cuDeviceGet 0 -> 0',
        'cuCtxCreate_v2 0 -> 0',
        `cuMemAlloc_v2 ${16 * MiB} -> 0`,
        `cuMemsetD8_v2 ${16 * MiB} -> 0`, // touched, not just reserved
        `cuMemAlloc_v2 ${8 * MiB} -> 0`,
        `cuMemsetD8_v2 ${8 * MiB} -> 0`,
        `cuMemAlloc_v2 ${100 * MiB} -> 2`,
        `cuMemFree_v2 ${16 * MiB} -> 0`,
        `cuMemAlloc_v2 ${4 * MiB} -> 0`,
        `cuMemsetD8_v2 ${4 * MiB} -> 0`,
        `cuMemFree_v2 ${8 * MiB} -> 0`,
        `cuMemFree_v2 ${4 * MiB} -> 0`,
        `cuMemAlloc_v2 ${2 * MiB} -> 0`,
        `cuMemsetD8_v2 ${2 * MiB} -> 0`,
        `cuCtxDestroy_v2 ${2 * MiB} -> 0`, // the context took its last allocation with it
      ]);
    });

    test('cuda-worker in cuda mode: cleanup frees task memory, force also the held, never the context', async () => {
      rmSync(join(libDir, 'calls.log'), { force: true });
      const script = `
        import { appendFileSync } from 'node:fs';
        const w = await import(${JSON.stringify(pathToFileURL(WORKER_PATH).href)});
        const log = { info() {}, warn() {}, error() {}, debug() {} };
        const ctx = { workerId: 0, config: { options: {}, models: {}, executionProviders: ['cpu'], sessionOptions: {} }, log };
        const mark = (s) => appendFileSync(process.env.FAKE_CUDA_LOG, '# ' + s + '\\n');
        const out = [];
        const steps = [];
        ctx.start = { binding() {}, session() {}, step: (name, ms) => steps.push([name, ms]) };
        w.setup(ctx);
        process.stderr.write('STEPS ' + JSON.stringify(steps) + '\\n');
        out.push(w.run({ op: 'alloc', mib: 16 }, ctx));
        out.push(w.run({ op: 'hold', mib: 8 }, ctx));
        mark('light'); await w.cleanup(ctx, { force: false });
        out.push(w.run({ op: 'info' }, ctx));
        mark('force'); await w.cleanup(ctx, { force: true });
        out.push(w.run({ op: 'info' }, ctx));
        console.log(JSON.stringify(out));`;
      const { code, stdout, stderr } = await node(script, fakeEnv());
      assert.equal(code, 0, stderr);
      // Start phases (issue 16): the CUDA context's creation is reported as a step of setup.
      assert.match(stderr, /STEPS \[\["cuda context",\d+(\.\d+)?\]\]/);
      const pid = (JSON.parse(stdout) as Report[])[0]!.pid;
      assert.deepEqual(JSON.parse(stdout), [
        { pid, mode: 'cuda', allocatedMiB: 16 },
        { pid, mode: 'cuda', allocatedMiB: 24 },
        { pid, mode: 'cuda', allocatedMiB: 8 },
        { pid, mode: 'cuda', allocatedMiB: 0 },
      ]);
      const lines = calls();
      assert.deepEqual(lines.slice(lines.indexOf('# light')), [
        '# light',
        `cuMemFree_v2 ${16 * 1024 * 1024} -> 0`,
        '# force',
        `cuMemFree_v2 ${8 * 1024 * 1024} -> 0`,
      ]);
      assert.ok(lines.includes('cuCtxCreate_v2 0 -> 0'));
      assert.ok(!lines.some((l) => l.startsWith('cuCtxDestroy')), 'cleanup must not destroy the context');
    });
  });
});

describe('cuda-worker in simulation mode', () => {
  let simDir: string;
  let worker: CudaWorker;
  const savedEnv = { dir: process.env.FAKE_NVIDIA_SMI_DIR, uuid: process.env.FAKE_GPU_UUID };
  const restore = (name: string, value: string | undefined) => {
    if (value === undefined) delete process.env[name];
    else process.env[name] = value;
  };

  before(async () => {
    worker = (await import(pathToFileURL(WORKER_PATH).href)) as CudaWorker;
  });
  after(() => {
    restore('FAKE_NVIDIA_SMI_DIR', savedEnv.dir);
    restore('FAKE_GPU_UUID', savedEnv.uuid);
  });

  const freshDir = () => {
    simDir = mkdtempSync(join(tmpdir(), 'fake-nvidia-smi-'));
    process.env.FAKE_NVIDIA_SMI_DIR = simDir;
    delete process.env.FAKE_GPU_UUID;
  };
  const procsFile = () => readFileSync(join(simDir, 'procs', String(process.pid)), 'utf8');

  test('alloc -> cleanup(light) -> hold -> cleanup(force) keeps procs/<pid> in step', () => {
    freshDir();
    // Where a real GPU is present, auto mode would pick it: ask for simulation explicitly there.
    const ctx = contextWith(cudaHere ? { contextMiB: 300, mode: 'simulated' } : { contextMiB: 300 });
    const pid = process.pid;
    worker.setup(ctx);
    assert.equal(procsFile(), `${DEFAULT_UUID} 300\n`, 'the context costs memory from setup on');

    assert.deepEqual(worker.run({ op: 'alloc', mib: 512 }, ctx), {
      pid,
      mode: 'simulated',
      allocatedMiB: 512,
    });
    assert.equal(procsFile(), `${DEFAULT_UUID} 812\n`);
    worker.cleanup(ctx, { force: false });
    assert.equal(procsFile(), `${DEFAULT_UUID} 300\n`);

    assert.deepEqual(worker.run({ op: 'hold', mib: 256 }, ctx), {
      pid,
      mode: 'simulated',
      allocatedMiB: 256,
    });
    assert.deepEqual(worker.run({ op: 'alloc', mib: 100 }, ctx), {
      pid,
      mode: 'simulated',
      allocatedMiB: 356,
    });
    assert.equal(procsFile(), `${DEFAULT_UUID} 656\n`);
    worker.cleanup(ctx, { force: false });
    assert.equal(procsFile(), `${DEFAULT_UUID} 556\n`, 'light cleanup leaves the held memory');
    assert.deepEqual(worker.run({ op: 'info' }, ctx), { pid, mode: 'simulated', allocatedMiB: 256 });

    worker.cleanup(ctx, { force: true });
    assert.equal(
      procsFile(),
      `${DEFAULT_UUID} 300\n`,
      'forced cleanup frees the held memory, not the context',
    );
    assert.deepEqual(worker.run({ op: 'info' }, ctx), { pid, mode: 'simulated', allocatedMiB: 0 });

    // Only the process's own files, written atomically (no temp file left behind): its procs entry and
    // its birth record (which other fake GPU processes were alive when it came up).
    assert.deepEqual(readdirSync(join(simDir, 'procs')), [String(pid)]);
    assert.deepEqual(readdirSync(join(simDir, 'births')), [String(pid)]);
    assert.deepEqual(readdirSync(simDir).sort(), ['births', 'procs']);
    rmSync(simDir, { recursive: true, force: true });
  });

  test('FAKE_GPU_UUID and contextMiB are honoured; bad payloads are E_BAD_REQUEST', () => {
    freshDir();
    process.env.FAKE_GPU_UUID = 'GPU-11111111-2222-4333-8444-555555555555';
    const ctx = contextWith({ contextMiB: 120, mode: 'simulated' });
    worker.setup(ctx);
    assert.equal(procsFile(), 'GPU-11111111-2222-4333-8444-555555555555 120\n');
    worker.run({ op: 'alloc', mib: 30 }, ctx);
    assert.equal(procsFile(), 'GPU-11111111-2222-4333-8444-555555555555 150\n');
    for (const payload of [
      { op: 'alloc', mib: -1 },
      { op: 'hold' },
      { op: 'alloc', mib: '5' },
      { op: 'nope' },
    ]) {
      assert.throws(() => worker.run(payload, ctx), { code: 'E_BAD_REQUEST' }, JSON.stringify(payload));
    }
    assert.equal(procsFile(), 'GPU-11111111-2222-4333-8444-555555555555 150\n');
    rmSync(simDir, { recursive: true, force: true });
  });

  test('a worker that exits leaves its procs file behind (the fake treats the dead pid as freed)', async () => {
    freshDir();
    const script = `
      const w = await import(${JSON.stringify(pathToFileURL(WORKER_PATH).href)});
      const ctx = { workerId: 0, config: { options: { mode: 'simulated' }, models: {}, executionProviders: ['cpu'], sessionOptions: {} }, log: { info() {} } };
      w.setup(ctx);
      w.run({ op: 'hold', mib: 64 }, ctx);
      console.log(process.pid);`;
    const { code, stdout, stderr } = await node(script, { FAKE_NVIDIA_SMI_DIR: simDir });
    assert.equal(code, 0, stderr);
    const childPid = stdout.trim();
    assert.equal(readFileSync(join(simDir, 'procs', childPid), 'utf8'), `${DEFAULT_UUID} 364\n`);
    rmSync(simDir, { recursive: true, force: true });
  });

  test('with neither CUDA nor FAKE_NVIDIA_SMI_DIR, setup says what is missing', (t) => {
    if (cudaHere) return skipTest(t, 'libcuda.so.1 is present here (a GPU machine)', { holdsOnCi: true });
    delete process.env.FAKE_NVIDIA_SMI_DIR;
    assert.throws(() => worker.setup(contextWith({})), /libcuda\.so\.1.*FAKE_NVIDIA_SMI_DIR/s);
    assert.throws(
      () => worker.setup(contextWith({ mode: 'cuda' })),
      /mode "cuda" requested but CUDA not available/,
    );
    assert.throws(() => worker.setup(contextWith({ mode: 'simulated' })), /needs FAKE_NVIDIA_SMI_DIR/);
  });

  test('an unbuilt addon is named with its build command, and simulation still works', async () => {
    // A copy of the worker with no cuda-holder/build beside it stands in for a clean clone.
    const copyDir = mkdtempSync(join(tmpdir(), 'cuda-worker-copy-'));
    const copy = join(copyDir, 'cuda-worker.mjs');
    copyFileSync(WORKER_PATH, copy);
    const unbuilt = (await import(pathToFileURL(copy).href)) as CudaWorker;
    delete process.env.FAKE_NVIDIA_SMI_DIR;
    assert.throws(
      () => unbuilt.setup(contextWith({})),
      /cuda-holder addon not built .*run: cd test\/fixtures\/cuda-holder && npx node-gyp rebuild/,
    );
    freshDir();
    unbuilt.setup(contextWith({ contextMiB: 10 }));
    assert.deepEqual(unbuilt.run({ op: 'info' }, {}), {
      pid: process.pid,
      mode: 'simulated',
      allocatedMiB: 0,
    });
    assert.equal(procsFile(), `${DEFAULT_UUID} 10\n`);
    rmSync(simDir, { recursive: true, force: true });
    rmSync(copyDir, { recursive: true, force: true });
  });
});
