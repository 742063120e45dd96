// No orphans: when the app that forked the supervisor dies, or the supervisor itself is killed, every
// worker exits (an orphan would hold its GPU memory until someone notices).
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { fileURLToPath } from 'node:url';
import { execFileSync } from 'node:child_process';
import {
  ECHO_WORKER,
  ROOT,
  SupervisorProcess,
  SUPERVISOR_ENTRY,
  httpDaemon,
  isAlive,
  waitUntil,
} from './helpers.js';

const PARENT = fileURLToPath(new URL('./fixtures/parent.mjs', import.meta.url));
const HUNG_APP = fileURLToPath(new URL('./fixtures/hung-library.mjs', import.meta.url));

async function startParent(): Promise<{
  parent: SupervisorProcess;
  supervisorPid: number;
  workerPids: number[];
}> {
  const parent = SupervisorProcess.script(PARENT, [SUPERVISOR_ENTRY, ECHO_WORKER], { stderr: 'inherit' });
  const line = await parent.firstLine();
  return { parent, ...(JSON.parse(line) as { supervisorPid: number; workerPids: number[] }) };
}

describe('process lifecycle', () => {
  test('the parent app dies (SIGKILL): the supervisor and its workers exit', async () => {
    const { parent, supervisorPid, workerPids } = await startParent();
    assert.equal(workerPids.length, 2);
    assert.ok([supervisorPid, ...workerPids].every(isAlive));
    await parent.stop('SIGKILL');
    await waitUntil(
      () => ![supervisorPid, ...workerPids].some(isAlive),
      'supervisor and workers gone',
      15_000,
    );
  });

  test('the supervisor is killed (SIGKILL): its workers exit by themselves', async () => {
    const sup = SupervisorProcess.fork(['--workers', '2', '--worker', ECHO_WORKER]);
    await sup.ready();
    const stats = await sup.request({ type: 'admin', id: 's', command: 'stats' });
    assert.ok(stats.type === 'admin-result' && stats.ok);
    const workerPids = (stats.value as { workers: Array<{ pid: number }> }).workers.map((w) => w.pid);
    sup.child.kill('SIGKILL');
    await sup.exit;
    await waitUntil(() => !workerPids.some(isAlive), 'workers gone', 10_000);
  });

  for (const [bond, env] of [
    ['the kernel parent-death signal', {}],
    ['the watchdog thread, the fallback where prctl is missing', { GPU_SUPERVISOR_WORKER_WATCHDOG: '1' }],
  ] as const)
    test(`a worker blocked in a native-like call still exits when its app dies (${bond})`, async () => {
      const app = SupervisorProcess.script(HUNG_APP, [ECHO_WORKER], { stderr: 'inherit', env });
      const workerPid = Number(await app.firstLine());
      await new Promise((r) => setTimeout(r, 300)); // the worker is now spinning in its task
      assert.ok(isAlive(workerPid));
      await app.stop('SIGKILL');
      await waitUntil(() => !isAlive(workerPid), 'blocked worker gone', 10_000);
    });

  test('on Linux with glibc the bond is the kernel signal; the seam forces the watchdog', () => {
    const bond = (env: NodeJS.ProcessEnv) =>
      execFileSync(
        process.execPath,
        [
          '--input-type=module',
          '-e',
          "import { bindToParent } from './dist/worker/parent-death.js'; process.stdout.write(bindToParent()); process.exit(0);",
        ],
        { cwd: ROOT, encoding: 'utf8', env: { ...process.env, ...env } },
      );
    assert.equal(bond({}), process.platform === 'linux' ? 'death-signal' : 'watchdog');
    assert.equal(bond({ GPU_SUPERVISOR_WORKER_WATCHDOG: '1' }), 'watchdog');
  });

  test('SIGTERM: running tasks finish and are answered, then exit code 0 and no worker left', async () => {
    const sup = SupervisorProcess.fork(['--workers', '1', '--worker', ECHO_WORKER]);
    await sup.ready();
    const stats = await sup.request({ type: 'admin', id: 's', command: 'stats' });
    const workerPid =
      stats.type === 'admin-result' && stats.ok
        ? (stats.value as { workers: Array<{ pid: number }> }).workers[0]!.pid
        : 0;
    sup.send({ type: 'task', id: 'inflight', payload: { op: 'sleep', ms: 300, value: 'done' } });
    await new Promise((r) => setTimeout(r, 50));
    sup.child.kill('SIGTERM');
    const answer = await sup.answer('inflight');
    assert.ok(answer.type === 'result' && answer.ok && answer.value === 'done', JSON.stringify(answer));
    assert.equal((await sup.exit).code, 0);
    assert.ok(!isAlive(workerPid));
  });

  test('SIGTERM while the workers start: a clean shutdown (exit 0), not a failed start', async () => {
    // HTTP is up before the workers: the signal lands while they are still in their setup.
    const { daemon: sup } = await httpDaemon(3000);
    assert.ok(!sup.logged('supervisor ready'));
    const exit = await sup.stop('SIGTERM');
    assert.equal(exit.code, 0, JSON.stringify(sup.logs.slice(-5)));
    assert.ok(!sup.logged('cannot start'), 'no fatal start line');
    assert.ok(sup.logged('supervisor stopped'));
  });

  test('a large answer finished during the shutdown drain reaches the parent before the exit', async () => {
    const sup = SupervisorProcess.fork(['--workers', '1', '--worker', ECHO_WORKER], {
      serialization: 'advanced',
    });
    await sup.ready();
    // 40 MB of float32: its write to the parent takes a while after the drain has ended.
    const n = 10_000_000;
    sup.send({ type: 'task', id: 'big', payload: { op: 'typed', n } });
    sup.send({ type: 'admin', id: 'stop', command: 'shutdown' });
    const answer = await sup.answer('big', 60_000);
    assert.ok(answer.type === 'result' && answer.ok, JSON.stringify(answer).slice(0, 300));
    assert.equal((answer.value as { f32: Float32Array }).f32.length, n);
    assert.equal((await sup.exit).code, 0);
  });
});
