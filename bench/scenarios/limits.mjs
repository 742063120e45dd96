// 7. Hard limits during a task: a worker whose task allocates 20 MiB every 10 ms, limits.rssMiB 400, its
// RSS followed by a sampler of our own (a worker thread reading /proc/<pid>/statm every 2 ms, apart from
// the supervisor's event loop); and what the watch costs a workload that never nears its limit.
import { closeSync, openSync, readSync } from 'node:fs';
import { Worker } from 'node:worker_threads';
import { Supervisor } from 'gpu-supervisor';
import { compare } from '../lib/compare.mjs';
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
    modes: [
      { label: 'closed loop', inflight: 2, count: n },
      { label: 'saturated', inflight: 64, count: n * 2 },
    ],
    payload: (i) => ({ i }),
    check: (value, i) => {
      if (value?.i !== i) throw new Error(`wrong answer for ${i}: ${JSON.stringify(value)}`);
    },
    reference: off,
    rounds: quick ? 1 : Math.max(5, rounds),
  });
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
    `${fmt.ratio(saturated)} (cost ${costPct(saturated).toFixed(1)}%).\n\n` +
    cmp.markdown;
  return {
    markdown,
    targets: [
      { label: 'peak RSS of a ballooning task', value: peak, goal: BOUND_MIB, kind: 'max', unit: 'MiB' },
      { label: 'watch on/off, closed loop', value: closed, goal: 0.99 },
      { label: 'watch on/off, saturated', value: saturated, goal: 0.99 },
    ],
  };
}
