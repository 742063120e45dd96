#!/usr/bin/env node
// Real-GPU check of what gpu-supervisor measures. Runs the supervisor (built dist/) with a worker that
// holds real CUDA memory through the cuda-holder test addon, and compares every freed figure it logs
// with nvidia-smi's own device readings:
//   1. the worker's pid and GPU MiB appear in the probe (its CUDA context);
//   2. light cleanup (cuMemFree) frees a 1024 MiB allocation but not the context;
//   3. kill + respawn frees everything the process held;
//   4. logged freed MiB match nvidia-smi's device delta within 2 MiB;
//   5. NVML (koffi): it loads, the supervisor reads through it (stats.gpu.probe.kind), its device and
//      per-process figures match nvidia-smi's, and a reading costs less than nvidia-smi's;
//   6. the hard GPU limit (limits.gpuMiB): a task whose allocation passes it is answered E_OUT_OF_MEMORY
//      while it runs, with a `limit` event naming the reading;
//   7. the budgeted pre-spawn: an admin recycle of a busy worker starts its successor early when the
//      device has room, and defers it (gpu-budget) when recycle.prespawnMarginMiB exceeds the free memory.
// GPU_SUPERVISOR_NVML_LIBRARY names the NVML library (default libnvidia-ml.so.1; the test suite points
// it at its fake).
// Prints a table, exits 1 on a mismatch, 2 when it cannot run. Without a GPU it runs against the fake
// nvidia-smi and the worker's simulated mode (FAKE_NVIDIA_SMI_DIR set, test/fixtures/bin on PATH).
//
//   node scripts/gpu-check.mjs [--write docs/gpu-validation.md]
import { execFileSync } from 'node:child_process';
import { existsSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const WORKER = `${ROOT}test/fixtures/cuda-worker.mjs`;
const TOLERANCE_MiB = 2;
const ALLOC_MiB = 1024;
const HOLD_MiB = 512;

const { values: flags } = parseArgs({ options: { write: { type: 'string' } } });
if (!existsSync(`${ROOT}dist/index.js`)) {
  console.error('gpu-check: build first (npm run build)');
  process.exit(2);
}
const { Supervisor } = await import(`${ROOT}dist/index.js`);
const { GpuProbe } = await import(`${ROOT}dist/probes/gpu-probe.js`);
const { deviceUsedMiB, processUsedMiB } = await import(`${ROOT}dist/probes/gpu-attribution.js`);
const { chooseGpuProbe } = await import(`${ROOT}dist/probes/gpu-probe-choice.js`);
const NVML_LIBRARY = process.env.GPU_SUPERVISOR_NVML_LIBRARY || 'libnvidia-ml.so.1';

const log = (line) => console.log(`gpu-check: ${line}`);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// An independent probe: the supervisor's figures are checked against readings it did not take.
const probe = new GpuProbe({ command: 'nvidia-smi', minIntervalMs: 0, timeoutMs: 10_000 });
if (!(await probe.init())) {
  console.error(`gpu-check: no usable GPU (${probe.failure?.kind}: ${probe.failure?.message})`);
  process.exit(2);
}
const device = async () => deviceUsedMiB(await probe.fresh(), 0);
const gpu = probe.latest.devices[0];

function driverVersion() {
  try {
    return execFileSync('nvidia-smi', ['--query-gpu=driver_version', '--format=csv,noheader'], {
      encoding: 'utf8',
    })
      .split('\n')[0]
      .trim();
  } catch {
    return 'unknown';
  }
}

/** A supervisor of one CUDA worker on GPU 0; each check adds what it is about. */
function cudaSupervisor(options) {
  return new Supervisor({
    worker: WORKER,
    workers: 1,
    gpus: [0],
    recycleEveryTasks: 0,
    logLevel: 'silent',
    workerOptions: { mode: 'auto' },
    ...options,
    gpuProbe: {
      minIntervalMs: 100,
      reclaimTimeoutMs: 15_000,
      nvmlLibrary: NVML_LIBRARY,
      ...options.gpuProbe,
    },
  });
}

const sup = cudaSupervisor({ logLevel: process.env.LOG_LEVEL ?? 'warn' });
const cleanups = [];
const recycles = [];
const starts = [];
sup.events.on('worker-ready', (e) => starts.push(e));
sup.events.on('cleanup', (e) => cleanups.push(e));
sup.events.on('recycle', (e) => recycles.push(e));

const rows = [];
function check(name, expected, measured, tolerance = TOLERANCE_MiB) {
  const ok = typeof measured === 'number' && Math.abs(measured - expected) <= tolerance;
  rows.push({ name, expected, measured: measured ?? 'missing', ok });
}
function checkTrue(name, condition, measured) {
  rows.push({ name, expected: 'yes', measured, ok: Boolean(condition) });
}
async function waitFor(list, what, timeoutMs = 20_000) {
  const deadline = Date.now() + timeoutMs;
  while (list.length === 0) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(50);
  }
  return list.shift();
}

/** Per-reading cost, readings one after another (ms, average). */
async function costOf(reader, n) {
  const started = performance.now();
  for (let i = 0; i < n; i++) await reader.fresh();
  return (performance.now() - started) / n;
}

async function checkNvml(workerPid) {
  const { probe: nvmlProbe } = await chooseGpuProbe({
    kind: 'nvml',
    nvmlLibrary: NVML_LIBRARY,
    nvmlIntervalMs: 100,
    command: 'nvidia-smi',
    timeoutMs: 10_000,
    minIntervalMs: 0,
  });
  const loaded = nvmlProbe.state === 'available';
  checkTrue(
    `NVML loads (${NVML_LIBRARY}) and lists the GPU`,
    loaded,
    loaded ? nvmlProbe.latest.devices[0]?.name : `${nvmlProbe.failure?.kind}: ${nvmlProbe.failure?.message}`,
  );
  const kind = (await sup.stats()).gpu?.probe.kind;
  checkTrue('supervisor reads through NVML (stats.gpu.probe.kind)', kind === 'nvml', kind);
  if (!loaded) return undefined;
  const [viaSmi, viaNvml] = [await probe.fresh(), await nvmlProbe.fresh()];
  check('NVML device used = nvidia-smi device used', deviceUsedMiB(viaSmi, 0), deviceUsedMiB(viaNvml, 0));
  check(
    "NVML worker's MiB = nvidia-smi worker's MiB",
    processUsedMiB(viaSmi, workerPid) ?? -1,
    processUsedMiB(viaNvml, workerPid),
  );
  const nvmlMs = await costOf(nvmlProbe, 200);
  const smiMs = await costOf(probe, 5);
  checkTrue(
    'NVML reading cheaper than nvidia-smi reading',
    nvmlMs < smiMs,
    `${nvmlMs.toFixed(3)} ms vs ${smiMs.toFixed(1)} ms`,
  );
  const mig = viaNvml.devices[0]?.mig;
  nvmlProbe.close();
  return { nvmlMs, smiMs, mig: mig ? `${mig.length} MIG instances` : 'MIG off' };
}

/** 6. A second supervisor with a hard GPU limit just above the worker's context. */
async function checkHardGpuLimit(contextMiB) {
  const limited = cudaSupervisor({ limits: { gpuMiB: contextMiB + ALLOC_MiB / 2 } });
  const limits = [];
  limited.events.on('limit', (e) => limits.push(e));
  try {
    await limited.start();
    const outcome = await limited.run({ op: 'alloc', mib: ALLOC_MiB, holdMs: 5_000 }).then(
      () => 'answered ok',
      (error) => error.code,
    );
    checkTrue('hard GPU limit: the task is E_OUT_OF_MEMORY', outcome === 'E_OUT_OF_MEMORY', outcome);
    const event = limits[0];
    checkTrue(
      'hard GPU limit: limit event (gpu) with the reading over the limit',
      event?.limit === 'gpu' && event.readingMiB > event.limitMiB,
      event ? `${event.readingMiB} MiB over ${event.limitMiB}` : 'none',
    );
    checkTrue('hard GPU limit: the supervisor serves on', (await limited.run({ op: 'info' })).pid > 0, 'yes');
  } finally {
    await limited.shutdown().catch(() => undefined);
  }
}

/** 7. An admin recycle of a busy worker, with room on the device and with a margin nothing covers. */
async function checkBudgetedPrespawn(marginMiB) {
  const budgeted = cudaSupervisor({ recycle: { prespawn: true, prespawnMarginMiB: marginMiB } });
  const seen = [];
  budgeted.events.on('recycle', (e) => seen.push(e));
  try {
    await budgeted.start();
    await budgeted.run({ op: 'info' });
    await sleep(300); // a GPU reading with the worker in it: the budget's facts
    const busy = budgeted.run({ op: 'alloc', mib: 64, holdMs: 1_500 });
    await sleep(300);
    await budgeted.admin('recycle');
    await busy.catch(() => undefined);
    return seen[0];
  } finally {
    await budgeted.shutdown().catch(() => undefined);
  }
}

let mode = 'unknown';
let nvml;
try {
  log(`GPU 0: ${gpu.name}, ${gpu.usedMiB} / ${gpu.totalMiB} MiB used`);
  const idleDevice = await device();
  await sup.start();
  const info = await sup.run({ op: 'info' });
  mode = info.mode;
  log(`worker ${info.pid} ready (${mode})`);

  // 1. The worker shows up with its context.
  const stats = await sup.stats();
  const contextMiB = stats.workers[0].gpuMiB;
  checkTrue(
    'worker pid listed by nvidia-smi',
    contextMiB !== null && contextMiB > 0,
    `${contextMiB} MiB (attribution ${stats.gpu?.attribution})`,
  );
  const withWorker = await device();
  check('device delta of the worker start = its listed MiB', contextMiB ?? 0, withWorker - idleDevice);

  // 2. Light cleanup: the allocation goes back, the context stays.
  await sleep(300);
  cleanups.length = 0;
  const task = sup.run({ op: 'alloc', mib: ALLOC_MiB, holdMs: 1_500 });
  await sleep(800);
  const duringTask = await device();
  await task;
  const light = await waitFor(cleanups, 'the cleanup event');
  const afterLight = await device();
  check('light cleanup: gpuFreedMiB = allocation', ALLOC_MiB, light.gpuFreedMiB);
  check('light cleanup: logged freed = device delta', duringTask - afterLight, light.gpuFreedMiB);
  check('light cleanup: context still held', contextMiB ?? 0, light.gpuAfterMiB);

  // 3. Kill + respawn: everything the process held goes back.
  await sup.run({ op: 'hold', mib: HOLD_MiB });
  await sleep(300);
  cleanups.length = 0;
  const beforeKill = await device();
  await sup.admin('recycle');
  const recycle = await waitFor(recycles, 'the recycle event');
  const afterRespawn = await device();
  check('recycle: gpuFreedMiB = context + leak', (contextMiB ?? 0) + HOLD_MiB, recycle.gpuFreedMiB);
  check(
    'recycle: logged freed = device delta (less new baseline)',
    beforeKill - (afterRespawn - (recycle.gpuBaselineMiB ?? 0)),
    recycle.gpuFreedMiB,
  );
  checkTrue(
    'recycle: driver reclaimed before respawn',
    recycle.gpuReclaimed === true,
    `${recycle.gpuReclaimMs} ms`,
  );
  check(
    'recycle: new worker baseline = a fresh context',
    contextMiB ?? 0,
    recycle.gpuBaselineMiB,
    Math.max(TOLERANCE_MiB, 8),
  );

  // 5. NVML, checked against nvidia-smi on the same quiet GPU (the worker idle, holding its context).
  nvml = await checkNvml((await sup.stats()).workers[0]?.pid);
  await sup.shutdown();

  await checkHardGpuLimit(contextMiB ?? 0);
  const roomy = await checkBudgetedPrespawn(256);
  checkTrue(
    'budgeted pre-spawn: with room, the successor starts early',
    roomy?.prespawn === 'early',
    roomy ? `prespawn ${roomy.prespawn ?? '-'}` : 'no recycle',
  );
  const full = await checkBudgetedPrespawn(gpu.totalMiB ?? 1_000_000);
  checkTrue(
    'budgeted pre-spawn: a margin over the free memory defers it (gpu-budget)',
    full?.prespawn === 'deferred' && full.prespawnReason === 'gpu-budget',
    full ? `prespawn ${full.prespawn ?? '-'} ${full.prespawnReason ?? ''}` : 'no recycle',
  );
} catch (error) {
  rows.push({ name: 'run', expected: 'completes', measured: String(error.message ?? error), ok: false });
} finally {
  await sup.shutdown().catch(() => undefined);
}

const table = [
  '| check | expected | measured | ok |',
  '|---|---|---|---|',
  ...rows.map((r) => `| ${r.name} | ${r.expected} | ${r.measured} | ${r.ok ? 'yes' : '**NO**'} |`),
].join('\n');
// Where each worker start went (issue 16): on a GPU the CUDA context's creation is the phase that counts.
const phaseTable = [
  '| start | fork to ready ms | boot | runtime | module | binding (addon) | steps | setup | ready |',
  '|---|---|---|---|---|---|---|---|---|',
  ...starts.map(({ pid, phases: p }, i) => {
    const steps = (p.steps ?? []).map((s) => `${s.name} ${s.ms.toFixed(1)}`).join(', ') || '-';
    const f = (v) => (typeof v === 'number' ? v.toFixed(1) : '-');
    return `| ${i === 0 ? 'first' : 'after recycle'} (pid ${pid}) | ${f(p.totalMs)} | ${f(p.bootMs)} | ${f(p.runtimeMs)} | ${f(p.moduleMs)} | ${f(p.bindingMs)} | ${steps} | ${f(p.setupMs)} | ${f(p.readyMs)} |`;
  }),
].join('\n');
console.log(table);
console.log(`\nStart phases\n\n${phaseTable}`);
const failed = rows.filter((r) => !r.ok).length;
log(
  `${rows.length - failed}/${rows.length} checks passed (${mode}; nvidia-smi reading ${probe.averageMs} ms on average` +
    `${nvml ? `, NVML reading ${nvml.nvmlMs.toFixed(3)} ms` : ''})`,
);
if (flags.write) {
  const header = [
    '# GPU validation',
    '',
    `Run: ${new Date().toISOString()} with \`node scripts/gpu-check.mjs\``,
    `GPU: ${gpu.name} (${gpu.totalMiB} MiB), driver ${driverVersion()}, worker mode ${mode}`,
    `nvidia-smi reading (two queries): ${probe.averageMs} ms on average`,
    nvml
      ? `NVML reading (${NVML_LIBRARY}, ${nvml.mig}): ${nvml.nvmlMs.toFixed(3)} ms vs nvidia-smi ${nvml.smiMs.toFixed(1)} ms, readings one after another`
      : 'NVML: not readable (see the table)',
    '',
  ].join('\n');
  writeFileSync(flags.write, `${header}${table}\n\n## Start phases (ms)\n\n${phaseTable}\n`);
  log(`wrote ${flags.write}`);
}
process.exit(failed === 0 ? 0 : 1);
