// The real-GPU check script must keep working on machines without a GPU: run it end to end against
// the fake nvidia-smi and the simulated CUDA worker, and make sure it also fails when it should.
import { before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { ROOT } from './helpers.js';
import { FAKE_BIN, FakeGpu, fakeNvmlLibrary } from './gpu-helpers.js';

let library: string;
before(async () => {
  library = await fakeNvmlLibrary();
});

function runCheck(fake: FakeGpu, extraEnv: Record<string, string> = {}) {
  return spawnSync(process.execPath, ['scripts/gpu-check.mjs'], {
    cwd: ROOT,
    encoding: 'utf8',
    timeout: 120_000,
    env: {
      ...process.env,
      PATH: `${FAKE_BIN}:${process.env.PATH}`,
      FAKE_NVIDIA_SMI_DIR: fake.dir,
      FAKE_GPU_UUID: 'GPU-00000000-0000-4000-8000-000000000000',
      GPU_SUPERVISOR_NVML_LIBRARY: library,
      LOG_LEVEL: 'silent',
      ...extraEnv,
    },
  });
}

test('gpu-check passes every check against the fake GPU (simulated CUDA memory)', () => {
  const fake = new FakeGpu([{ uuid: 'GPU-00000000-0000-4000-8000-000000000000', baseUsedMiB: 120 }]);
  const result = runCheck(fake);
  assert.equal(result.status, 0, result.stdout + result.stderr);
  assert.match(result.stdout, /\| light cleanup: gpuFreedMiB = allocation \| 1024 \| 1024 \| yes \|/);
  assert.match(result.stdout, /\| recycle: gpuFreedMiB = context \+ leak \| 812 \| 812 \| yes \|/);
  assert.match(
    result.stdout,
    /\| supervisor reads through NVML \(stats.gpu.probe.kind\) \| yes \| nvml \| yes \|/,
  );
  assert.match(result.stdout, /\| NVML worker's MiB = nvidia-smi worker's MiB \| 300 \| 300 \| yes \|/);
  assert.match(result.stdout, /19\/19 checks passed \(simulated/);
  // Each worker start's phases are recorded (on a GPU: the CUDA context's creation among the steps).
  assert.match(result.stdout, /^\| first \(pid \d+\) \| \d+\.\d \| \d+\.\d \|/m);
  assert.match(result.stdout, /^\| after recycle \(pid \d+\) \| \d+\.\d \|/m);
});

test('gpu-check fails the NVML checks when NVML cannot init (and still measures through nvidia-smi)', () => {
  const fake = new FakeGpu([{ uuid: 'GPU-00000000-0000-4000-8000-000000000000', baseUsedMiB: 120 }]);
  fake.write('nvml-init-fail', '9');
  const result = runCheck(fake);
  assert.equal(result.status, 1, result.stdout + result.stderr);
  assert.match(result.stdout, /\| NVML loads .* \| yes \| no-driver: .* \| \*\*NO\*\* \|/);
  assert.match(
    result.stdout,
    /\| supervisor reads through NVML \(stats.gpu.probe.kind\) \| yes \| nvidia-smi \| \*\*NO\*\* \|/,
  );
  assert.match(result.stdout, /\| light cleanup: gpuFreedMiB = allocation \| 1024 \| 1024 \| yes \|/);
});

test('gpu-check fails when nvidia-smi cannot see the worker', () => {
  const fake = new FakeGpu([{ uuid: 'GPU-00000000-0000-4000-8000-000000000000' }]);
  // Host pids (a container without --pid=host): the worker's own pid never appears, so the check must fail.
  fake.write('pid-offset', '100000');
  const result = runCheck(fake);
  assert.equal(result.status, 1, result.stdout + result.stderr);
  assert.match(result.stdout, /worker pid listed by nvidia-smi \| yes \| .* \| \*\*NO\*\*/);
});

test('gpu-check exits 2 with the reason when there is no GPU', () => {
  const fake = new FakeGpu();
  fake.write('fail.txt', 'No devices were found\n');
  fake.write('fail.code', '6');
  const result = runCheck(fake);
  assert.equal(result.status, 2);
  assert.match(result.stderr, /no usable GPU \(no-devices/);
});
