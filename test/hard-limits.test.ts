// Hard limits watched while a task runs, through the real daemon and real worker processes: a task
// that balloons past limits.rssMiB is ended at once with E_OUT_OF_MEMORY (never retried), what was sent
// ahead to its worker is requeued, the worker is replaced and the supervisor keeps serving. And a
// SIGKILL nobody in the supervisor sent is named as the kernel OOM killer's when the cgroup's oom_kill
// count grew, read from a stand-in cgroup directory (this host has no cgroup v2 memory controller).
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Supervisor, type SupervisorEventMap, type SupervisorMessage } from 'gpu-supervisor';
import { ECHO_WORKER, SupervisorProcess, expectCode, isAlive, scratchDir, waitUntil } from './helpers.js';
import { CUDA_WORKER, FakeGpu } from './gpu-helpers.js';

const dir = scratchDir('gpu-sup-hard-limits-');
const started: SupervisorProcess[] = [];
after(async () => {
  await Promise.all(started.map((sup) => sup.stop()));
  rmSync(dir, { recursive: true, force: true });
});

function start(config: Record<string, unknown>, env: NodeJS.ProcessEnv = {}): SupervisorProcess {
  const file = join(dir, `config-${started.length}.json`);
  writeFileSync(
    file,
    JSON.stringify({
      worker: ECHO_WORKER,
      workers: 1,
      recycleEveryTasks: 0,
      socket: 'off',
      history: { path: 'off' },
      cleanup: { gpu: false },
      ...config,
    }),
  );
  const sup = SupervisorProcess.fork(['--config', file], { env });
  started.push(sup);
  return sup;
}

type Result = Extract<SupervisorMessage, { type: 'result' }>;
let seq = 0;
const nextId = (name: string): string => `${name}-${++seq}`;

async function answer(sup: SupervisorProcess, id: string): Promise<Result> {
  const message = await sup.answer(id, 60_000);
  assert.equal(message.type, 'result', JSON.stringify(message));
  return message as Result;
}

async function pidOf(sup: SupervisorProcess): Promise<number> {
  const id = nextId('pid');
  sup.send({ type: 'task', id, payload: { op: 'pid' } });
  const result = await answer(sup, id);
  assert.ok(result.ok, JSON.stringify(result));
  return result.value as number;
}

const lines = (file: string): string[] =>
  readFileSync(file, 'utf8')
    .split('\n')
    .filter((l) => l !== '');

describe('limits.rssMiB: a task that balloons while it runs', () => {
  test('20 MiB every 10 ms past 400 MiB: E_OUT_OF_MEMORY naming limit, reading and task; not retried; the task sent ahead is requeued and answered; the worker is replaced', async () => {
    const sup = start({ pipelineDepth: 2, retries: 2, limits: { rssMiB: 400, intervalMs: 100 } });
    await sup.ready();
    const before = await pidOf(sup);
    const trace = join(dir, 'balloon-runs.txt');
    writeFileSync(trace, '');
    const balloon = nextId('balloon');
    const ahead = nextId('ahead');
    // One worker, pipelineDepth 2: the echo is sent ahead to the worker that runs the balloon.
    sup.send({
      type: 'task',
      id: balloon,
      payload: { op: 'balloon', stepMiB: 20, everyMs: 10, file: trace },
    });
    sup.send({ type: 'task', id: ahead, payload: { op: 'echo', value: 'after the balloon' } });

    const failed = await answer(sup, balloon);
    assert.equal(failed.ok, false, JSON.stringify(failed));
    assert.ok(!failed.ok);
    assert.equal(failed.error.code, 'E_OUT_OF_MEMORY');
    const { message } = failed.error;
    assert.match(message, /limits\.rssMiB 400 MiB/);
    assert.match(message, new RegExp(`task ${balloon}\\b`));
    const reading = Number(/read (\d+(?:\.\d+)?) MiB/.exec(message)?.[1]);
    assert.ok(reading > 400, `the reading in "${message}" is over the limit`);
    // It never reached its 1500 MiB: it was stopped on its way (not when it ended).
    assert.ok(reading < 1500, message);
    assert.equal('attempts' in failed, false, 'answered on its first attempt');

    const requeued = await answer(sup, ahead);
    assert.ok(requeued.ok, JSON.stringify(requeued));
    assert.equal(requeued.value, 'after the balloon');
    assert.notEqual(requeued.workerPid, before, 'the task sent ahead ran on the replacement');
    assert.equal('attempts' in requeued, false, 'a requeued task did not use an attempt');

    const [limit] = await sup.waitFor(
      () => (sup.logsWith('limit').length > 0 ? sup.logsWith('limit') : undefined),
      'the limit line',
    );
    assert.deepEqual(
      { taskId: limit!.taskId, pid: limit!.pid, limit: limit!.limit, limitMiB: limit!.limitMiB },
      { taskId: balloon, pid: before, limit: 'rss', limitMiB: 400 },
    );
    assert.equal(limit!.readingMiB, reading, 'the line and the error carry the same reading');
    const recycle = await sup.waitFor(
      () => sup.logsWith('recycle').find((l) => l.oldPid === before),
      'the recycle line of the killed worker',
    );
    assert.equal(recycle.reason, 'limit');
    assert.equal(recycle.newPid, requeued.workerPid);
    assert.equal(isAlive(before), false, 'the worker over the limit is gone');

    // Not retried even with retries 2: the balloon ran exactly once.
    assert.deepEqual(lines(trace), [String(before)]);
    assert.equal(sup.answersFor(balloon).length, 1);
    // And the supervisor keeps serving, on the replacement.
    assert.equal(await pidOf(sup), requeued.workerPid);
  });

  test('a task that stays under the limit is not touched: same worker, no limit line', async () => {
    const sup = start({ limits: { rssMiB: 400, intervalMs: 20 } });
    await sup.ready();
    const pid = await pidOf(sup);
    const id = nextId('small');
    sup.send({ type: 'task', id, payload: { op: 'balloon', stepMiB: 20, everyMs: 10, maxMiB: 200 } });
    const result = await answer(sup, id);
    assert.ok(result.ok, JSON.stringify(result));
    assert.equal(result.value, 200);
    assert.equal(await pidOf(sup), pid, 'the same worker serves on');
    assert.equal(sup.logsWith('limit').length, 0);
  });
});

describe('limits.gpuMiB: GPU memory over the limit while a task runs (fake nvidia-smi, simulated CUDA)', () => {
  test("the worker's own GPU memory, read at the probe's cadence: killed, E_OUT_OF_MEMORY, replaced", async () => {
    const fake = new FakeGpu();
    const uninstall = fake.install();
    const sup = new Supervisor({
      worker: CUDA_WORKER,
      workers: 1,
      logLevel: 'silent',
      recycleEveryTasks: 0,
      retries: 1,
      workerOptions: { mode: 'simulated', contextMiB: 300 },
      gpuProbe: { command: 'nvidia-smi', minIntervalMs: 50, timeoutMs: 2_000, reclaimTimeoutMs: 3_000 },
      limits: { gpuMiB: 500 },
    });
    const limits: Array<SupervisorEventMap['limit']> = [];
    sup.events.on('limit', (e) => limits.push(e));
    try {
      await sup.start();
      // 300 MiB of context plus 100: under the limit, answered.
      await sup.run({ op: 'alloc', mib: 100, holdMs: 300 });
      const [before] = (await sup.stats()).workers.map((w) => w.pid);
      // 300 + 512 = 812 MiB for 5 s: the watch sees a reading over 500 long before the task ends.
      await expectCode(
        sup.run({ op: 'alloc', mib: 512, holdMs: 5_000 }),
        'E_OUT_OF_MEMORY',
        /limits\.gpuMiB 500 MiB: worker \d+ GPU memory read 812 MiB/,
      );
      assert.deepEqual(
        limits.map((e) => [e.limit, e.limitMiB, e.readingMiB, e.pid]),
        [['gpu', 500, 812, before]],
      );
      await waitUntil(async () => (await sup.stats()).workers[0]?.pid !== before, 'the worker is replaced');
      const info = (await sup.run({ op: 'info' })) as { pid: number; allocatedMiB: number };
      assert.notEqual(info.pid, before);
      assert.equal(info.allocatedMiB, 0);
    } finally {
      await sup.shutdown();
      uninstall();
    }
  });
});

/** Our cgroup v2 path, as the supervisor (a child of this process, in the same cgroup) will read it. */
function ownCgroupPath(): string {
  const line = readFileSync('/proc/self/cgroup', 'utf8')
    .split('\n')
    .find((l) => l.startsWith('0::'));
  assert.ok(line, 'this host lists a cgroup v2 path in /proc/self/cgroup');
  return line.slice(3);
}

function memoryEvents(oomKills: number): string {
  return `low 0\nhigh 0\nmax 3\noom 1\noom_kill ${oomKills}\noom_group_kill 0\n`;
}

describe('the kernel OOM killer, named (stand-in cgroup directory, not a real cgroup)', () => {
  test('stand-in cgroup dir: a SIGKILL from outside after oom_kill grew says "killed by the kernel OOM killer"; without the bump, the bare signal', async () => {
    const root = join(dir, 'cgroup-standin');
    const cgroup = join(root, ownCgroupPath());
    mkdirSync(cgroup, { recursive: true });
    const events = join(cgroup, 'memory.events');
    writeFileSync(events, memoryEvents(4));
    const sup = start({ pipelineDepth: 1 }, { GPU_SUPERVISOR_CGROUP_DIR: root });
    await sup.ready();

    const killMidTask = async (bump: boolean): Promise<{ pid: number; result: Result }> => {
      const pid = await pidOf(sup);
      const trace = join(dir, `running-${++seq}.txt`);
      writeFileSync(trace, '');
      const id = nextId('victim');
      sup.send({ type: 'task', id, payload: { op: 'note', file: trace, then: 'sleep', ms: 60_000 } });
      // The task runs: the supervisor sent it (and read oom_kill before it did).
      await waitUntil(() => lines(trace).length === 1, 'the task runs');
      if (bump) writeFileSync(events, memoryEvents(5));
      process.kill(pid, 'SIGKILL');
      return { pid, result: await answer(sup, id) };
    };

    const oom = await killMidTask(true);
    assert.ok(!oom.result.ok);
    assert.equal(oom.result.error.code, 'E_WORKER_CRASHED');
    assert.match(oom.result.error.message, /killed by the kernel OOM killer/);
    const exitLine = await sup.waitFor(
      () => sup.logsWith('worker exited unexpectedly').find((l) => l.pid === oom.pid),
      'the exit line',
    );
    assert.match(String(exitLine.detail), /^killed by the kernel OOM killer \(SIGKILL\)$/);
    const recycle = await sup.waitFor(
      () => sup.logsWith('recycle').find((l) => l.oldPid === oom.pid),
      'the recycle line',
    );
    assert.match(String(recycle.detail), /killed by the kernel OOM killer/);

    // Same kill, oom_kill unchanged since the worker took its task: a bare signal, nothing guessed.
    const plain = await killMidTask(false);
    assert.ok(!plain.result.ok);
    assert.equal(plain.result.error.code, 'E_WORKER_CRASHED');
    assert.match(plain.result.error.message, /\(killed by SIGKILL\)/);
    assert.doesNotMatch(plain.result.error.message, /OOM/);
    const plainExit = await sup.waitFor(
      () => sup.logsWith('worker exited unexpectedly').find((l) => l.pid === plain.pid),
      'the second exit line',
    );
    assert.equal(plainExit.detail, undefined);
    assert.equal(plainExit.signal, 'SIGKILL');
  });
});
