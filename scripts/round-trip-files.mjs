// Which files of src/ (and workers/) one task's round trip runs through, measured rather than read off
// the code: the supervisor (dist/supervisor.js, forked with an IPC channel, as a parent app does) and its
// worker run with V8's precise call counts on (a hook loaded through NODE_OPTIONS); after warm-up tasks
// the counts are reset, one task goes fork channel -> worker -> answer, and every file with a function
// called in between is listed, per process.
//
//   node scripts/round-trip-files.mjs [--json]
import { fork } from 'node:child_process';
import { mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';

const root = fileURLToPath(new URL('..', import.meta.url));
const dir = mkdtempSync(join(tmpdir(), 'gpu-supervisor-round-trip-'));
const hook = join(dir, 'coverage-hook.mjs');
// Each process starts precise coverage at once; SIGUSR2 writes the counts since the last take and resets them.
writeFileSync(
  hook,
  `import { Session } from 'node:inspector';
import { writeFileSync } from 'node:fs';
const session = new Session();
session.connect();
const post = (method, params) => new Promise((ok, fail) => session.post(method, params, (e, r) => (e ? fail(e) : ok(r))));
await post('Profiler.enable');
await post('Profiler.startPreciseCoverage', { callCount: true, detailed: false });
let take = 0;
process.on('SIGUSR2', async () => {
  const { result } = await post('Profiler.takePreciseCoverage');
  writeFileSync(${JSON.stringify(dir)} + '/take-' + process.pid + '-' + take++ + '.json', JSON.stringify(result));
});
`,
);

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
  if (m.type !== 'result') throw new Error(`task ${id}: ${JSON.stringify(m).slice(0, 300)}`);
};

async function takeAll(pids, n) {
  for (const pid of pids) process.kill(pid, 'SIGUSR2');
  for (let i = 0; i < 100; i++) {
    if (pids.every((pid) => readdirSync(dir).includes(`take-${pid}-${n}.json`))) return;
    await sleep(20);
  }
  throw new Error('a process did not write its coverage');
}

function filesRun(pid, n) {
  const scripts = JSON.parse(readFileSync(join(dir, `take-${pid}-${n}.json`), 'utf8'));
  const files = new Set();
  for (const script of scripts) {
    if (!script.url.startsWith(`file://${root}`) || script.url.includes('/node_modules/')) continue;
    const m = /\/dist\/(workers\/)?(.*)\.js$/.exec(script.url);
    if (!m) continue;
    if (script.functions.some((f) => f.ranges.some((r) => r.count > 0)))
      files.add(`${m[1] ? 'workers' : 'src'}/${m[2]}.ts`);
  }
  return [...files].sort();
}

try {
  await answer('ready');
  for (let i = 0; i < 20; i++) await task(`warm-${i}`);
  const statsReply = answer('stats');
  sup.send({ type: 'admin', id: 'stats', command: 'stats' });
  const workerPid = (await statsReply).value.workers[0].pid;
  const pids = [sup.pid, workerPid];
  // Let the warm-up's cleanup and any timer settle, then reset the counts and run one task.
  await sleep(300);
  await takeAll(pids, 0);
  await task('measured');
  await sleep(200);
  await takeAll(pids, 1);
  const supervisor = filesRun(sup.pid, 1);
  const worker = filesRun(workerPid, 1);
  const all = [...new Set([...supervisor, ...worker])];
  if (process.argv.includes('--json'))
    process.stdout.write(`${JSON.stringify({ supervisor, worker, total: all.length })}\n`);
  else {
    process.stdout.write(
      `supervisor process (${supervisor.length} files):\n${supervisor.map((f) => `  ${f}`).join('\n')}\n`,
    );
    process.stdout.write(
      `worker process (${worker.length} files):\n${worker.map((f) => `  ${f}`).join('\n')}\n`,
    );
    process.stdout.write(`one round trip: ${all.length} files of src/ and workers/\n`);
  }
} finally {
  sup.kill('SIGTERM');
  rmSync(dir, { recursive: true, force: true });
}
