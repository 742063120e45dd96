// 7. Hard limits during a task: a worker whose task allocates 20 MiB every 10 ms, limits.rssMiB 400, its
// RSS followed by a sampler of our own (a worker thread reading /proc/<pid>/statm every 2 ms, apart from
// the supervisor's event loop); and what the watch costs a workload that never nears its limit.
import { closeSync, openSync, readSync } from 'node:fs';
import { Worker } from 'node:worker_threads';
import { Supervisor } from 'gpu-supervisor';
import { LimitWatch } from '../../dist/pool/limit-watch.js';
import { StatmReader } from '../../dist/probes/statm-reader.js';
import { compare, echoWorkload } from '../lib/compare.mjs';
import * as c from '../lib/contenders.mjs';
import { fmt, log, table } from '../lib/report.mjs';

export const title = 'Hard limits: a ballooning task killed at limits.rssMiB, and the cost of the watch';

const LIMIT_MIB = 400;
const INTERVAL_MS = 100;
const STEP_MIB = 20;
const STEP_MS = 10;
const SAMPLE_MS = 2;
/** Growth in one watch interval, at the task's nominal rate (20 MiB per 10 ms: 200 MiB per 100 ms). */
const GROWTH_PER_INTERVAL_MIB = (STEP_MIB / STEP_MS) * INTERVAL_MS;
const BOUND_MIB = LIMIT_MIB + 3 * GROWTH_PER_INTERVAL_MIB;

/** The independent sampler: statm opened once, re-read every SAMPLE_MS until the process is gone. */
const SAMPLER = `
const { parentPort, workerData } = require('node:worker_threads');
const { openSync, readSync, closeSync } = require('node:fs');
const page = workerData.pageBytes;
const fd = openSync('/proc/' + workerData.pid + '/statm', 'r');
const buffer = Buffer.alloc(128);
const nap = new Int32Array(new SharedArrayBuffer(4));
let peak = 0, samples = 0;
parentPort.postMessage({ ready: true });
for (;;) {
  let text;
  try { text = buffer.toString('latin1', 0, readSync(fd, buffer, 0, 128, 0)); } catch { break; }
  const pages = Number(text.split(' ')[1]);
  if (!(pages > 0)) break; // a zombie's statm is all zeros: the process is gone
  peak = Math.max(peak, (pages * page) / 1048576);
  samples++;
  Atomics.wait(nap, 0, 0, workerData.sampleMs);
}
closeSync(fd);
parentPort.postMessage({ peak, samples });
`;

function pageBytes() {
  const fd = openSync('/proc/self/smaps', 'r');
  const buffer = Buffer.alloc(4096);
  const text = buffer.toString('latin1', 0, readSync(fd, buffer, 0, buffer.length, 0));
  closeSync(fd);
  return Number(/KernelPageSize:\s+(\d+) kB/.exec(text)?.[1] ?? 4) * 1024;
}

async function balloonRun() {
  const supervisor = new Supervisor({
    worker: c.OURS_ECHO,
    workers: 1,
    logLevel: 'silent',
    recycleEveryTasks: 0,
    cleanup: { gpu: false },
    limits: { rssMiB: LIMIT_MIB, intervalMs: INTERVAL_MS },
  });
  let limitEvent;
  supervisor.events.on('limit', (e) => (limitEvent = e));
  await supervisor.start();
  const [worker] = (await supervisor.stats()).workers;
  const sampler = new Worker(SAMPLER, {
    eval: true,
    workerData: { pid: worker.pid, pageBytes: pageBytes(), sampleMs: SAMPLE_MS },
  });
  const next = () => new Promise((resolve) => sampler.once('message', resolve));
  await next(); // sampling before the task starts
  const sampled = next();
  const started = performance.now();
  const answer = await supervisor
    .run({ balloon: { stepMiB: STEP_MIB, everyMs: STEP_MS, maxMiB: 4000 } })
    .then(
      () => 'ok',
      (error) => error.code,
    );
  const ms = performance.now() - started;
  const { peak, samples } = await sampled;
  await supervisor.shutdown();
  return { peak, samples, answer, ms, reading: limitEvent?.readingMiB };
}

/** Supervisor CPU (this process: library mode) per task, closed loop, 2 in flight, after a warm-up. */
async function cpuPerTask(options, count) {
  const contender = await c.oursLibrary(options);
  try {
    for (let i = 0; i < 500; i += 2) await Promise.all([contender.call({ i }), contender.call({ i: i + 1 })]);
    let next = 0;
    const before = process.cpuUsage();
    const lane = async () => {
      while (next < count) await contender.call({ i: next++ });
    };
    await Promise.all([lane(), lane()]);
    const used = process.cpuUsage(before);
    return (used.user + used.system) / count;
  } finally {
    await contender.close();
  }
}

/** What the watch adds to each task, alone: its start and stop (a task's whole share of it). */
function watchCostNs() {
  const watch = new LimitWatch(
    { rssMiB: 4000, gpuMiB: 0, intervalMs: INTERVAL_MS },
    () => undefined,
    () => {},
  );
  const handle = { memoryScope: 'worker', alive: true, pid: process.pid, gpuIndex: undefined };
  const n = 1_000_000;
  for (let i = 0; i < 10_000; i++) {
    watch.start(handle);
    watch.stop(handle);
  }
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < n; i++) {
    watch.start(handle);
    watch.stop(handle);
  }
  const ns = Number(process.hrtime.bigint() - t0) / n;
  watch.close();
  return ns;
}

/** One statm reading (what each interval of a busy worker costs), ns. */
function statmReadNs() {
  const reader = StatmReader.open(process.pid);
  const n = 20_000;
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < n; i++) reader.rssMiB();
  const ns = Number(process.hrtime.bigint() - t0) / n;
  reader.close();
  return ns;
}

const median = (values) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)];

export async function run({ quick, rounds }) {
  const balloonRounds = quick ? 1 : Math.max(3, rounds);
  const runs = [];
  for (let round = 1; round <= balloonRounds; round++) {
    const r = await balloonRun();
    log(
      `balloon round ${round}/${balloonRounds}: ${r.answer}, peak ${fmt.mib(r.peak)} MiB (${r.samples} samples), watch read ${r.reading} MiB`,
    );
    runs.push(r);
  }
  const peak = Math.max(...runs.map((r) => r.peak));
  const allKilled = runs.every((r) => r.answer === 'E_OUT_OF_MEMORY');
  const pass = allKilled && peak <= BOUND_MIB;
  log(`peak ${fmt.mib(peak)} MiB, limit ${LIMIT_MIB} MiB, bound ${BOUND_MIB} MiB: ${pass ? 'pass' : 'FAIL'}`);

  // The watch's cost: a no-leak echo workload with the watch on (a limit it never nears) and off.
  const n = quick ? 300 : 20000;
  const on = `watch on (limits.rssMiB 4000, every ${INTERVAL_MS} ms)`;
  const off = 'watch off (limits 0)';
  const cmp = await compare({
    variants: [
      { name: off, create: () => c.oursLibrary() },
      { name: on, create: () => c.oursLibrary({ limits: { rssMiB: 4000, intervalMs: INTERVAL_MS } }) },
    ],
    ...echoWorkload(n),
    reference: off,
    rounds: quick ? 1 : Math.max(5, rounds),
  });
  const cpuRounds = quick ? 1 : Math.max(5, rounds);
  const cpu = { on: [], off: [] };
  const watched = { limits: { rssMiB: 4000, intervalMs: INTERVAL_MS } };
  await cpuPerTask({}, Math.min(n, 2000)); // warm-up: the first supervisor in a process pays for the JIT
  for (let round = 1; round <= cpuRounds; round++) {
    // Alternating order, so neither variant always runs on a warmer process.
    if (round % 2) cpu.off.push(await cpuPerTask({}, n));
    cpu.on.push(await cpuPerTask(watched, n));
    if (!(round % 2)) cpu.off.push(await cpuPerTask({}, n));
    log(
      `cpu round ${round}/${cpuRounds}: off ${cpu.off.at(-1).toFixed(1)} us/task, on ${cpu.on.at(-1).toFixed(1)} us/task`,
    );
  }
  const cpuOff = median(cpu.off);
  const cpuOn = median(cpu.on);
  const perTaskNs = watchCostNs();
  const readNs = statmReadNs();
  // The watch's own work per task, against the whole supervisor CPU a task costs with the watch off.
  const ownCostPct = (perTaskNs / 1000 / cpuOff) * 100;
  log(
    `watch start+stop: ${perTaskNs.toFixed(0)} ns per task = ${ownCostPct.toFixed(3)}% of ${cpuOff.toFixed(1)} us`,
  );
  const closed = cmp.ratio(on, off, 'closed loop');
  const saturated = cmp.ratio(on, off, 'saturated');
  const costPct = (ratio) => (1 - ratio) * 100;
  log(`watch on/off: closed loop ${fmt.ratio(closed)}, saturated ${fmt.ratio(saturated)}`);

  const markdown =
    `One worker, one task allocating ${STEP_MIB} MiB every ${STEP_MS} ms (filled, so resident), ` +
    `\`limits.rssMiB\` ${LIMIT_MIB}, \`limits.intervalMs\` ${INTERVAL_MS}; the peak is what a separate ` +
    `sampler (a worker thread reading \`/proc/<pid>/statm\` every ${SAMPLE_MS} ms) saw. Bound: the limit ` +
    `plus 3 intervals of growth (${GROWTH_PER_INTERVAL_MIB} MiB each at the nominal rate).\n\n` +
    table(
      ['round', 'answer', 'peak RSS MiB', 'watch reading MiB', 'task ms', 'samples'],
      runs.map((r, i) => [
        String(i + 1),
        r.answer,
        fmt.mib(r.peak),
        String(r.reading ?? '-'),
        fmt.ms(r.ms),
        String(r.samples),
      ]),
    ) +
    `\n\npeak ${fmt.mib(peak)} MiB, limit ${LIMIT_MIB} MiB, bound ${BOUND_MIB} MiB: **${pass ? 'pass' : 'fail'}**\n\n` +
    `The watch's cost on a no-leak workload (echo tasks, 2 workers, library defaults), on vs off in the ` +
    `same run: closed loop ${fmt.ratio(closed)} (cost ${costPct(closed).toFixed(1)}%), saturated ` +
    `${fmt.ratio(saturated)} (cost ${costPct(saturated).toFixed(1)}%). Supervisor CPU per task ` +
    `(median of ${cpuRounds} interleaved rounds): off ${cpuOff.toFixed(1)} us, on ${cpuOn.toFixed(1)} us ` +
    `(${(((cpuOn - cpuOff) / cpuOff) * 100).toFixed(1)}%). The watch's own work per task, alone (its ` +
    `start and stop): ${perTaskNs.toFixed(0)} ns, ${ownCostPct.toFixed(3)}% of a task's supervisor CPU; ` +
    `plus one statm read (${(readNs / 1000).toFixed(1)} us) per ${INTERVAL_MS} ms per busy worker ` +
    `(${((readNs / 1e9 / (INTERVAL_MS / 1000)) * 100).toFixed(4)}% of a core).\n\n` +
    cmp.markdown;
  return {
    markdown,
    targets: [
      { label: 'peak RSS of a ballooning task', value: peak, goal: BOUND_MIB, kind: 'max', unit: 'MiB' },
      { label: "watch's own CPU per task", value: ownCostPct, goal: 1, kind: 'max', unit: '%' },
      { label: 'watch on/off, closed loop', value: closed, goal: 0.99 },
      { label: 'watch on/off, saturated', value: saturated, goal: 0.99 },
    ],
  };
}
