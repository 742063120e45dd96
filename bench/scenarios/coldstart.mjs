// 7. Cold start (issue 16): where a worker's start goes, phase by phase, for a bare worker, Silero and
// the 4 and 64 MiB MLPs, with each cut on and off in the same run (the orphan watchdog thread against
// the kernel's parent-death signal, the optimized-model cache, Node 22's compile cache), and what the
// session options cost at start against what they give per task.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Supervisor } from 'gpu-supervisor';
import { InferenceSession, Tensor } from 'onnxruntime-node';
import { summarize } from '../lib/harness.mjs';
import { SILERO_PATH, mlp64Path, mlpFeeds, sileroFeeds } from '../lib/models.mjs';
import { fmt, log, table } from '../lib/report.mjs';

export const title = 'Cold start: where a worker start goes, and what cuts it';

const BARE_WORKER = fileURLToPath(new URL('../workers/ours-echo.mjs', import.meta.url));
const MLP4_PATH = fileURLToPath(new URL('../../models/mlp.onnx', import.meta.url));
const NODE_MAJOR = Number(process.versions.node.split('.')[0]);
/** Node 22.1+ compiles modules once into this cache when the variable is set (Node 20 ignores it). */
const COMPILE_CACHE = NODE_MAJOR >= 22;

function models() {
  return [
    { name: 'bare worker', worker: BARE_WORKER },
    { name: 'silero', path: SILERO_PATH },
    // Dynamic batch dimension: memory pattern planning has nothing to reuse (see the options table).
    { name: 'mlp 4 MiB', path: MLP4_PATH, tuned: { enableMemPattern: false } },
    { name: 'mlp 64 MiB', path: mlp64Path(), tuned: { enableMemPattern: false } },
  ];
}

/** A start's phases, worker-ready as the pool reports it. */
const PHASES = [
  'cpuMs',
  'spawnMs',
  'bootMs',
  'runtimeMs',
  'initMs',
  'moduleMs',
  'bindingMs',
  'sessionMs',
  'setupMs',
  'readyMs',
];

function restoreEnv(name, value) {
  if (value === undefined) delete process.env[name];
  else process.env[name] = value;
}

/** `starts` worker starts of one configuration: the first start, then recycles of the same slot. */
async function measureStarts(model, variant, starts, cacheDir) {
  const saved = {
    cache: process.env.NODE_COMPILE_CACHE,
    disabled: process.env.NODE_DISABLE_COMPILE_CACHE,
    watchdog: process.env.GPU_SUPERVISOR_WORKER_WATCHDOG,
  };
  // 'before': the worker as it started before these cuts, with the watchdog thread (the fallback now).
  if (variant.watchdog) process.env.GPU_SUPERVISOR_WORKER_WATCHDOG = '1';
  else delete process.env.GPU_SUPERVISOR_WORKER_WATCHDOG;
  // The compile cache is off unless the variant turns it on (workers inherit this process's env).
  if (variant.compileCache) process.env.NODE_COMPILE_CACHE = join(cacheDir, 'node-compile-cache');
  else process.env.NODE_DISABLE_COMPILE_CACHE = '1';
  const sup = new Supervisor({
    workers: 1,
    logLevel: 'silent',
    recycleEveryTasks: 0,
    sessionCache: { dir: variant.cache ? cacheDir : 'off' },
    ...(model.worker ? { worker: model.worker } : {}),
    models: model.path
      ? { m: { path: model.path, ...(variant.tuned && model.tuned ? { sessionOptions: model.tuned } : {}) } }
      : {},
    workerOptions: model.path ? { preload: ['m'] } : {},
  });
  const ready = [];
  sup.events.on('worker-ready', (e) => ready.push(e.phases));
  try {
    await sup.start();
    for (let i = 1; i < starts; i++) await sup.admin('recycle');
  } finally {
    await sup.shutdown();
    // Restored key by key: replacing process.env with a plain object would cut it off from the real
    // environment, which native code (a later scenario's fake NVML library, getenv) still reads.
    restoreEnv('NODE_COMPILE_CACHE', saved.cache);
    restoreEnv('NODE_DISABLE_COMPILE_CACHE', saved.disabled);
    restoreEnv('GPU_SUPERVISOR_WORKER_WATCHDOG', saved.watchdog);
  }
  return ready.map((p) => ({
    ...p,
    sessionMs: p.sessions?.reduce((sum, s) => Math.max(sum, s.ms), 0),
    cache: p.sessions?.map((s) => s.cache).join('/') ?? '-',
  }));
}

function variants(model) {
  return [
    { name: 'before: watchdog thread, cache off', cache: false, watchdog: true },
    { name: 'cache off', cache: false },
    { name: 'cache on', cache: true },
    ...(model?.tuned ? [{ name: 'cache on + options', cache: true, tuned: true }] : []),
    ...(COMPILE_CACHE ? [{ name: 'cache on + compile cache', cache: true, compileCache: true }] : []),
  ];
}

async function coldStarts({ quick, rounds }) {
  const startsPerRound = quick ? 3 : 4;
  const rows = [];
  const totals = new Map();
  for (const model of models()) {
    const cacheDir = mkdtempSync(join(tmpdir(), 'gpu-sup-bench-cache-'));
    try {
      const all = new Map(variants(model).map((v) => [v.name, []]));
      for (let round = 1; round <= rounds; round++) {
        for (const variant of variants(model)) {
          const starts = await measureStarts(model, variant, startsPerRound, cacheDir);
          all.get(variant.name).push(...starts);
          log(
            `${model.name}, ${variant.name}: ${starts.map((s) => `${s.totalMs.toFixed(0)} ms (${s.cache})`).join(', ')}`,
          );
        }
      }
      for (const [name, starts] of all) {
        // The cache's first start ever writes the entry: shown apart, the rest are hits.
        const writes = starts.filter((s) => s.cache.includes('miss') || s.cache.includes('rebuilt'));
        const kept = starts.filter((s) => !writes.includes(s));
        if (kept.length === 0) continue;
        const total = summarize(kept.map((s) => s.totalMs));
        totals.set(`${model.name}|${name}`, total.median);
        totals.set(`${model.name}|${name}|cpu`, summarize(kept.map((s) => s.cpuMs)).median);
        rows.push([
          model.name,
          name,
          String(kept.length),
          fmt.range(total, fmt.ms),
          ...PHASES.map((key) => {
            const values = kept.map((s) => s[key]).filter((v) => typeof v === 'number');
            return values.length ? fmt.ms(summarize(values).median) : '-';
          }),
          [...new Set(kept.map((s) => s.cache))].join(', '),
          writes.length ? fmt.ms(summarize(writes.map((s) => s.totalMs)).median) : '-',
        ]);
      }
    } finally {
      rmSync(cacheDir, { recursive: true, force: true });
    }
  }
  return { rows, totals };
}

/** Session options to weigh: what each costs at creation against what it gives per task (in-process). */
const OPTION_SETS = [
  { name: 'default (all optimizations, memory pattern on)', options: {} },
  { name: 'enableMemPattern: false', options: { enableMemPattern: false } },
  { name: "graphOptimizationLevel: 'basic'", options: { graphOptimizationLevel: 'basic' } },
  { name: "graphOptimizationLevel: 'disabled'", options: { graphOptimizationLevel: 'disabled' } },
  { name: 'session.disable_prepacking', options: { extra: { 'session.disable_prepacking': '1' } } },
];

async function sessionOptions({ quick }) {
  const creates = quick ? 2 : 5;
  const runs = quick ? 50 : 400;
  const subjects = [
    { name: 'silero', path: SILERO_PATH, feeds: sileroFeeds },
    { name: 'mlp 4 MiB', path: MLP4_PATH, feeds: () => mlpFeeds(1) },
    { name: 'mlp 64 MiB', path: mlp64Path(), feeds: () => mlpFeeds(1) },
  ];
  const rows = [];
  for (const subject of subjects) {
    const feeds = Object.fromEntries(
      Object.entries(subject.feeds()).map(([k, v]) => [k, new Tensor(v.type, v.data, v.dims)]),
    );
    for (const set of OPTION_SETS) {
      const createMs = [];
      const runMs = [];
      for (let i = 0; i < creates; i++) {
        const t0 = performance.now();
        const session = await InferenceSession.create(subject.path, {
          intraOpNumThreads: 1,
          interOpNumThreads: 1,
          ...set.options,
        });
        createMs.push(performance.now() - t0);
        await session.run(feeds);
        const r0 = performance.now();
        for (let r = 0; r < runs; r++) await session.run(feeds);
        runMs.push((performance.now() - r0) / runs);
        await session.release();
      }
      const create = summarize(createMs);
      const run = summarize(runMs);
      rows.push([subject.name, set.name, fmt.range(create, fmt.ms), fmt.range(run, (n) => n.toFixed(3))]);
      log(
        `options ${subject.name}, ${set.name}: create ${fmt.ms(create.median)} ms, run ${run.median.toFixed(3)} ms`,
      );
    }
  }
  return rows;
}

export async function run({ quick, rounds }) {
  const { rows, totals } = await coldStarts({ quick, rounds });
  const optionRows = await sessionOptions({ quick });
  const markdown =
    `One worker process, started ${quick ? 3 : 4} times per round (the first start, then recycles of its slot), ` +
    `${rounds} round(s), the variants interleaved; medians over every start (min–max for the total). ` +
    "Phases in ms: spawn = the parent's fork call; boot = Node's own start to the first line of the worker " +
    "runtime; runtime = its imports; init = the init message in hand; module = the worker module's import; " +
    "binding = onnxruntime-node's load; session = the preloaded session's creation; setup = the module's " +
    'setup (binding and session are parts of it); ready = the rest (the ready message back). ' +
    '"first start" is the cache\'s first start ever, which writes the entry. "before": the start as it ' +
    'was before these cuts (the orphan watchdog thread, no cache); every other variant ends an orphan by ' +
    'the kernel\'s parent-death signal. "options": the per-model session options chosen below ' +
    '(enableMemPattern: false for the MLPs).' +
    (COMPILE_CACHE
      ? ''
      : ` Node ${process.versions.node}: no compile cache (Node 22.1+), that variant is not run.`) +
    '\n\n' +
    table(
      [
        'worker',
        'variant',
        'starts',
        'fork to ready ms, median (min–max)',
        ...PHASES.map((p) => p.replace(/Ms$/, '')),
        'cache',
        'first start ms',
      ],
      rows,
    ) +
    '\n\n### Session options: cost at creation, gain per task\n\n' +
    'In-process, one intra-op thread, cache off: session creation and per-run time (batch 1), medians (min–max).\n\n' +
    table(['model', 'options', 'create ms', 'run ms'], optionRows);
  const before = totals.get('mlp 64 MiB|before: watchdog thread, cache off');
  const cutsOn = variants(models().at(-1)).filter((v) => v.cache);
  const best = (suffix) => Math.min(...cutsOn.map((v) => totals.get(`mlp 64 MiB|${v.name}${suffix}`)));
  const targets = [
    { label: 'mlp 64 MiB cold start, cuts on vs before', value: best('') / before, goal: 0.6, kind: 'max' },
    {
      label: 'mlp 64 MiB start CPU, cuts on vs before',
      value: best('|cpu') / totals.get('mlp 64 MiB|before: watchdog thread, cache off|cpu'),
      goal: 0.6,
      kind: 'max',
    },
  ];
  return { markdown, targets };
}
