// GPU readings through NVML without a GPU: the real NVML reader (koffi, in its own thread) against a
// stand-in libnvidia-ml.so.1 built from test/fixtures/nvml/fake_nvml.c, driven by the same state
// directory as the fake nvidia-smi; then the real supervisor and real worker processes on top of it.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { rmSync } from 'node:fs';
import { Supervisor } from 'gpu-supervisor';
import { chooseGpuProbe, type GpuProbeChoice } from '../dist/probes/gpu-probe-choice.js';
import { collectEvents, waitUntil } from './helpers.js';
import { GPU0, GPU1, SIMULATED_CUDA, TWO_GPUS, fakeGpuPerTest, fakeNvmlLibrary } from './gpu-helpers.js';

let library: string;
before(async () => {
  library = await fakeNvmlLibrary();
});

const choice = (extra: Partial<GpuProbeChoice> = {}): GpuProbeChoice => ({
  kind: 'auto',
  nvmlLibrary: library,
  nvmlIntervalMs: 10,
  command: 'nvidia-smi',
  timeoutMs: 2_000,
  minIntervalMs: 50,
  ...extra,
});

/** Real processes for the fake driver to list (it lists a pid only while it is alive). */
const sleepers: ChildProcess[] = [];
function sleeper(): number {
  const child = spawn('sleep', ['60'], { stdio: 'ignore' });
  sleepers.push(child);
  return child.pid!;
}
function stop(child: ChildProcess): Promise<void> {
  return new Promise((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) return resolve();
    child.once('exit', () => resolve());
    child.kill('SIGKILL');
  });
}
after(async () => {
  await Promise.all(sleepers.map(stop));
});

describe('NVML reader against the fake libnvidia-ml.so.1', () => {
  const gpu = fakeGpuPerTest(TWO_GPUS);

  test('several GPUs: device memory and each process on its GPU; kind nvml', async () => {
    const other = sleeper();
    gpu.fake.write(`procs/${process.pid}`, `${GPU1} 2048`);
    gpu.fake.write(`procs/${other}`, `${GPU0} 700`);
    const { probe, nvmlFailure } = await chooseGpuProbe(choice());
    assert.equal(probe.kind, 'nvml');
    assert.equal(nvmlFailure, undefined);
    assert.equal(probe.state, 'available');
    assert.deepEqual(probe.latest?.devices, [
      { index: 0, uuid: GPU0, name: 'NVIDIA H200', usedMiB: 700, totalMiB: 143771, utilization: 0 },
      {
        index: 1,
        uuid: GPU1,
        name: 'NVIDIA GeForce RTX 4090',
        usedMiB: 3048,
        totalMiB: 143771,
        utilization: 0,
      },
    ]);
    assert.deepEqual(
      [...(probe.latest?.processes ?? [])].sort((a, b) => a.gpuUuid.localeCompare(b.gpuUuid)),
      [
        { gpuUuid: GPU1, pid: process.pid, usedMiB: 2048 },
        { gpuUuid: GPU0, pid: other, usedMiB: 700 },
      ].sort((a, b) => a.gpuUuid.localeCompare(b.gpuUuid)),
    );
    // Twenty callers together share one reading, as with nvidia-smi.
    gpu.fake.write('nvml-calls.log', '');
    const readings = await Promise.all(Array.from({ length: 20 }, () => probe.fresh()));
    assert.equal(new Set(readings.map((r) => r?.seq)).size, 1);
    assert.equal(gpu.fake.nvmlReadings(), 1);
    probe.close();
  });

  test('[N/A] values: unknown process memory, device memory and utilization are null, not 0', async () => {
    gpu.fake.write(
      'nvml-devices.txt',
      `gpu ${GPU0} 81920 26 N/A NVIDIA A100 80GB PCIe\ngpu ${GPU1} N/A N/A 36 NVIDIA GB10\n`,
    );
    gpu.fake.write(`procs/${process.pid}`, `${GPU0} [N/A]`);
    const { probe } = await chooseGpuProbe(choice());
    assert.equal(probe.kind, 'nvml');
    assert.deepEqual(
      probe.latest?.devices.map((d) => [d.name, d.usedMiB, d.totalMiB, d.utilization]),
      [
        ['NVIDIA A100 80GB PCIe', 26, 81920, null],
        ['NVIDIA GB10', null, null, 36],
      ],
    );
    assert.deepEqual(probe.latest?.processes, [{ gpuUuid: GPU0, pid: process.pid, usedMiB: null }]);
    probe.close();
  });

  test('MIG: each instance with its memory and ids, its processes under its own uuid', async () => {
    const MIG_A = 'MIG-feb88891-0321-5fef-9c87-d4af3b54259e';
    const MIG_B = 'MIG-2ad1f4c9-6a7e-5b1d-8e3f-0c9a7d6b5e41';
    gpu.fake.write(
      'nvml-devices.txt',
      [
        `gpu ${GPU0} 143771 0 0 NVIDIA H200`,
        `gpu ${GPU1} 81559 5 0 NVIDIA H100 80GB HBM3`,
        `mig 1 0 ${MIG_A} 1 0 40192 12`,
        `mig 1 3 ${MIG_B} 5 0 19968 7`,
        '',
      ].join('\n'),
    );
    const other = sleeper();
    gpu.fake.write(`procs/${process.pid}`, `${MIG_A} 1500`);
    gpu.fake.write(`procs/${other}`, `${MIG_B} 300`);
    const { probe } = await chooseGpuProbe(choice());
    const [plain, migGpu] = probe.latest?.devices ?? [];
    assert.equal(plain?.mig, undefined, 'a GPU not in MIG mode has no instances');
    assert.deepEqual(migGpu?.mig, [
      { index: 0, uuid: MIG_A, gpuInstanceId: 1, computeInstanceId: 0, usedMiB: 1512, totalMiB: 40192 },
      { index: 3, uuid: MIG_B, gpuInstanceId: 5, computeInstanceId: 0, usedMiB: 307, totalMiB: 19968 },
    ]);
    // The GPU's own figure covers its instances; utilization is not reported in MIG mode.
    assert.equal(migGpu?.usedMiB, 5 + 1512 + 307);
    assert.equal(migGpu?.utilization, null);
    assert.deepEqual(probe.latest?.processes, [
      { gpuUuid: MIG_A, pid: process.pid, usedMiB: 1500 },
      { gpuUuid: MIG_B, pid: other, usedMiB: 300 },
    ]);
    probe.close();
  });

  test('processes come and go; a list longer than the buffer grows it (INSUFFICIENT_SIZE)', async () => {
    const { probe } = await chooseGpuProbe(choice());
    assert.deepEqual(probe.latest?.processes, []);
    const children = Array.from({ length: 40 }, () => sleeper());
    children.forEach((pid, i) => gpu.fake.write(`procs/${pid}`, `${GPU0} ${i + 1}`));
    const many = await probe.fresh();
    assert.deepEqual(
      many?.processes.map((p) => p.pid),
      [...children].sort((a, b) => a - b),
    );
    assert.equal(many?.devices[0]?.usedMiB, (40 * 41) / 2);
    // Half of them exit: the driver stops listing them and their memory is back.
    const gone = sleepers.filter((c) => children.slice(0, 20).includes(c.pid!));
    await Promise.all(gone.map(stop));
    const fewer = await probe.fresh();
    assert.deepEqual(
      fewer?.processes.map((p) => p.pid),
      children.slice(20).sort((a, b) => a - b),
    );
    assert.equal(fewer?.devices[0]?.usedMiB, (40 * 41) / 2 - (20 * 21) / 2);
    probe.close();
  });

  test('a driver that fails to init: auto falls back to nvidia-smi, nvml alone is unavailable', async () => {
    gpu.fake.write('nvml-init-fail', '9'); // NVML_ERROR_DRIVER_NOT_LOADED
    const auto = await chooseGpuProbe(choice());
    assert.equal(auto.probe.kind, 'nvidia-smi');
    assert.equal(auto.probe.state, 'available', 'the fake nvidia-smi still answers');
    assert.equal(auto.nvmlFailure?.kind, 'no-driver');
    assert.match(auto.nvmlFailure?.message ?? '', /Driver Not Loaded/);
    auto.probe.close();

    const only = await chooseGpuProbe(choice({ kind: 'nvml' }));
    assert.equal(only.probe.kind, 'nvml');
    assert.equal(only.probe.state, 'unavailable');
    assert.equal(only.probe.failure?.kind, 'no-driver');
    assert.equal(await only.probe.fresh(), undefined, 'no retry loop once unavailable');
    only.probe.close();

    const missing = await chooseGpuProbe(choice({ nvmlLibrary: '/nonexistent/libnvidia-ml.so.1' }));
    assert.equal(missing.probe.kind, 'nvidia-smi');
    assert.equal(missing.nvmlFailure?.kind, 'not-installed');
    missing.probe.close();
  });

  test('a slow call: the reading times out, the event loop keeps running, one call at most', async () => {
    const { probe } = await chooseGpuProbe(choice({ timeoutMs: 200 }));
    assert.equal(probe.kind, 'nvml');
    gpu.fake.write('nvml-calls.log', '');
    gpu.fake.write('nvml-slow-ms', '1500');
    let ticks = 0;
    const ticker = setInterval(() => ticks++, 10);
    try {
      const slow = await probe.fresh();
      assert.equal(slow, undefined);
      assert.equal(probe.failure?.kind, 'timeout');
      assert.ok(ticks > 0, 'timers ran while the NVML call was blocked in its thread');
      // While that call is stuck, a reading answers at once, without queueing a second call.
      assert.equal(await probe.fresh(), undefined);
      assert.match(probe.failure?.message ?? '', /has not returned/);
      assert.equal(gpu.fake.nvmlReadings(), 1);
      assert.equal(probe.state, 'available', 'a GPU seen once stays: a slow reading is only skipped');
      rmSync(`${gpu.fake.dir}/nvml-slow-ms`);
      await waitUntil(async () => (await probe.fresh()) !== undefined, 'readings resume', 10_000);
      assert.equal(probe.failure, undefined);
    } finally {
      clearInterval(ticker);
      probe.close();
    }
  });
});

describe('supervisor on NVML (simulated CUDA worker)', () => {
  const gpu = fakeGpuPerTest();

  const probe = (extra: Record<string, unknown> = {}) => ({
    kind: 'auto' as const,
    nvmlLibrary: library,
    nvmlIntervalMs: 10,
    minIntervalMs: 500,
    timeoutMs: 2_000,
    reclaimTimeoutMs: 3_000,
    ...extra,
  });

  test("stats.gpu.probe.kind is nvml, and every short task's cleanup line has its GPU figures", async () => {
    const sup = new Supervisor({ ...SIMULATED_CUDA, gpuProbe: probe() });
    const cleanups = collectEvents(sup, 'cleanup');
    await sup.start();
    const stats = await sup.stats();
    assert.equal(stats.gpu?.probe.kind, 'nvml');
    assert.equal(stats.workers[0]?.gpuMiB, 300);
    // Short tasks, all submitted at once: the worker holds the next one (pipelining) while it cleans
    // up, so no reading from the parent could bracket its cleanups; the worker's own readings do.
    const tasks = 30;
    await Promise.all(Array.from({ length: tasks }, () => sup.run({ op: 'alloc', mib: 64 })));
    await waitUntil(() => cleanups.length >= tasks, 'every cleanup line');
    await sup.shutdown();
    const figures = cleanups.map((c) => [c.gpuBeforeMiB, c.gpuAfterMiB, c.gpuFreedMiB, c.attribution]);
    assert.deepEqual(
      figures,
      Array.from({ length: tasks }, () => [364, 300, 64, 'process']),
    );
  });

  test('light cleanup: the freed allocation, measured on NVML readings', async () => {
    const sup = new Supervisor({ ...SIMULATED_CUDA, gpuProbe: probe() });
    const cleanups = collectEvents(sup, 'cleanup');
    await sup.start();
    await sup.run({ op: 'alloc', mib: 512, holdMs: 100 });
    await waitUntil(() => cleanups.length > 0, 'cleanup event');
    await sup.shutdown();
    assert.equal(cleanups[0]?.gpuBeforeMiB, 812);
    assert.equal(cleanups[0]?.gpuAfterMiB, 300);
    assert.equal(cleanups[0]?.gpuFreedMiB, 512);
  });

  test('the same short tasks on nvidia-smi (rate-limited readings) miss most of their figures', async () => {
    const sup = new Supervisor({ ...SIMULATED_CUDA, gpuProbe: probe({ kind: 'nvidia-smi' }) });
    const cleanups = collectEvents(sup, 'cleanup');
    await sup.start();
    assert.equal((await sup.stats()).gpu?.probe.kind, 'nvidia-smi');
    const tasks = 30;
    await Promise.all(Array.from({ length: tasks }, () => sup.run({ op: 'alloc', mib: 64 })));
    await waitUntil(() => cleanups.length >= tasks, 'every cleanup line');
    await sup.shutdown();
    const withFigures = cleanups.filter((c) => c.gpuFreedMiB !== undefined).length;
    assert.ok(withFigures < tasks, `${withFigures}/${tasks} lines with GPU figures`);
  });

  test('kill + respawn on NVML: waits for the driver to reclaim, then the new baseline', async () => {
    gpu.fake.write('reclaim-delay-ms', '300');
    const sup = new Supervisor({ ...SIMULATED_CUDA, gpuProbe: probe() });
    const recycles = collectEvents(sup, 'recycle');
    await sup.start();
    await sup.run({ op: 'hold', mib: 256 });
    await sup.admin('recycle');
    await sup.shutdown();
    const event = recycles[0]!;
    assert.equal(event.gpuBeforeMiB, 556);
    assert.equal(event.gpuFreedMiB, 556);
    assert.equal(event.gpuReclaimed, true);
    assert.ok(event.gpuReclaimMs! >= 250, `waited ${event.gpuReclaimMs} ms for the driver`);
    assert.equal(event.gpuBaselineMiB, 300);
  });

  test('inside a PID namespace: workers cannot find themselves, device-level figures from the supervisor', async () => {
    gpu.fake.write('pid-offset', '100000');
    const sup = new Supervisor({ ...SIMULATED_CUDA, gpuProbe: probe() });
    const cleanups = collectEvents(sup, 'cleanup');
    const recycles = collectEvents(sup, 'recycle');
    await sup.start();
    await sup.run({ op: 'alloc', mib: 512, holdMs: 250 });
    await waitUntil(() => cleanups.length > 0, 'cleanup event');
    assert.equal(cleanups[0]?.attribution, 'device');
    assert.equal(cleanups[0]?.gpuFreedMiB, 512);
    assert.equal((await sup.stats()).workers[0]?.gpuMiB, null);
    await sup.admin('recycle');
    await sup.shutdown();
    assert.equal(recycles[0]?.attribution, 'device');
    assert.equal(recycles[0]?.gpuFreedMiB, 300);
  });

  test('NVML fails to init: the supervisor measures through nvidia-smi and says so', async () => {
    gpu.fake.write('nvml-init-fail', '18'); // NVML_ERROR_LIB_RM_VERSION_MISMATCH
    const sup = new Supervisor({ ...SIMULATED_CUDA, gpuProbe: probe() });
    const cleanups = collectEvents(sup, 'cleanup');
    await sup.start();
    const stats = await sup.stats();
    assert.equal(stats.gpu?.probe.kind, 'nvidia-smi');
    assert.equal(stats.workers[0]?.gpuMiB, 300);
    await sup.run({ op: 'alloc', mib: 128, holdMs: 700 });
    await waitUntil(() => cleanups.length > 0, 'cleanup event');
    await sup.shutdown();
    assert.ok(gpu.fake.calls() > 0, 'nvidia-smi took the readings');
  });
});
