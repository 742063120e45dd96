// 7. What a GPU reading costs: NVML (koffi, its own thread) against nvidia-smi (a spawn per query), on
// the fakes of the test suite (a libnvidia-ml.so.1 built from C, the node script standing in for
// nvidia-smi) and on the real ones when this host has them; and what reading per cleanup costs a task
// (the worker reads its own GPU memory around each cleanup with NVML).
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Supervisor } from 'gpu-supervisor';
import { chooseGpuProbe } from '../../dist/probes/gpu-probe-choice.js';
import { GpuProbe } from '../../dist/probes/gpu-probe.js';
import { fmt, log, table } from '../lib/report.mjs';

export const title = 'GPU readings: NVML vs nvidia-smi, per reading and per task';

const here = (path) => fileURLToPath(new URL(`../../${path}`, import.meta.url));
const FAKE_BIN = here('test/fixtures/bin');
const CUDA_WORKER = here('test/fixtures/cuda-worker.mjs');
const UUID = 'GPU-5f2c3a1e-8c1b-4b7e-9a3d-2f6e1c0b9a77';

/** A fake GPU with a few listed processes: the state both fakes read. */
function fakeState() {
  const dir = mkdtempSync(join(tmpdir(), 'bench-gpu-'));
  mkdirSync(join(dir, 'procs'));
  writeFileSync(
    join(dir, 'gpus.json'),
    JSON.stringify([{ index: 0, uuid: UUID, name: 'NVIDIA H200', baseUsedMiB: 0, totalMiB: 143771 }]),
  );
  writeFileSync(join(dir, 'nvml-devices.txt'), `gpu ${UUID} 143771 0 0 NVIDIA H200\n`);
  for (const pid of [process.pid, process.ppid])
    writeFileSync(join(dir, 'procs', String(pid)), `${UUID} 512`);
  return dir;
}

function buildFakeNvml(dir) {
  const library = join(dir, 'libnvidia-ml.so.1');
  try {
    execFileSync('cc', ['-shared', '-fPIC', '-O2', '-o', library, here('test/fixtures/nvml/fake_nvml.c')]);
    return library;
  } catch (error) {
    log(`  no cc (${error.message.split('\n')[0]}): the fake NVML rows are skipped`);
    return undefined;
  }
}

function onPath(command) {
  try {
    execFileSync(command, ['-L'], { stdio: 'ignore', timeout: 10_000 });
    return true;
  } catch {
    return false;
  }
}

const quantile = (sorted, q) => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))];

/** n readings one after the other: wall ms per reading (median, p99) and this process's CPU per reading. */
async function perReading(probe, n) {
  const times = [];
  const cpu0 = process.cpuUsage();
  for (let i = 0; i < n; i++) {
    const t0 = performance.now();
    if (!(await probe.fresh())) throw new Error(`reading ${i} failed: ${probe.failure?.message}`);
    times.push(performance.now() - t0);
  }
  const cpu = process.cpuUsage(cpu0);
  times.sort((a, b) => a - b);
  return {
    median: quantile(times, 0.5),
    p99: quantile(times, 0.99),
    cpuMs: (cpu.user + cpu.system) / 1000 / n,
  };
}

async function nvmlProbe(library) {
  const { probe } = await chooseGpuProbe({
    kind: 'nvml',
    nvmlLibrary: library,
    nvmlIntervalMs: 100,
    command: 'nvidia-smi',
    timeoutMs: 5_000,
    minIntervalMs: 0,
  });
  if (probe.state !== 'available') {
    probe.close();
    return undefined;
  }
  return probe;
}

/** In-process NVML calls, as a worker makes them around its cleanup (no thread hop). */
async function ownReading(library, n) {
  const { bindNvml } = await import('../../dist/probes/nvml-binding.js');
  const { NvmlReading } = await import('../../dist/probes/nvml-read.js');
  const nvml = bindNvml(library);
  if (nvml.init() !== 0) return undefined;
  const reading = new NvmlReading(nvml);
  const t0 = performance.now();
  for (let i = 0; i < n; i++) reading.processMiB(process.pid);
  const ms = (performance.now() - t0) / n;
  nvml.shutdown();
  return ms;
}

/** A process's CPU time so far (ms), from /proc: user + system clock ticks (100 Hz). */
function cpuMsOf(pid) {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
  return (Number(fields[11]) + Number(fields[12])) * 10;
}

/**
 * Short tasks on one simulated-CUDA worker, with the given GPU measurement: wall time per task, and
 * CPU per task of the worker and of the supervisor (CPU time is what a reading costs; wall time on a
 * shared 2-core machine mostly measures the neighbours).
 */
async function tasksPerSecond(options, count) {
  const sup = new Supervisor({
    worker: CUDA_WORKER,
    workers: 1,
    logLevel: 'silent',
    recycleEveryTasks: 0,
    workerOptions: { mode: 'simulated', contextMiB: 300 },
    ...options,
  });
  let withFigures = 0;
  let cleanups = 0;
  sup.events.on('cleanup', (e) => {
    cleanups++;
    if (e.gpuFreedMiB !== undefined) withFigures++;
  });
  await sup.start();
  const stats = await sup.stats();
  const kind = stats.gpu?.probe.kind ?? 'off';
  const workerPid = stats.workers[0].pid;
  for (let i = 0; i < 50; i++) await sup.run({ op: 'info' }); // warm-up
  withFigures = cleanups = 0;
  let next = 0;
  const workerCpu0 = cpuMsOf(workerPid);
  const ownCpu0 = process.cpuUsage();
  const t0 = performance.now();
  await Promise.all(
    Array.from({ length: 4 }, async () => {
      while (next++ < count) await sup.run({ op: 'info' });
    }),
  );
  const seconds = (performance.now() - t0) / 1000;
  const workerCpuUs = ((cpuMsOf(workerPid) - workerCpu0) * 1000) / count;
  const ownCpu = process.cpuUsage(ownCpu0);
  const supervisorCpuUs = (ownCpu.user + ownCpu.system) / count;
  // Cleanup lines wait for their GPU reading (nvidia-smi: up to minIntervalMs): count them all.
  const deadline = Date.now() + 5_000;
  while (cleanups < count && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
  await sup.shutdown();
  return {
    kind,
    rate: count / seconds,
    usPerTask: (seconds / count) * 1e6,
    workerCpuUs,
    supervisorCpuUs,
    withFigures,
    cleanups,
  };
}

export async function run({ quick }) {
  const dir = fakeState();
  const saved = {
    PATH: process.env.PATH,
    dir: process.env.FAKE_NVIDIA_SMI_DIR,
    uuid: process.env.FAKE_GPU_UUID,
  };
  try {
    const library = buildFakeNvml(dir);
    const readings = [];
    const nvmlN = quick ? 200 : 3000;
    const smiN = quick ? 5 : 40;
    const row = (label, r, n) => [label, String(n), fmt.ms(r.median), fmt.ms(r.p99), r.cpuMs.toFixed(3)];

    // Real ones first, with the ambient PATH and no fake state.
    const realNvml = await nvmlProbe('libnvidia-ml.so.1');
    if (realNvml) {
      log('  real NVML');
      readings.push(row('NVML, real libnvidia-ml.so.1', await perReading(realNvml, nvmlN), nvmlN));
      realNvml.close();
    }
    if (onPath('nvidia-smi')) {
      log('  real nvidia-smi');
      const smi = new GpuProbe({ command: 'nvidia-smi', minIntervalMs: 0, timeoutMs: 10_000 });
      if (await smi.init())
        readings.push(row('nvidia-smi, real (two queries)', await perReading(smi, smiN), smiN));
    }

    process.env.PATH = `${FAKE_BIN}:${process.env.PATH}`;
    process.env.FAKE_NVIDIA_SMI_DIR = dir;
    process.env.FAKE_GPU_UUID = UUID; // the simulated CUDA worker's memory goes on this GPU
    let ownMs;
    if (library) {
      log('  fake NVML');
      const fake = await nvmlProbe(library);
      if (!fake)
        throw new Error(
          'the fake NVML library did not init (is FAKE_NVIDIA_SMI_DIR in the real environment?)',
        );
      readings.push(row('NVML, fake lib (thread round trip)', await perReading(fake, nvmlN), nvmlN));
      fake.close();
      ownMs = await ownReading(library, nvmlN);
    }
    log('  fake nvidia-smi');
    const smi = new GpuProbe({ command: join(FAKE_BIN, 'nvidia-smi'), minIntervalMs: 0, timeoutMs: 10_000 });
    await smi.init();
    readings.push(row('nvidia-smi, fake script (two spawns)', await perReading(smi, smiN), smiN));

    const count = quick ? 300 : 3000;
    log(`  ${count} short tasks per variant`);
    const variants = [['GPU measurement off', { cleanup: { gpu: false } }]];
    if (library) {
      variants.push([
        'NVML (fake lib): worker reads around each cleanup',
        { gpuProbe: { kind: 'nvml', nvmlLibrary: library } },
      ]);
    }
    variants.push(['nvidia-smi (fake script)', { gpuProbe: { kind: 'nvidia-smi', minIntervalMs: 500 } }]);
    const tasks = [];
    for (const [label, options] of variants) tasks.push([label, await tasksPerSecond(options, count)]);
    const off = tasks[0][1];

    const markdown = [
      'Per reading (one after another; CPU: this process, all threads: the NVML thread included, the',
      'nvidia-smi children not):',
      '',
      table(['probe', 'readings', 'median ms', 'p99 ms', 'CPU ms / reading'], readings),
      '',
      ownMs === undefined
        ? ''
        : `A worker's own reading (in-process NVML calls, its pid over every device), fake lib: ${(ownMs * 1000).toFixed(1)} µs; two per task.`,
      '',
      `Per task: ${count} short tasks (\`op: 'info'\`), 1 simulated-CUDA worker, 4 in flight:`,
      '',
      table(
        [
          'GPU measurement',
          'probe',
          'tasks/s',
          'wall µs / task',
          'worker CPU µs / task',
          'supervisor CPU µs / task',
          'extra CPU µs / task (both)',
          'cleanup lines with GPU figures',
        ],
        tasks.map(([label, t]) => [
          label,
          t.kind,
          fmt.rate(t.rate),
          t.usPerTask.toFixed(0),
          t.workerCpuUs.toFixed(0),
          t.supervisorCpuUs.toFixed(0),
          (t.workerCpuUs + t.supervisorCpuUs - off.workerCpuUs - off.supervisorCpuUs).toFixed(0),
          `${t.withFigures}/${t.cleanups}`,
        ]),
      ),
    ].join('\n');
    return { markdown };
  } finally {
    process.env.PATH = saved.PATH;
    if (saved.dir === undefined) delete process.env.FAKE_NVIDIA_SMI_DIR;
    else process.env.FAKE_NVIDIA_SMI_DIR = saved.dir;
    if (saved.uuid === undefined) delete process.env.FAKE_GPU_UUID;
    else process.env.FAKE_GPU_UUID = saved.uuid;
    rmSync(dir, { recursive: true, force: true });
  }
}
