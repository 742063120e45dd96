// 7. Guarantee 6 of the README: with pre-spawn, the ready workers never drop below `workers` because of
// a count-based recycle, except while a replacement is still starting because recycle.maxConcurrent is
// full. Measured, not asserted: the pool's workers are followed through their `transition` events, and
// every stretch of time with fewer than `workers` serving (ready, busy or cleaning) is a dip, classed by
// the starts under way when it began (see dipRecorder).
import { performance } from 'node:perf_hooks';
import { Supervisor } from 'gpu-supervisor';
import { OURS_ECHO } from '../lib/contenders.mjs';
import { field, interleave } from '../lib/harness.mjs';
import { fmt, log, table } from '../lib/report.mjs';

export const title = 'Pre-spawn: how long and how often the ready workers dip below `workers`';

const SERVING = new Set(['ready', 'busy', 'cleaning']);

const VARIANTS = [
  {
    name: '2 workers, maxConcurrent 1, pre-spawn',
    workers: 2,
    recycle: { maxConcurrent: 1, prespawn: true },
  },
  {
    name: '3 workers, maxConcurrent 1, pre-spawn',
    workers: 3,
    recycle: { maxConcurrent: 1, prespawn: true },
  },
  {
    name: '3 workers, maxConcurrent 3, pre-spawn',
    workers: 3,
    recycle: { maxConcurrent: 3, prespawn: true },
  },
  { name: '2 workers, no pre-spawn (control)', workers: 2, recycle: { maxConcurrent: 1, prespawn: false } },
];

/**
 * Follows every worker's state through `transition` events; `dips` are the stretches with fewer than
 * `workers` serving. Each dip is classed by what was under way when it began, known afterwards from
 * `worker-ready` (its time minus its startMs is when that start began; a pre-spawned successor reports
 * ready there and leaves `starting` only at its hand-over): `turn` when maxConcurrent starts were under
 * way (the one exception guarantee 6 allows), `late` when a start was under way but the turn was not
 * full (a pre-spawn that began too late), `handover` when a successor was ready but still waiting for
 * the worker it replaces to finish what it holds, `none` when nothing was under way.
 */
function dipRecorder(supervisor, workers, maxConcurrent) {
  const states = new Map();
  const dips = [];
  const starts = [];
  let open;
  let recording = false;
  const serving = () => [...states.values()].filter((s) => SERVING.has(s)).length;
  const waiting = new Map();
  const handovers = [];
  supervisor.events.on('worker-ready', ({ pid, startMs }) => {
    const now = performance.now();
    starts.push({ from: now - startMs, to: now });
    waiting.set(pid, now);
  });
  supervisor.events.on('transition', ({ pid, from, to }) => {
    if (from === 'starting' && waiting.has(pid)) {
      handovers.push({ from: waiting.get(pid), to: performance.now() });
      waiting.delete(pid);
    }
    if (to === 'exited') states.delete(pid);
    else states.set(pid, to);
    if (!recording || checking) return;
    // Counted once the scheduler's synchronous step is over: a worker that leaves its slot and the
    // successor that takes it in the same step leave no moment in which a task could wait.
    checking = true;
    queueMicrotask(check);
  });
  let checking = false;
  const check = () => {
    checking = false;
    const now = performance.now();
    const n = serving();
    if (n < workers) {
      open ??= { from: now, lowest: n };
      open.lowest = Math.min(open.lowest, n);
    } else if (open) {
      dips.push({ ...open, ms: now - open.from });
      open = undefined;
    }
  };
  const classify = (dip) => {
    const at = (spans) => spans.filter((s) => s.from <= dip.from && s.to > dip.from).length;
    const underway = at(starts);
    if (underway >= maxConcurrent) return 'turn';
    if (underway > 0) return 'late';
    return at(handovers) > 0 ? 'handover' : 'none';
  };
  return {
    start() {
      recording = true;
    },
    stop() {
      recording = false;
      if (open) dips.push({ ...open, ms: performance.now() - open.from });
      return dips.map((d) => ({ ...d, kind: classify(d) }));
    },
  };
}

export async function run({ quick, rounds }) {
  const count = quick ? 800 : 8000;
  const every = 100;
  const results = await interleave(
    VARIANTS.map((v) => ({
      name: v.name,
      create: async () => {
        const supervisor = new Supervisor({
          worker: OURS_ECHO,
          workers: v.workers,
          pipelineDepth: 2,
          recycleEveryTasks: every,
          recycle: v.recycle,
          logLevel: 'silent',
        });
        const recorder = dipRecorder(supervisor, v.workers, v.recycle.maxConcurrent);
        await supervisor.start();
        return { supervisor, recorder, workers: v.workers, close: () => supervisor.shutdown() };
      },
    })),
    {
      rounds,
      onProgress: log,
      run: async ({ supervisor, recorder, workers }) => {
        let next = 0;
        const started = performance.now();
        recorder.start();
        await Promise.all(
          Array.from({ length: workers * 2 }, async () => {
            while (next < count) {
              const i = next++;
              const outcome = await supervisor.submit(`d${i}`, { sleepMs: 5, i });
              if (!outcome.ok) throw new Error(`${outcome.error.code}: ${outcome.error.message}`);
            }
          }),
        );
        const dips = recorder.stop();
        const runMs = performance.now() - started;
        const dipMs = dips.reduce((n, d) => n + d.ms, 0);
        return {
          perSec: count / (runMs / 1000),
          recycles: (await supervisor.stats()).totals.recycles,
          dips: dips.length,
          turn: dips.filter((d) => d.kind === 'turn').length,
          late: dips.filter((d) => d.kind === 'late').length,
          handover: dips.filter((d) => d.kind === 'handover').length,
          unexplained: dips.filter((d) => d.kind === 'none').length,
          longestMs: Math.max(0, ...dips.map((d) => d.ms)),
          dipPct: (100 * dipMs) / runMs,
          lowest: Math.min(workers, ...dips.map((d) => d.lowest)),
        };
      },
    },
  );
  const rows = [...results.entries()].map(([name, r]) => [
    name,
    fmt.range(field(r, 'perSec'), fmt.rate),
    String(field(r, 'recycles').median),
    String(field(r, 'dips').median),
    String(field(r, 'turn').median),
    String(field(r, 'late').median),
    String(field(r, 'handover').median),
    String(field(r, 'unexplained').max),
    fmt.ms(field(r, 'longestMs').max),
    `${field(r, 'dipPct').median.toFixed(1)} %`,
    String(field(r, 'lowest').min),
  ]);
  const markdown =
    `${count} tasks of 5 ms off the CPU (a GPU-bound task) per round, 2 in flight per worker, pipelineDepth 2, recycle every ${every}. ` +
    'A dip: fewer than `workers` serving (ready, busy, cleaning). Classed by the starts under way when it ' +
    'began: turn full (maxConcurrent starts under way: the exception guarantee 6 allows), start late (a ' +
    'start under way, the turn not full: the pre-spawn began too late), hand-over (a successor ready, ' +
    'waiting for the worker it replaces to finish its held tasks), no start (nothing under way).\n\n' +
    table(
      [
        'variant',
        'tasks/s median (min–max)',
        'recycles',
        'dips (median)',
        'turn full',
        'start late',
        'hand-over',
        'no start (max)',
        'longest dip ms (max)',
        'time in a dip (median)',
        'fewest serving',
      ],
      rows,
    );
  const targets = [...results.entries()]
    .filter(([name]) => name.includes(', pre-spawn'))
    .map(([name, r]) => ({
      label: `dips not explained by a full turn, ${name}`,
      value: field(r, 'late').max + field(r, 'handover').max + field(r, 'unexplained').max,
      goal: 0,
      kind: 'max',
      unit: 'dips',
    }));
  return { markdown, targets };
}
