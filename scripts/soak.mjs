#!/usr/bin/env node
// The soak: N tasks through the real daemon (dist/supervisor.js, forked as a user's app forks it) with a
// worker that answers a value derived from its input, while a seeded chaos driver kills, stops, hangs,
// crashes and starves workers and sends broken messages. It checks that every id got exactly one answer,
// every ok answer is right, every error has the code its fault calls for, the pool refills within the
// limit after each fault, supervisor RSS stays flat and no process outlives the run. Exit 1 on any
// violation, with the command that replays the same fault plan.
//
//   node scripts/soak.mjs [--tasks 100000] [--seed S] [--concurrency 8] [--workers 2] [--json]
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { setTimeout as sleep } from 'node:timers/promises';
import { fnv1a } from '../test/fixtures/soak-worker.mjs';
import { Daemon, childrenOf, isAlive } from './soak/daemon.mjs';
import { FAULTS } from './soak/faults.mjs';
import { Monitor } from './soak/monitor.mjs';
import { ENDS_WORKER, FAULT_RATES, faultPlan } from './soak/plan.mjs';
import { rng } from './soak/rng.mjs';
import { formatReport, percentile, slope } from './soak/report.mjs';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const { values: flags } = parseArgs({
  options: {
    tasks: { type: 'string', default: '100000' },
    seed: { type: 'string' },
    concurrency: { type: 'string', default: '8' },
    workers: { type: 'string', default: '2' },
    'recovery-limit-ms': { type: 'string', default: '2000' },
    'max-message-bytes': { type: 'string', default: String(1024 * 1024) },
    json: { type: 'boolean', default: false },
  },
});
const tasks = Number(flags.tasks);
const seed = flags.seed === undefined ? Math.floor(Math.random() * 2 ** 31) : Number(flags.seed);
const concurrency = Number(flags.concurrency);
const workers = Number(flags.workers);
const recoveryLimitMs = Number(flags['recovery-limit-ms']);
const maxMessageBytes = Number(flags['max-message-bytes']);
const log = (line) => (flags.json ? process.stderr : process.stdout).write(`${line}\n`);

// Separate streams, so the inputs and the plan replay exactly whatever the timing of the chaos.
const random = rng(seed);
const taskRandom = rng(seed ^ 0x5bd1e995);
const chaosRandom = rng(seed + 1);
const dir = mkdtempSync(join(tmpdir(), 'gpu-sup-soak-'));
const socketFront = existsSync(join(ROOT, 'dist/transport/frame-codec.js'));
const socketPath = socketFront ? join(dir, 'sock', 'supervisor.sock') : undefined;
const configPath = join(dir, 'config.json');
writeFileSync(
  configPath,
  JSON.stringify({
    workers,
    worker: join(ROOT, 'test/fixtures/soak-worker.mjs'),
    // A small heap so the heap-exhaustion fault dies fast, as it would in a worker sized too tight.
    workerExecArgv: ['--max-old-space-size=48'],
    recycleEveryTasks: 2000,
    taskTimeoutMs: 10_000,
    retries: 1,
    // Kills land about once a second here. With the default 1000 ms, a replacement killed before it has
    // been up a second counts as a failed start, and a run of them reads as a crash loop (the pool then
    // refuses tasks by design). The soak measures recovery from independent faults, so the window is short.
    minUptimeMs: 250,
    maxQueue: 100_000,
    maxMessageBytes,
    logLevel: 'warn',
    cleanup: { gpu: false },
    ...(socketPath ? { socket: socketPath } : {}),
  }),
);

const daemon = new Daemon(join(ROOT, 'dist/supervisor.js'), ['--config', configPath]);
const monitor = new Monitor(daemon, workers);
const ctx = {
  daemon,
  monitor,
  random: chaosRandom,
  maxMessageBytes,
  socketPath,
  frameCodec: undefined,
  idlessSent: 0,
};
const violations = [];
const normalByCode = {};
let retriedOk = 0;
let wrongValues = 0;
const rssPoints = [];

await daemon.readyMessage;
if (socketPath) {
  // The socket front is optional: use it when this build starts one.
  await sleep(200);
  if (existsSync(socketPath)) {
    const decoderModule = join(ROOT, 'dist/transport/frame-decoder.js');
    const { encodeFrame } = await import('../dist/transport/frame-codec.js');
    // The decoder has its own module in newer builds.
    const { FrameDecoder } = existsSync(decoderModule)
      ? await import('../dist/transport/frame-decoder.js')
      : await import('../dist/transport/frame-codec.js');
    ctx.frameCodec = { encodeFrame, FrameDecoder };
  } else ctx.socketPath = undefined;
}
const kinds = Object.keys(FAULT_RATES).filter((k) => k !== 'socket-disconnect' || ctx.socketPath);
const plan = faultPlan(random, tasks, kinds);
log(`soak: ${tasks} tasks, seed ${seed}, ${plan.length} faults planned, supervisor ${daemon.pid}`);
const started = performance.now();

/** One normal task: a hash of random text; 5% get a short deadline a SIGSTOP can trip. */
async function normalTask(n) {
  const text = taskRandom.text(4, 48);
  const short = taskRandom.chance(0.05);
  const sleepMs = taskRandom.chance(0.1) ? taskRandom.int(1, 4) : 0;
  const payload = { op: 'hash', n, text, ...(sleepMs ? { sleepMs } : {}) };
  const answer = await daemon.request({
    type: 'task',
    id: `t${n}`,
    payload,
    ...(short ? { timeoutMs: 250 } : {}),
  });
  const code = answer === undefined ? 'no answer' : answer.ok ? 'ok' : answer.error.code;
  normalByCode[code] = (normalByCode[code] ?? 0) + 1;
  if (answer?.ok) {
    if (answer.attempts > 1) retriedOk++;
    const want = fnv1a(`${n}:${text}`);
    if (answer.value?.n !== n || answer.value?.hash !== want) {
      wrongValues++;
      violations.push(`task t${n}: wrong value ${JSON.stringify(answer.value)} (want ${want})`);
    }
  } else if (!(code === 'E_WORKER_CRASHED' || (code === 'E_TIMEOUT' && short))) {
    violations.push(`task t${n}: unexpected ${code}: ${answer?.error?.message ?? 'supervisor gone'}`);
  }
}

const faultResults = [];
const faultRuns = [];
const inflight = new Set();
let next = 0;
let lane = Promise.resolve();
for (let n = 0; n < tasks && daemon.alive; n++) {
  while (inflight.size >= concurrency) await Promise.race(inflight);
  const p = normalTask(n).finally(() => inflight.delete(p));
  inflight.add(p);
  while (next < plan.length && plan[next].at === n) {
    const { kind } = plan[next++];
    // Faults that end a worker go one at a time, each after the pool refilled from the last: each
    // recovery is measured on its own, and tasks that fail fast cannot speed the kills up.
    let run;
    if (ENDS_WORKER.has(kind)) {
      run = lane.then(() => FAULTS[kind](ctx, kind));
      lane = run.catch(() => undefined);
    } else {
      run = FAULTS[kind](ctx, kind);
    }
    faultRuns.push(
      run.then(
        (result) => faultResults.push(result),
        (error) => violations.push(`fault ${kind} threw: ${error.stack ?? error}`),
      ),
    );
  }
  if (n % Math.max(1, Math.floor(tasks / 50)) === 0) {
    const stats = await monitor.stats();
    if (stats) rssPoints.push({ x: n, y: stats.supervisor.rssMiB, heap: stats.supervisor.heapUsedMiB });
  }
}
await Promise.all([...inflight, ...faultRuns]);
const wallS = (performance.now() - started) / 1000;
const endStats = await monitor.stats();
if (endStats)
  rssPoints.push({ x: tasks, y: endStats.supervisor.rssMiB, heap: endStats.supervisor.heapUsedMiB });
// A late second answer would show up now.
await sleep(500);

// Every process the supervisor has, and every worker pid seen during the run, must be gone after it exits.
const children = daemon.alive ? childrenOf(daemon.pid) : [];
const supervisorAliveAtEnd = daemon.alive;
const exit = await daemon.shutdown();
const suspects = [...new Set([...children, ...monitor.seenPids])];
const deadline = Date.now() + 5000;
while (suspects.some(isAlive) && Date.now() < deadline) await sleep(50);
const leftBehind = suspects.filter(isAlive);
for (const pid of leftBehind) process.kill(pid, 'SIGKILL');

// Bookkeeping: every id sent got exactly one answer.
const sentIds = [...Array(tasks).keys()].map((n) => `t${n}`);
for (const r of faultResults) if (r.id) sentIds.push(r.id);
let lost = 0;
let duplicated = 0;
for (const id of sentIds) {
  const count = daemon.answerCounts.get(id) ?? 0;
  if (count === 0) lost++;
  if (count > 1) duplicated++;
}
for (const [id, count] of daemon.answerCounts) if (count > 1 && !sentIds.includes(id)) duplicated++;
if (!supervisorAliveAtEnd)
  violations.push(`the supervisor died during the run: ${JSON.stringify(daemon.exitInfo)}`);
if (exit.code !== 0) violations.push(`the supervisor exited ${JSON.stringify(exit)} on shutdown, not 0`);
if (lost > 0) violations.push(`${lost} ids never answered`);
if (duplicated > 0) violations.push(`${duplicated} ids answered more than once`);
if (daemon.protocolErrors !== ctx.idlessSent)
  violations.push(
    `${ctx.idlessSent} id-less bad messages sent, ${daemon.protocolErrors} error messages back`,
  );
if (leftBehind.length > 0) violations.push(`processes left behind: ${leftBehind.join(', ')}`);
const crashedNormal = normalByCode.E_WORKER_CRASHED ?? 0;
const kills = faultResults.filter((r) => r.kind === 'sigkill-worker' && !r.skipped).length;
if (crashedNormal > kills)
  violations.push(`${crashedNormal} normal tasks crashed but only ${kills} workers were killed`);

const faultsByKind = {};
const faultsSkipped = {};
const faultAnswersByCode = {};
const recoveries = [];
for (const r of faultResults) {
  faultsByKind[r.kind] = (faultsByKind[r.kind] ?? 0) + 1;
  if (r.skipped) faultsSkipped[r.kind] = (faultsSkipped[r.kind] ?? 0) + 1;
  if (r.code)
    faultAnswersByCode[`${r.kind} ${r.code}`] = (faultAnswersByCode[`${r.kind} ${r.code}`] ?? 0) + 1;
  if (!r.ok)
    violations.push(`fault ${r.kind} ${r.id ?? ''}: got ${r.code ?? JSON.stringify(r)} ${r.detail ?? ''}`);
  if (r.recoveryMs !== undefined) {
    recoveries.push(r.recoveryMs);
    if (!(r.recoveryMs <= recoveryLimitMs))
      violations.push(
        `fault ${r.kind}: pool full again after ${Math.round(r.recoveryMs)} ms (limit ${recoveryLimitMs})`,
      );
  }
}
const warm = rssPoints.filter((p) => p.x >= tasks * 0.1);
const perTask = slope(warm);
const report = {
  tasks,
  seed,
  concurrency,
  workers,
  wallS,
  tasksPerS: tasks / wallS,
  sent: sentIds.length,
  answered: sentIds.length - lost,
  lost,
  duplicated,
  wrongValues,
  normalByCode,
  retriedOk,
  faultsByKind,
  faultsSkipped,
  faultAnswersByCode,
  heapOomNamed: faultResults.filter((r) => r.kind === 'heap-oom-task' && r.heapNamed).length,
  socketFront: Boolean(ctx.socketPath),
  protocolErrors: daemon.protocolErrors,
  recovery: {
    n: recoveries.length,
    p50Ms: percentile(recoveries, 50),
    p99Ms: percentile(recoveries, 99),
    maxMs: recoveries.length ? Math.max(...recoveries) : null,
  },
  rss: {
    startMiB: warm[0]?.y ?? rssPoints[0]?.y,
    endMiB: rssPoints.at(-1)?.y,
    slopeMiBPer10k: perTask === null ? null : perTask * 10_000,
    heapStartMiB: warm[0]?.heap,
    heapEndMiB: rssPoints.at(-1)?.heap,
    heapSlopeMiBPer10k: (slope(warm.map((p) => ({ x: p.x, y: p.heap }))) ?? 0) * 10_000,
  },
  processes: { workersSeen: monitor.seenPids.size, leftBehind },
  supervisorWarnings: Object.fromEntries(daemon.logCounts),
  violations,
  replay: `node scripts/soak.mjs --tasks ${tasks} --seed ${seed} --concurrency ${concurrency} --workers ${workers}`,
};
rmSync(dir, { recursive: true, force: true });
if (flags.json) process.stdout.write(`${JSON.stringify(report, null, 2)}\n`);
else log(formatReport(report));
process.exit(violations.length > 0 ? 1 : 0);
