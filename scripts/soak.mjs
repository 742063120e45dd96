#!/usr/bin/env node
// The soak: N tasks through the real daemon (dist/supervisor.js, forked as a user's app forks it) with a
// worker that answers a value derived from its input, while a seeded chaos driver kills, stops, hangs,
// crashes and starves workers and sends broken messages. It checks that every id got exactly one answer,
// every ok answer is right, every error has the code its fault calls for, the pool refills within the
// limit after each fault, supervisor RSS stays flat and no process outlives the run. Exit 1 on any
// violation, with the command that replays the same fault plan.
//
//   node scripts/soak.mjs [--tasks 100000] [--seed S] [--concurrency 8] [--workers 2] [--json]
//                         [--kill-rate K] [--kill-storm] [--min-uptime-ms MS] [--min-ok-share 0.99]
//
// --kill-rate K: K SIGKILLs a second, on average, of random live worker processes for the whole run,
// from outside the supervisor and unpaced by its recovery (a busy host's OOM killer). --kill-storm adds
// the kill-storm fault: a worker killed every 100 ms for 3 s (--storm-ms, --storm-every-ms).
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { setTimeout as sleep } from 'node:timers/promises';
import { fnv1a } from '../test/fixtures/soak-worker.mjs';
import { killerOf } from './soak/crash-trace.mjs';
import { Daemon, childrenOf, isAlive } from './soak/daemon.mjs';
import { FAULTS } from './soak/faults.mjs';
import { Killer } from './soak/killer.mjs';
import { Monitor } from './soak/monitor.mjs';
import { ENDS_WORKER, FAULT_RATES, OPT_IN, faultPlan } from './soak/plan.mjs';
import { rng } from './soak/rng.mjs';
import { formatReport, percentile, slope } from './soak/report.mjs';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
/** The log line of the pool's `degraded` event (src/logging/event-log.ts). */
const DEGRADED_LOG = 'workers keep failing to start: refusing tasks until one stays up';
const TASK_TIMEOUT_MS = 10_000;
const { values: flags } = parseArgs({
  options: {
    tasks: { type: 'string', default: '100000' },
    seed: { type: 'string' },
    concurrency: { type: 'string', default: '8' },
    workers: { type: 'string', default: '2' },
    'recovery-limit-ms': { type: 'string', default: '2000' },
    'max-message-bytes': { type: 'string', default: String(1024 * 1024) },
    'kill-rate': { type: 'string', default: '0' },
    'kill-storm': { type: 'boolean', default: false },
    'storm-ms': { type: 'string', default: '3000' },
    'storm-every-ms': { type: 'string', default: '100' },
    // The crash-loop back-off is capped at 5 s (README, maxFailedStarts): after a storm a slot may wait
    // that long before its next start, then needs the ordinary recovery time.
    'storm-recovery-limit-ms': { type: 'string', default: '7000' },
    'min-uptime-ms': { type: 'string' },
    'min-ok-share': { type: 'string', default: '0.99' },
    json: { type: 'boolean', default: false },
  },
});
const tasks = Number(flags.tasks);
const seed = flags.seed === undefined ? Math.floor(Math.random() * 2 ** 31) : Number(flags.seed);
const concurrency = Number(flags.concurrency);
const workers = Number(flags.workers);
const recoveryLimitMs = Number(flags['recovery-limit-ms']);
const maxMessageBytes = Number(flags['max-message-bytes']);
const killRate = Number(flags['kill-rate']);
const killStorm = flags['kill-storm'];
const storm = {
  forMs: Number(flags['storm-ms']),
  everyMs: Number(flags['storm-every-ms']),
  recoveryLimitMs: Number(flags['storm-recovery-limit-ms']),
};
const minOkShare = Number(flags['min-ok-share']);
// The product's default minUptimeMs: whatever that window, a worker killed by a signal from outside is
// not a failed start of its own making, so no fault here may open the circuit (issue 13).
const minUptimeMs = flags['min-uptime-ms'] !== undefined ? Number(flags['min-uptime-ms']) : undefined;
const log = (line) => (flags.json ? process.stderr : process.stdout).write(`${line}\n`);

// Separate streams, so the inputs and the plan replay exactly whatever the timing of the chaos.
const random = rng(seed);
const taskRandom = rng(seed ^ 0x5bd1e995);
const chaosRandom = rng(seed + 1);
const killRandom = rng(seed + 2);
const dir = mkdtempSync(join(tmpdir(), 'gpu-sup-soak-'));
const socketPath = join(dir, 'sock', 'supervisor.sock');
const configPath = join(dir, 'config.json');
writeFileSync(
  configPath,
  JSON.stringify({
    workers,
    worker: join(ROOT, 'test/fixtures/soak-worker.mjs'),
    // A small heap so the heap-exhaustion fault dies fast, as it would in a worker sized too tight.
    workerExecArgv: ['--max-old-space-size=48'],
    recycleEveryTasks: 2000,
    taskTimeoutMs: TASK_TIMEOUT_MS,
    retries: 1,
    // Kills land about once a second here. With the default 1000 ms, a replacement killed before it has
    // been up a second counts as a failed start, and a run of them reads as a crash loop (the pool then
    // refuses tasks by design). The soak measures recovery from independent faults, so the window is short.
    // With external kills (--kill-rate, --kill-storm) the product's default applies instead.
    ...(minUptimeMs !== undefined ? { minUptimeMs } : {}),
    maxQueue: 100_000,
    maxMessageBytes,
    logLevel: 'warn',
    cleanup: { gpu: false },
    socket: socketPath,
  }),
);

// Every task has a deadline (taskTimeoutMs from the moment it is sent): an answer still missing 30 s
// after it is a lost task, not a reason to wait forever.
const daemon = new Daemon(join(ROOT, 'dist/supervisor.js'), ['--config', configPath], {
  answerDeadlineMs: TASK_TIMEOUT_MS + 30_000,
});
// An interrupted soak shuts its supervisor (and so its workers) down instead of orphaning them.
for (const signal of ['SIGINT', 'SIGTERM'])
  process.once(signal, () => void daemon.shutdown(5000).then(() => process.exit(130)));
// Waiting for a full pool stops a second past the limit: by then it is a violation, and the faults
// queued behind it (worker-ending faults go one at a time) must not wait 30 s each for a pool that
// cannot refill, as under a kill rate it cannot on today's pool.
const monitor = new Monitor(daemon, workers, { giveUpMs: recoveryLimitMs + 1000 });
const killer = new Killer(daemon, killRandom);
const ctx = {
  daemon,
  monitor,
  killer,
  storm,
  random: chaosRandom,
  maxMessageBytes,
  socketPath,
  frameCodec: undefined,
  idlessSent: 0,
};
const violations = [];
const normalByCode = {};
let retriedOk = 0;
/** Normal tasks answered E_WORKER_CRASHED, by who killed the worker running them. */
const crashedByKiller = {};
let wrongValues = 0;
const rssPoints = [];

await daemon.readyMessage;
// The socket front is part of the product: if it does not come up, or its codec is not where the soak
// looks, the socket faults cannot run, and that is a violation, not a quiet skip.
const socketDeadline = Date.now() + 5000;
while (!existsSync(socketPath) && daemon.alive && Date.now() < socketDeadline) await sleep(50);
const codecModules = ['dist/transport/frame-codec.js', 'dist/transport/frame-decoder.js'];
const missingCodec = codecModules.filter((m) => !existsSync(join(ROOT, m)));
if (!existsSync(socketPath) || missingCodec.length > 0) {
  ctx.socketPath = undefined;
  violations.push(
    missingCodec.length > 0
      ? `the socket faults cannot run: ${missingCodec.join(', ')} missing (the frame codec moved? point the soak at it)`
      : `the socket front never came up at ${socketPath} within 5 s: the socket faults cannot run`,
  );
} else {
  const { encodeFrame } = await import('../dist/transport/frame-codec.js');
  const { FrameDecoder } = await import('../dist/transport/frame-decoder.js');
  ctx.frameCodec = { encodeFrame, FrameDecoder };
}
const kinds = Object.keys(FAULT_RATES).filter(
  (k) =>
    (k !== 'socket-disconnect' || ctx.socketPath) && (!OPT_IN.has(k) || (k === 'kill-storm' && killStorm)),
);
const plan = faultPlan(random, tasks, kinds);
log(
  `soak: ${tasks} tasks, seed ${seed}, ${plan.length} faults planned${killRate > 0 ? `, ${killRate} external SIGKILLs/s` : ''}, supervisor ${daemon.pid}`,
);
const started = performance.now();
const killsAtRate = killRate > 0 ? killer.atRate(killRate) : undefined;

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
  const killedBy =
    code === 'E_WORKER_CRASHED' ? killerOf(answer.error.message, `t${n}`, killer.killed) : undefined;
  if (killedBy) crashedByKiller[killedBy] = (crashedByKiller[killedBy] ?? 0) + 1;
  if (answer?.ok) {
    if (answer.attempts > 1) retriedOk++;
    const want = fnv1a(`${n}:${text}`);
    if (answer.value?.n !== n || answer.value?.hash !== want) {
      wrongValues++;
      violations.push(`task t${n}: wrong value ${JSON.stringify(answer.value)} (want ${want})`);
    }
  } else if (code === 'E_WORKER_CRASHED' && !killedBy) {
    // A crash is accepted only for the task that was running in a worker the soak SIGKILLed.
    violations.push(
      `task t${n}: E_WORKER_CRASHED not traced to a kill the soak sent: ${answer.error.message}`,
    );
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
await Promise.all(inflight);
const normalWallS = (performance.now() - started) / 1000;
await Promise.all(faultRuns);
const wallS = (performance.now() - started) / 1000;
// The external kills stop with the last answer; the pool must then refill, as after a storm.
let afterKillsMs;
if (killsAtRate) {
  await killsAtRate.stop();
  afterKillsMs = await monitor.recovered(performance.now(), undefined, storm.recoveryLimitMs + 1000);
  if (!(afterKillsMs <= storm.recoveryLimitMs))
    violations.push(
      `after the external kills stopped: pool ${Number.isFinite(afterKillsMs) ? `full again after ${Math.round(afterKillsMs)} ms` : 'not full again'} (limit ${storm.recoveryLimitMs} ms)`,
    );
}
const endStats = await monitor.stats();
if (endStats)
  rssPoints.push({ x: tasks, y: endStats.supervisor.rssMiB, heap: endStats.supervisor.heapUsedMiB });
// A late second answer would show up now.
await sleep(500);

// Every process the supervisor has, and every worker pid seen during the run, must be gone after it exits.
const children = daemon.alive ? childrenOf(daemon.pid) : [];
const supervisorAliveAtEnd = daemon.alive;
const exit = await daemon.shutdown();
const suspects = [...new Set([...children, ...monitor.seenPids, ...killer.killed.keys()])];
const deadline = Date.now() + 5000;
while (suspects.some(isAlive) && Date.now() < deadline) await sleep(50);
const leftBehind = suspects.filter(isAlive);
for (const pid of leftBehind) process.kill(pid, 'SIGKILL');

// Bookkeeping: every id sent got exactly one answer.
const sentIds = [...Array(tasks).keys()].map((n) => `t${n}`);
for (const r of faultResults) {
  if (r.id) sentIds.push(r.id);
  for (const id of r.ids ?? []) sentIds.push(id);
}
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
const kills = killer.killed.size;
if (crashedNormal > kills)
  violations.push(`${crashedNormal} normal tasks crashed but only ${kills} workers were killed`);
const okShare = (normalByCode.ok ?? 0) / tasks;
if (!(okShare >= minOkShare))
  violations.push(
    `${(okShare * 100).toFixed(2)}% of normal tasks answered ok (at least ${minOkShare * 100}% required)`,
  );
// No fault here is a start failure of the worker's own making (its setup never fails; kills are
// signals, exits happen mid-task), so the pool must never call itself degraded.
const degradedAt = daemon.logTimes.get(DEGRADED_LOG) ?? [];
if (degradedAt.length > 0)
  violations.push(
    `the pool reported degraded ${degradedAt.length} times (first ${Math.round(degradedAt[0] - started)} ms into the run), although no worker failed to start by its own doing`,
  );

const faultsByKind = {};
const faultsSkipped = {};
const faultAnswersByCode = {};
const recoveries = [];
/** Fault tasks answered E_WORKER_CRASHED because an external kill hit the worker running them. */
const faultTasksKilled = {};
let lateUnderKills = 0;
for (const r of faultResults) {
  faultsByKind[r.kind] = (faultsByKind[r.kind] ?? 0) + 1;
  if (r.skipped) faultsSkipped[r.kind] = (faultsSkipped[r.kind] ?? 0) + 1;
  if (r.code)
    faultAnswersByCode[`${r.kind} ${r.code}`] = (faultAnswersByCode[`${r.kind} ${r.code}`] ?? 0) + 1;
  // Under a kill rate or a storm, any fault task may be running in the worker an external kill hits.
  const hitBy = r.code === 'E_WORKER_CRASHED' ? killerOf(r.detail, r.id, killer.killed) : undefined;
  if (!r.ok && (hitBy === 'kill-rate' || hitBy === 'kill-storm'))
    faultTasksKilled[r.kind] = (faultTasksKilled[r.kind] ?? 0) + 1;
  else if (!r.ok)
    violations.push(`fault ${r.kind} ${r.id ?? ''}: got ${r.code ?? JSON.stringify(r)} ${r.detail ?? ''}`);
  if (r.recoveryMs !== undefined) {
    recoveries.push(r.recoveryMs);
    const limit = r.recoveryLimitMs ?? recoveryLimitMs;
    // Under a kill rate another worker dies every 1/rate s, so "full again within the limit of each
    // fault" is a moving target: there the refill is checked once, after the kills stop (above), and
    // these recoveries are reported, not judged.
    if (killRate > 0 && !(r.recoveryMs <= limit)) lateUnderKills++;
    else if (!(r.recoveryMs <= limit))
      violations.push(
        Number.isFinite(r.recoveryMs)
          ? `fault ${r.kind}: pool full again after ${Math.round(r.recoveryMs)} ms (limit ${limit})`
          : `fault ${r.kind}: pool not full again within ${limit + 1000} ms (limit ${limit})`,
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
  normalWallS,
  tasksPerS: tasks / wallS,
  sent: sentIds.length,
  answered: sentIds.length - lost,
  lost,
  duplicated,
  wrongValues,
  normalByCode,
  okShare,
  minOkShare,
  crashedByKiller,
  retriedOk,
  minUptimeMs: minUptimeMs ?? 'default',
  externalKills: { killRate, sent: killer.sent, noTarget: killer.noTarget, afterKillsMs, lateUnderKills },
  faultTasksKilled,
  degradedEvents: degradedAt.length,
  faultsByKind,
  faultsSkipped,
  faultAnswersByCode,
  storms: faultResults
    .filter((r) => r.kind === 'kill-storm')
    .map((r) => ({ kills: r.kills, codes: r.codes, recoveryMs: r.recoveryMs, answers: r.code })),
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
  replay: [
    `node scripts/soak.mjs --tasks ${tasks} --seed ${seed} --concurrency ${concurrency} --workers ${workers}`,
    ...(killRate > 0 ? [`--kill-rate ${killRate}`] : []),
    ...(killStorm ? ['--kill-storm', `--storm-ms ${storm.forMs}`, `--storm-every-ms ${storm.everyMs}`] : []),
    ...(flags['min-uptime-ms'] !== undefined ? [`--min-uptime-ms ${minUptimeMs}`] : []),
  ].join(' '),
};
rmSync(dir, { recursive: true, force: true });
if (flags.json) process.stdout.write(`${JSON.stringify(report, null, 2)}\n`);
else log(formatReport(report));
process.exit(violations.length > 0 ? 1 : 0);
