// GPU memory end to end without a GPU: the real supervisor and real worker processes, a fake
// nvidia-smi on PATH that reports simulated CUDA memory per live pid (as the driver would), and the
// real probe parsing its output.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Supervisor, type SupervisorOptions } from 'gpu-supervisor';
import { GpuProbe } from '../dist/probes/gpu-probe.js';
import { ECHO_WORKER, collectEvents, waitUntil } from './helpers.js';
import { FakeGpu, GPU0, GPU1, SIMULATED_CUDA, TWO_GPUS, fakeGpuPerTest } from './gpu-helpers.js';

const PROBE = {
  kind: 'nvidia-smi' as const,
  command: 'nvidia-smi',
  minIntervalMs: 50,
  timeoutMs: 2_000,
  reclaimTimeoutMs: 3_000,
};

function gpuSupervisor(options: SupervisorOptions = {}): Supervisor {
  return new Supervisor({ ...SIMULATED_CUDA, gpuProbe: PROBE, ...options });
}

describe('GpuProbe against the fake nvidia-smi', () => {
  const gpu = fakeGpuPerTest(TWO_GPUS);

  test('reads devices and processes; concurrent callers share readings', async () => {
    gpu.fake.write(`procs/${process.pid}`, `${GPU1} 2048`);
    const probe = new GpuProbe(PROBE);
    assert.equal(await probe.init(), true);
    assert.deepEqual(
      probe.latest?.devices.map((d) => [d.index, d.name, d.usedMiB]),
      [
        [0, 'NVIDIA H200', 0],
        [1, 'NVIDIA GeForce RTX 4090', 3048],
      ],
    );
    assert.deepEqual(probe.latest?.processes, [{ gpuUuid: GPU1, pid: process.pid, usedMiB: 2048 }]);
    const before = gpu.fake.calls();
    const readings = await Promise.all(Array.from({ length: 20 }, () => probe.fresh()));
    // 20 callers arriving together: one reading (two queries) serves all of them.
    assert.equal(gpu.fake.calls() - before, 2);
    assert.equal(new Set(readings.map((r) => r?.seq)).size, 1);
    assert.ok(probe.averageMs > 0);
  });

  test('once a GPU has been seen, a reading that lists none is skipped, not the end of measurement', async () => {
    const probe = new GpuProbe(PROBE);
    assert.equal(await probe.init(), true);
    const good = readFileSync(join(gpu.fake.dir, 'gpus.json'), 'utf8');
    gpu.fake.write('gpus.json', '[]');
    assert.equal(await probe.fresh(), undefined);
    assert.equal(probe.state, 'available');
    assert.equal(probe.failure?.kind, 'no-devices');
    gpu.fake.write('gpus.json', good);
    assert.equal((await probe.fresh())?.devices.length, 2, 'the next good reading is used');
  });

  test('failure modes make the probe unavailable with the reason; a hung call times out', async () => {
    const cases: Array<[(fake: FakeGpu) => void, string, Partial<typeof PROBE>]> = [
      [
        (fake) =>
          fake.write(
            'fail.txt',
            "NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver. Make sure that the latest NVIDIA driver is installed and running.\n",
          ),
        'no-driver',
        {},
      ],
      [(fake) => fake.write('gpus.json', '[]'), 'no-devices', {}],
      [() => undefined, 'not-installed', { command: 'nvidia-smi-does-not-exist' }],
      [(fake) => fake.write('hang', ''), 'timeout', { timeoutMs: 300 }],
    ];
    for (const [arrange, kind, options] of cases) {
      const local = new FakeGpu();
      local.install();
      arrange(local);
      const probe = new GpuProbe({ ...PROBE, ...options });
      assert.equal(await probe.init(), false, kind);
      assert.equal(probe.state, 'unavailable');
      assert.equal(probe.failure?.kind, kind);
      assert.equal(await probe.fresh(), undefined, 'no retry loop once unavailable');
    }
  });
});

describe('supervisor GPU accounting (simulated CUDA worker)', () => {
  const gpu = fakeGpuPerTest();

  test("stats show each GPU and the worker's own GPU memory (process attribution)", async () => {
    const sup = gpuSupervisor({ workers: 2 });
    await sup.start();
    const stats = await sup.stats();
    assert.ok(stats.gpu);
    assert.equal(stats.gpu.attribution, 'process');
    assert.deepEqual(
      stats.gpu.devices.map(({ index, uuid, name, usedMiB, totalMiB }) => ({
        index,
        uuid,
        name,
        usedMiB,
        totalMiB,
      })),
      [{ index: 0, uuid: GPU0, name: 'NVIDIA H200', usedMiB: 600, totalMiB: 143771 }],
    );
    assert.deepEqual(
      stats.workers.map((w) => w.gpuMiB),
      [300, 300],
    );
    await sup.shutdown();
  });

  test('light cleanup logs the GPU memory it freed next to the RSS figures; the context stays', async () => {
    const sup = gpuSupervisor();
    const cleanups = collectEvents(sup, 'cleanup');
    await sup.start();
    await sup.run({ op: 'alloc', mib: 512, holdMs: 250 });
    await waitUntil(() => cleanups.length > 0, 'cleanup event');
    const line = cleanups[0]!;
    assert.equal(line.attribution, 'process');
    assert.equal(line.gpuBeforeMiB, 812);
    assert.equal(line.gpuAfterMiB, 300);
    assert.equal(line.gpuFreedMiB, 512);
    assert.equal(typeof line.rssBeforeMiB, 'number');
    await sup.shutdown();
  });

  test('kill + respawn: waits for the driver to reclaim, logs the whole process freed and the new baseline', async () => {
    gpu.fake.write('reclaim-delay-ms', '300');
    const sup = gpuSupervisor();
    const recycles = collectEvents(sup, 'recycle');
    await sup.start();
    await sup.run({ op: 'hold', mib: 256 });
    const [oldPid] = (await sup.stats()).workers.map((w) => w.pid);
    await sup.admin('recycle');
    const event = recycles[0]!;
    assert.equal(event.oldPid, oldPid);
    assert.equal(event.gpuBeforeMiB, 556);
    assert.equal(event.gpuFreedMiB, 556);
    assert.equal(event.gpuReclaimed, true);
    assert.ok(event.gpuReclaimMs! >= 250, `waited ${event.gpuReclaimMs} ms for the driver`);
    assert.equal(event.gpuBaselineMiB, 300);
    assert.equal(event.attribution, 'process');
    await sup.shutdown();
  });

  test('recycle.gpuMiB: a worker over the limit after a task is recycled with reason gpu', async () => {
    const sup = gpuSupervisor({ recycle: { gpuMiB: 500 } });
    const recycles = collectEvents(sup, 'recycle');
    await sup.start();
    await sup.run({ op: 'hold', mib: 100 }); // 400 MiB: under the limit
    await sup.run({ op: 'hold', mib: 200 }); // 600 MiB: over
    await waitUntil(() => recycles.length > 0, 'gpu recycle');
    assert.equal(recycles[0]!.reason, 'gpu');
    assert.match(recycles[0]!.detail, /600 MiB over recycle.gpuMiB 500/);
    assert.equal(recycles[0]!.gpuFreedMiB, 600);
    const info = (await sup.run({ op: 'info' })) as { allocatedMiB: number };
    assert.equal(info.allocatedMiB, 0, 'the replacement starts clean');
    await sup.shutdown();
  });

  test('inside a PID namespace (pids never match): device attribution, device-level deltas', async () => {
    gpu.fake.write('pid-offset', '100000');
    const sup = gpuSupervisor();
    const cleanups = collectEvents(sup, 'cleanup');
    const recycles = collectEvents(sup, 'recycle');
    await sup.start();
    await sup.run({ op: 'alloc', mib: 512, holdMs: 250 });
    await waitUntil(() => cleanups.length > 0, 'cleanup event');
    assert.equal(cleanups[0]!.attribution, 'device');
    assert.equal(cleanups[0]!.gpuFreedMiB, 512);
    const stats = await sup.stats();
    assert.equal(stats.gpu?.attribution, 'device');
    assert.equal(stats.workers[0]!.gpuMiB, null);
    await sup.admin('recycle');
    assert.equal(recycles[0]!.attribution, 'device');
    assert.equal(recycles[0]!.gpuFreedMiB, 300);
    await sup.shutdown();
  });

  test('inside a PID namespace, with two workers on the GPU a cleanup claims no share of the device drop', async () => {
    gpu.fake.write('pid-offset', '100000');
    const sup = gpuSupervisor({ workers: 2 });
    const cleanups = collectEvents(sup, 'cleanup');
    await sup.start();
    try {
      await Promise.all([
        sup.run({ op: 'alloc', mib: 512, holdMs: 250 }),
        sup.run({ op: 'alloc', mib: 256, holdMs: 250 }),
      ]);
      await waitUntil(
        () => cleanups.filter((c) => c.gpuAfterMiB !== undefined).length >= 1,
        'cleanup figures',
      );
      const device = cleanups.filter((c) => c.attribution === 'device');
      assert.ok(device.length >= 1, JSON.stringify(cleanups));
      // The device's before/after are still given; what fell is not this worker's alone.
      for (const c of device) {
        assert.equal(c.gpuFreedMiB, undefined, JSON.stringify(c));
        assert.equal(typeof c.gpuAfterMiB, 'number');
      }
    } finally {
      await sup.shutdown();
    }
  });

  test('inside a PID namespace, clear-cache over two workers counts their device once', async () => {
    gpu.fake.write('pid-offset', '100000');
    const sup = gpuSupervisor({ workers: 2 });
    const recycles = collectEvents(sup, 'recycle');
    await sup.start();
    try {
      await Promise.all([sup.run({ op: 'hold', mib: 256 }), sup.run({ op: 'hold', mib: 128 })]);
      const answer = (await sup.admin('clear-cache')) as {
        gpu?: { beforeMiB: number; afterMiB: number; freedMiB: number };
        workers: Array<{ gpu?: unknown }>;
      };
      assert.equal(recycles.length, 2);
      assert.ok(recycles.every((e) => e.attribution === 'device'));
      const [first, last] = recycles as [(typeof recycles)[0], (typeof recycles)[0]];
      // One device, replaced one worker at a time: from the device before the first to after the last.
      assert.deepEqual(answer.gpu, {
        beforeMiB: first.gpuBeforeMiB,
        afterMiB: last.gpuBaselineMiB,
        freedMiB: first.gpuFreedMiB! + last.gpuFreedMiB!,
      });
      assert.ok(
        answer.gpu!.beforeMiB < first.gpuBeforeMiB! + last.gpuBeforeMiB!,
        'not counted once per worker',
      );
      assert.ok(
        answer.workers.every((w) => w.gpu === undefined),
        'no per-worker GPU figures under device attribution',
      );
    } finally {
      await sup.shutdown();
    }
  });

  test('no GPU: stats.gpu is null, one event, and nvidia-smi is never run again', async () => {
    gpu.fake.write('fail.txt', 'No devices were found\n');
    gpu.fake.write('fail.code', '6');
    const sup = gpuSupervisor({ worker: ECHO_WORKER });
    const unavailable = collectEvents(sup, 'gpu-unavailable');
    await sup.start();
    const calls = gpu.fake.calls();
    for (let i = 0; i < 10; i++) await sup.run({ op: 'echo', value: i });
    await new Promise((r) => setTimeout(r, 100));
    const stats = await sup.stats();
    assert.equal(stats.gpu, null);
    assert.deepEqual(
      unavailable.map((u) => u.kind),
      ['no-devices'],
    );
    assert.equal(gpu.fake.calls(), calls);
    await sup.shutdown();
  });

  test('cleanup.gpu false: GPU measurement off, nvidia-smi never runs', async () => {
    const sup = gpuSupervisor({ worker: ECHO_WORKER, cleanup: { gpu: false } });
    await sup.start();
    await sup.run({ op: 'echo', value: 1 });
    assert.equal((await sup.stats()).gpu, null);
    assert.equal(gpu.fake.calls(), 0);
    await sup.shutdown();
  });

  test('gpus [0, 1]: workers are placed round-robin, each with its own CUDA_VISIBLE_DEVICES', async () => {
    const sup = gpuSupervisor({ worker: ECHO_WORKER, workers: 3, gpus: [0, 1] });
    await sup.start();
    const stats = await sup.stats();
    assert.deepEqual(
      stats.workers.map((w) => w.gpu),
      [0, 1, 0],
    );
    const seen = new Set<unknown>();
    for (let i = 0; i < 12; i++) seen.add(await sup.run({ op: 'env', name: 'CUDA_VISIBLE_DEVICES' }));
    assert.deepEqual([...seen].sort(), ['0', '1']);
    await sup.shutdown();
  });

  test('readings are not per task: 200 quick tasks cost a bounded number of nvidia-smi runs', async () => {
    const sup = gpuSupervisor({
      worker: ECHO_WORKER,
      workers: 2,
      gpuProbe: { ...PROBE, minIntervalMs: 200 },
    });
    await sup.start();
    const before = gpu.fake.calls();
    const cleanups: string[] = [];
    sup.events.on('cleanup', (e) => e.taskId && cleanups.push(e.taskId));
    await Promise.all(Array.from({ length: 200 }, (_, i) => sup.run({ op: 'echo', value: i })));
    await waitUntil(() => cleanups.length === 200, 'every cleanup reported');
    const readings = (gpu.fake.calls() - before) / 2;
    // Not per task, whatever the machine's speed: the after-cleanup readings are shared (at most one
    // per minIntervalMs), so 200 cleanups cost far fewer readings than one each.
    assert.ok(readings * 4 <= cleanups.length, `${readings} readings for ${cleanups.length} cleanups`);
    await sup.shutdown();
  });
});
