// Which files of src/ (and workers/) one task's round trip runs through, measured rather than read off
// the code: the supervisor (dist/supervisor.js, forked with an IPC channel, as a parent app does) and its
// worker run with V8's precise coverage on (a hook loaded through NODE_OPTIONS). After warm-up tasks,
// each measured task is cut in two windows per process:
//
//   on the path   supervisor: from the task message arriving on the fork channel to the moment the
//                 supervisor calls process.send with its answer; worker: from the 'run' message arriving
//                 to the moment the worker calls process.send with the result. The hook wraps
//                 process.emit, so it resets the counts before any 'message' listener runs, and
//                 process.send, so it takes them before the answer is written.
//   after         from that send until the task's aftermath settled (cleanup report, recycle verdict,
//                 figures, timers): bookkeeping the answer does not wait for.
//
// "Everything run" (both windows together) is the figure this script gave first. An idle window of the
// same length with no task shows what timers run anyway.
//
// Takes are synchronous: an in-thread inspector Session calls back before post() returns (the hook
// throws if it ever did not), so nothing runs between the take and the real send. Two V8 modes are
// used, one supervisor each, and their files are united: call counts (detailed: false) count every
// invocation, inlined or optimized ones too, but not an async function resuming after an await; block
// counts (detailed: true) see resumptions but can miss an optimized function's invocations.
// Files are listed as the union over the measured tasks; a file not seen in every one is marked (~).
//
//   node scripts/round-trip-files.mjs [--json] [--tasks N]
import { fork } from 'node:child_process';
import { mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';

const root = fileURLToPath(new URL('..', import.meta.url));
const tasksArg = process.argv.indexOf('--tasks');
const MEASURED = tasksArg > 0 ? Number(process.argv[tasksArg + 1]) : 5;
const WARM_UP = 20;
/** How long a task's aftermath is given to settle (the worker's cleanup report, the verdict after it). */
const SETTLE_MS = 300;
const MARK = 'measured-';

const hookSource = (dir, detailed) => `import { Session } from 'node:inspector';
import childProcess from 'node:child_process';
import { syncBuiltinESMExports } from 'node:module';
import { isMainThread } from 'node:worker_threads';
import { writeFileSync } from 'node:fs';
if (isMainThread) {
  const session = new Session();
  session.connect();
  const post = (method, params) => {
    let answered = false, error, result;
    session.post(method, params, (e, r) => { answered = true; error = e; result = r; });
    if (!answered) throw new Error('inspector answered ' + method + ' asynchronously: a take would not be exact');
    if (error) throw error;
    return result;
  };
  post('Profiler.enable');
  post('Profiler.startPreciseCoverage', { callCount: true, detailed: ${detailed} });
  const take = () => post('Profiler.takePreciseCoverage').result;
  const mark = ${JSON.stringify(MARK)};
  let takes = [];
  /** The measured task now in flight here, and which of its windows is open. */
  let open;
  let window;
  const measured = (id) => typeof id === 'string' && id.includes(mark);
  const runOf = (m) => (m?.kind === 'batch' ? m.runs : [m]).find((r) => r?.kind === 'run' && r.taskId === open);
  const cut = (next) => {
    takes.push({ window, id: open, scripts: take() });
    window = next;
  };
  // Ahead of every 'message' listener, without adding one (a listener added this early would take the
  // messages that arrive before the app listens): the counts start as the message is delivered.
  const emit = process.emit;
  process.emit = function (event, m, ...rest) {
    if (event === 'message') {
      const runs = m?.kind === 'batch' ? m.runs : [m];
      const id = m?.type === 'task' ? m.id : runs.find((r) => r?.kind === 'run' && measured(r.taskId))?.taskId;
      if (measured(id)) {
        take();
        open = id;
        // The supervisor's task goes out to its worker first; a worker's run is one window.
        window = m?.type === 'task' ? 'outbound' : 'path';
      }
    }
    return emit.call(this, event, m, ...rest);
  };
  const send = process.send;
  if (send) {
    process.send = function (m, ...rest) {
      const id = m?.type === 'result' ? m.id : m?.kind === 'result' ? m.taskId : undefined;
      if (open !== undefined && id === open) {
        cut(undefined);
        open = undefined;
      }
      return send.call(this, m, ...rest);
    };
  }
  // In the supervisor: the run message leaving for the worker, and the worker's result arriving, cut
  // the path in three (out to the worker, while it runs, back to the client).
  // (child.send is the child's own property, set up with its channel: each forked child is wrapped.)
  const fork = childProcess.fork;
  childProcess.fork = function (...args) {
    const child = fork.apply(this, args);
    const childSend = child.send;
    child.send = function (m, ...rest) {
      if (window === 'outbound' && runOf(m)) cut('worker-runs');
      return childSend.call(this, m, ...rest);
    };
    const childEmit = child.emit;
    child.emit = function (event, m, ...rest) {
      if (event === 'message' && window === 'worker-runs' && m?.kind === 'result' && m.taskId === open) cut('return');
      return childEmit.call(this, event, m, ...rest);
    };
    return child;
  };
  syncBuiltinESMExports();
  // SIGUSR2: ends the window since the last take and writes every take held so far.
  process.on('SIGUSR2', () => {
    takes.push({ window: 'after', scripts: take() });
    writeFileSync(${JSON.stringify(dir)} + '/takes-' + process.pid + '-' + Date.now() + '.json', JSON.stringify(takes));
    takes = [];
  });
}
`;

function filesIn(scripts) {
  const files = new Set();
  for (const script of scripts) {
    if (!script.url.startsWith(`file://${root}`) || script.url.includes('/node_modules/')) continue;
    const m = /\/dist\/(workers\/)?(.*)\.js$/.exec(script.url);
    if (!m) continue;
    if (script.functions.some((f) => f.ranges.some((r) => r.count > 0)))
      files.add(`${m[1] ? 'workers' : 'src'}/${m[2]}.ts`);
  }
  return files;
}

/** Runs one supervisor under one coverage mode; per process, per measured task: files by window. */
async function measure(detailed) {
  const dir = mkdtempSync(join(tmpdir(), 'gpu-supervisor-round-trip-'));
  const hook = join(dir, 'coverage-hook.mjs');
  writeFileSync(hook, hookSource(dir, detailed));
  const env = { ...process.env, NODE_OPTIONS: `${process.env.NODE_OPTIONS ?? ''} --import ${hook}` };
  const sup = fork(join(root, 'dist/supervisor.js'), ['--workers', '1', '--log-level', 'warn'], {
    env,
    stdio: ['ignore', 'ignore', 'inherit', 'ipc'],
  });
  const waiting = new Map();
  sup.on('message', (m) => {
    const id = m.id ?? (m.type === 'ready' ? 'ready' : undefined);
    waiting.get(id)?.(m);
  });
  const answer = (id) => new Promise((resolve) => waiting.set(id, resolve));
  const input = {
    x: { type: 'float32', dims: [1, 512], data: Array.from({ length: 512 }, (_, i) => i / 512) },
  };
  const task = async (id) => {
    const reply = answer(id);
    sup.send({ type: 'task', id, payload: { model: 'mlp', inputs: input } });
    const m = await reply;
    if (m.type !== 'result' || !m.ok) throw new Error(`task ${id}: ${JSON.stringify(m).slice(0, 300)}`);
  };
  /** Ends the open window in both processes; returns what each wrote, by pid. */
  const flush = async (pids) => {
    const before = new Set(readdirSync(dir));
    for (const pid of pids) process.kill(pid, 'SIGUSR2');
    for (let i = 0; i < 200; i++) {
      const fresh = readdirSync(dir).filter((f) => !before.has(f) && f.startsWith('takes-'));
      const byPid = new Map(fresh.map((f) => [Number(f.split('-')[1]), f]));
      if (pids.every((pid) => byPid.has(pid))) {
        return new Map(pids.map((pid) => [pid, JSON.parse(readFileSync(join(dir, byPid.get(pid)), 'utf8'))]));
      }
      await sleep(20);
    }
    throw new Error('a process did not write its coverage');
  };
  try {
    await answer('ready');
    for (let i = 0; i < WARM_UP; i++) await task(`warm-${i}`);
    const statsReply = answer('stats');
    sup.send({ type: 'admin', id: 'stats', command: 'stats' });
    const workerPid = (await statsReply).value.workers[0].pid;
    const pids = [sup.pid, workerPid];
    await sleep(SETTLE_MS);
    await flush(pids); // the warm-up's aftermath: discarded
    const runs = [];
    for (let i = 0; i < MEASURED; i++) {
      const id = `${MARK}${i}`;
      await task(id);
      await sleep(SETTLE_MS);
      const takes = await flush(pids);
      const run = {};
      for (const [pid, role] of [
        [sup.pid, 'supervisor'],
        [workerPid, 'worker'],
      ]) {
        const windows = {};
        for (const take of takes.get(pid)) {
          if (take.window !== 'after' && take.id !== id) continue;
          windows[take.window] = filesIn(take.scripts);
        }
        const expected =
          role === 'supervisor' ? ['outbound', 'worker-runs', 'return', 'after'] : ['path', 'after'];
        const missing = expected.filter((w) => !windows[w]);
        if (missing.length > 0) throw new Error(`${role}: no ${missing.join(', ')} window for ${id}`);
        run[role] = windows;
      }
      runs.push(run);
    }
    // Idle: the same window with no task (timers, probes).
    await sleep(SETTLE_MS);
    const idleTakes = await flush(pids);
    const idle = {
      supervisor: filesIn(idleTakes.get(sup.pid).find((t) => t.window === 'after').scripts),
      worker: filesIn(idleTakes.get(workerPid).find((t) => t.window === 'after').scripts),
    };
    return { runs, idle };
  } finally {
    sup.kill('SIGTERM');
    rmSync(dir, { recursive: true, force: true });
  }
}

const modes = [await measure(false), await measure(true)];
const runs = modes.flatMap((m) => m.runs);
const union = (sets) => new Set(sets.flatMap((s) => [...(s ?? [])]));
const minus = (a, b) => new Set([...a].filter((f) => !b.has(f)));
const sorted = (set) => [...set].sort();
const ROLES = ['supervisor', 'worker'];
/** Each task's windows, per process: the supervisor's path is out and back; a worker's is its run. */
function windowsOf(role, w) {
  const none = new Set();
  const out = role === 'supervisor' ? w.outbound : none;
  const runsMeanwhile = role === 'supervisor' ? w['worker-runs'] : none;
  const back = role === 'supervisor' ? w.return : none;
  const path = role === 'supervisor' ? union([out, back]) : w.path;
  const beforeAnswer = union([path, runsMeanwhile]);
  return {
    everything: union([beforeAnswer, w.after]),
    beforeAnswer,
    path,
    out,
    back,
    // Run while the worker computes, and not on the way out or back: the answer does not wait for it.
    meanwhile: minus(runsMeanwhile, path),
    // Bookkeeping: run after the answer left, and not before it.
    after: minus(w.after, beforeAnswer),
  };
}
/** Per process and window: the union over the measured tasks (both modes), and those in every one. */
const report = {};
for (const role of ROLES) {
  const perTask = runs.map((r) => windowsOf(role, r[role]));
  report[role] = { idle: sorted(union(modes.map((m) => m.idle[role]))) };
  for (const key of Object.keys(perTask[0])) {
    const sets = perTask.map((t) => t[key]);
    const all = sorted(union(sets));
    report[role][key] = {
      files: all,
      notEveryTask: all.filter((f) => !sets.every((set) => set.has(f))),
      perTask: sets.map((set) => set.size),
    };
  }
}
const both = (key) => sorted(union(ROLES.map((role) => new Set(report[role][key].files))));
const src = (files) => files.filter((f) => f.startsWith('src/'));
const totals = { everything: both('everything'), beforeAnswer: both('beforeAnswer'), path: both('path') };

if (process.argv.includes('--json')) {
  const counts = Object.fromEntries(
    Object.entries(totals).map(([key, files]) => [key, { files: files.length, src: src(files).length }]),
  );
  process.stdout.write(
    `${JSON.stringify({ tasks: runs.length, ...report, total: totals.everything.length, counts })}\n`,
  );
} else {
  const out = (line) => process.stdout.write(`${line}\n`);
  const list = (role, key, mark = () => '') =>
    out(
      `${role} process (${report[role][key].files.length} files):\n${report[role][key].files
        .map((f) => `  ${report[role][key].notEveryTask.includes(f) ? '~' : ' '} ${f}${mark(f)}`)
        .join('\n')}`,
    );
  const count = (files) => `${files.length} files of src/ and workers/ (${src(files).length} of src/)`;
  out(
    `${runs.length} measured tasks (${MEASURED} per coverage mode, after ${WARM_UP} warm-up tasks each); ~ = not in every task`,
  );
  out('\neverything run, from the task arriving to its aftermath settled:');
  for (const role of ROLES) list(role, 'everything');
  out(`one round trip: ${count(totals.everything)}`);
  out(
    '\nbefore the answer was sent (out: on the way to the worker; back: from its result to the answer; meanwhile: while it ran):',
  );
  const where = (role) => (f) => {
    const r = report[role];
    const marks = [
      r.out.files.includes(f) && 'out',
      r.back.files.includes(f) && 'back',
      r.meanwhile.files.includes(f) && 'meanwhile',
    ];
    return role === 'supervisor' ? `  [${marks.filter(Boolean).join(' ')}]` : '';
  };
  for (const role of ROLES) list(role, 'beforeAnswer', where(role));
  out(`before the answer: ${count(totals.beforeAnswer)}`);
  out(`the path (out and back, and the worker's run): ${count(totals.path)}`);
  out('\nafter the answer only (bookkeeping):');
  for (const role of ROLES) list(role, 'after');
  const idle = (role) => report[role].idle.join(', ') || 'none';
  out(
    `\nidle, the same ${SETTLE_MS} ms with no task: supervisor ${idle('supervisor')}; worker ${idle('worker')}`,
  );
}
