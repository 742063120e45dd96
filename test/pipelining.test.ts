// Tasks sent ahead (pipelineDepth): a worker holds the task it runs and the next ones, runs them in
// order with its cleanup between them, and every task still gets exactly one answer whatever happens
// to the one before it (crash, timeout, cancel, recycle, shutdown).
import { afterEach, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ECHO_WORKER, SupervisorProcess, expectFailure, scratchDir, waitUntil } from './helpers.js';
import { supervisorFactory } from './fixtures/pool-helpers.js';

const { make, shutdownAll } = supervisorFactory({ worker: ECHO_WORKER, workers: 1, recycleEveryTasks: 0 });
afterEach(shutdownAll);

interface StatsValue {
  workers: Array<{ inFlight: number }>;
}

async function started(options: Parameters<typeof make>[0]) {
  const sup = make(options);
  await sup.start();
  return sup;
}

async function inFlight(sup: Awaited<ReturnType<typeof started>>): Promise<number> {
  const stats = await sup.stats();
  return stats.workers[0]?.inFlight ?? 0;
}

describe('pipelining: tasks sent ahead to a busy worker', () => {
  for (const depth of [1, 2, 3]) {
    test(`pipelineDepth ${depth}: a busy worker holds at most ${depth} tasks, answered in order`, async () => {
      const sup = await started({ pipelineDepth: depth });
      const order: string[] = [];
      const tasks = ['a', 'b', 'c', 'd'].map((id, i) =>
        sup
          .submit(id, i === 0 ? { op: 'sleep', ms: 400, value: id } : { op: 'echo', value: id })
          .then((outcome) => (order.push(id), outcome)),
      );
      await waitUntil(async () => (await inFlight(sup)) === depth, `the worker holds ${depth} tasks`);
      await new Promise((r) => setTimeout(r, 100));
      assert.equal(await inFlight(sup), depth, 'never more than pipelineDepth');
      const outcomes = await Promise.all(tasks);
      assert.deepEqual(
        outcomes.map((o) => (o.ok ? o.value : o.error.code)),
        ['a', 'b', 'c', 'd'],
      );
      assert.deepEqual(order, ['a', 'b', 'c', 'd']);
      // A task sent ahead is timed from when the worker could start it, not from when it was sent: timed
      // from its send it would include the wait behind the 400 ms task, so it would exceed that task's.
      const blocker = outcomes[0]!;
      assert.ok(blocker.ok);
      for (const o of outcomes.slice(1))
        assert.ok(o.ok && o.ms < blocker.ms, `ms ${o.ok ? o.ms : '-'} vs ${blocker.ms}`);
      assert.equal(await inFlight(sup), 0);
    });
  }

  test('the thread backend holds one task at a time whatever pipelineDepth says', async () => {
    const sup = await started({ backend: 'thread', pipelineDepth: 4 });
    const tasks = [sup.run({ op: 'sleep', ms: 300 }), sup.run({ op: 'echo', value: 1 })];
    await new Promise((r) => setTimeout(r, 100));
    assert.equal(await inFlight(sup), 1);
    await Promise.all(tasks);
  });

  test('a crash of the running task requeues the one sent ahead: not failed, not an attempt', async () => {
    const sup = await started({ pipelineDepth: 2, retries: 0 });
    const first = await sup.submit('pid', { op: 'pid' });
    assert.ok(first.ok);
    const crash = sup.submit('crash', { op: 'exit', code: 3 });
    const next = sup.submit('next', { op: 'pid' });
    const [crashed, after] = await Promise.all([crash, next]);
    expectFailure(crashed, 'E_WORKER_CRASHED');
    assert.ok(after.ok, JSON.stringify(after));
    assert.notEqual(after.value, first.value, 'ran on the replacement');
    assert.equal(after.attempts, undefined, 'a requeue is not a retry');
  });

  test('a timeout of the running task ends it alone: the task sent ahead runs on the replacement', async () => {
    const sup = await started({ pipelineDepth: 2 });
    const hung = sup.submit('hung', { op: 'hang' }, { timeoutMs: 300 });
    const next = sup.submit('next', { op: 'echo', value: 'fine' });
    const [timedOut, after] = await Promise.all([hung, next]);
    expectFailure(timedOut, 'E_TIMEOUT');
    assert.ok(after.ok && after.value === 'fine', JSON.stringify(after));
    assert.equal((await sup.stats()).totals.recycles, 1);
  });

  test('a task sent ahead and then cancelled is skipped by the worker, which lives on', async () => {
    const sup = await started({ pipelineDepth: 2 });
    const running = sup.submit('running', { op: 'sleep', ms: 400, value: 'done' });
    const controller = new AbortController();
    // Were it run, this task would kill its worker.
    const doomed = sup.submit('doomed', { op: 'exit', code: 3 }, { signal: controller.signal });
    await waitUntil(async () => (await inFlight(sup)) === 2, 'the exit task is sent ahead');
    controller.abort();
    const cancelled = await doomed;
    expectFailure(cancelled, 'E_CANCELLED');
    const ran = await running;
    assert.ok(ran.ok && ran.value === 'done');
    const after = await sup.submit('after', { op: 'pid' });
    assert.ok(after.ok);
    assert.equal(after.workerPid, ran.workerPid, 'same worker: the exit task never ran');
    await waitUntil(async () => (await inFlight(sup)) === 0, 'the skipped task is accounted for');
    assert.equal((await sup.stats()).totals.recycles, 0);
  });

  test('cleanup.everyTasks 2: a skipped task that carried the cleanup still cleans up after the one before it', async () => {
    const sup = await started({ pipelineDepth: 2, cleanup: { everyTasks: 2 } });
    const lines: Array<{ taskId: string | undefined; tasks?: number }> = [];
    sup.events.on('cleanup', (e) => lines.push({ taskId: e.taskId, tasks: e.tasks }));
    const running = sup.submit('running', { op: 'sleep', ms: 400, value: 'done' });
    const controller = new AbortController();
    // The second task sent: the one that carries the cleanup covering both.
    const doomed = sup.submit('doomed', { op: 'exit', code: 3 }, { signal: controller.signal });
    await waitUntil(async () => (await inFlight(sup)) === 2, 'the second task is sent ahead');
    controller.abort();
    assert.equal((await doomed).ok, false);
    assert.ok((await running).ok);
    await waitUntil(() => lines.length > 0, 'the cleanup after the skipped task');
    // It covers the task that ran before the skipped one (the skipped one did not run).
    assert.deepEqual(lines, [{ taskId: 'doomed', tasks: 1 }]);
    const next = await Promise.all(['n1', 'n2'].map((id) => sup.submit(id, { op: 'echo', value: id })));
    assert.ok(next.every((o) => o.ok));
    await waitUntil(() => lines.length > 1, 'the cleanup after n2');
    assert.deepEqual(lines[1], { taskId: 'n2', tasks: 2 });
  });

  test('a worker dying in its cleanup requeues the task sent ahead (it had not started)', async () => {
    const dir = scratchDir('gpu-sup-pipe-');
    const flag = join(dir, 'exit-in-cleanup');
    const sup = await started({ pipelineDepth: 2, workerOptions: { cleanupExitFile: flag } });
    const warm = await sup.submit('warm', { op: 'pid' });
    assert.ok(warm.ok);
    writeFileSync(flag, 'x');
    const first = sup.submit('first', { op: 'sleep', ms: 200, value: 'answered' });
    const second = sup.submit('second', { op: 'pid' });
    const [a, b] = await Promise.all([first, second]);
    assert.ok(a.ok && a.value === 'answered', 'answered before the cleanup that killed its worker');
    assert.ok(b.ok, JSON.stringify(b));
    assert.notEqual(b.value, warm.value, 'ran on the replacement');
    assert.equal(existsSync(flag), false);
  });

  test('recycleEveryTasks counts tasks sent ahead: each worker runs exactly N', async () => {
    const sup = await started({ pipelineDepth: 4, recycleEveryTasks: 3, recycle: { prespawn: false } });
    const outcomes = await Promise.all(
      Array.from({ length: 9 }, (_, i) => sup.submit(`t${i}`, { op: 'pid' })),
    );
    const perPid = new Map<unknown, number>();
    for (const o of outcomes) {
      assert.ok(o.ok, JSON.stringify(o));
      perPid.set(o.value, (perPid.get(o.value) ?? 0) + 1);
    }
    assert.deepEqual([...perPid.values()], [3, 3, 3]);
  });

  test('an admin recycle waits for the tasks sent ahead, then replaces the worker', async () => {
    const sup = await started({ pipelineDepth: 3 });
    const tasks = [
      sup.submit('a', { op: 'sleep', ms: 300, value: 'a' }),
      sup.submit('b', { op: 'pid' }),
      sup.submit('c', { op: 'pid' }),
    ];
    await waitUntil(async () => (await inFlight(sup)) === 3, 'three tasks held');
    const recycled = (await sup.admin('recycle')) as { recycled: number[]; ram?: { freedMiB: number } };
    const outcomes = await Promise.all(tasks);
    assert.ok(
      outcomes.every((o) => o.ok),
      JSON.stringify(outcomes),
    );
    const pid = outcomes[1]!.ok ? outcomes[1]!.value : undefined;
    assert.deepEqual(recycled.recycled, [pid]);
    assert.equal(typeof recycled.ram?.freedMiB, 'number', 'the answer says what the recycle freed');
    const after = await sup.submit('after', { op: 'pid' });
    assert.ok(after.ok && after.value !== pid);
  });

  // Tasks for one worker in the same tick go out as one IPC message; a payload that cannot be
  // serialized (a function) must fail alone, with the others sent and answered.
  for (const depth of [1, 4]) {
    test(`pipelineDepth ${depth}: a payload that cannot be sent is E_BAD_REQUEST, alone; the worker lives on`, async () => {
      const sup = await started({ pipelineDepth: depth });
      const first = await sup.submit('first', { op: 'pid' });
      assert.ok(first.ok);
      const outcomes = await Promise.all([
        sup.submit('a', { op: 'echo', value: 'a' }),
        sup.submit('bad', { op: 'echo', value: () => 'not cloneable' }),
        sup.submit('b', { op: 'echo', value: 'b' }),
        sup.submit('c', { op: 'pid' }),
      ]);
      assert.deepEqual(
        outcomes.map((o) => (o.ok ? o.value : o.error.code)),
        ['a', 'E_BAD_REQUEST', 'b', first.value],
      );
      const bad = outcomes[1]!;
      assert.match(!bad.ok ? bad.error.message : '', /payload cannot be sent to a worker/);
      assert.equal(await inFlight(sup), 0);
      assert.equal((await sup.stats()).totals.recycles, 0);
    });
  }

  // Counted on the IPC channel of a forked supervisor: a library promise settles once whatever the pool
  // does, so only the channel can show a second answer to the same id.
  test('shutdown answers every held task exactly once', async () => {
    const sup = SupervisorProcess.fork([
      ...['--workers', '1', '--worker', ECHO_WORKER, '--recycle-every', '0'],
      ...['--pipeline-depth', '3', '--shutdown-timeout', '200'],
    ]);
    await sup.ready();
    for (let i = 0; i < 6; i++)
      sup.send({ type: 'task', id: `s${i}`, payload: i === 0 ? { op: 'hang' } : { op: 'echo', value: i } });
    await waitUntil(async () => {
      const stats = await sup.request({ type: 'admin', id: `stats-${Date.now()}`, command: 'stats' });
      return (
        stats.type === 'admin-result' && stats.ok && (stats.value as StatsValue).workers[0]?.inFlight === 3
      );
    }, 'three tasks held');
    assert.equal((await sup.stop()).code, 0);
    const results = sup.messages.filter((m) => m.type === 'result');
    assert.deepEqual(results.map((m) => m.id).sort(), ['s0', 's1', 's2', 's3', 's4', 's5']);
    for (const m of results) expectFailure(m, 'E_SHUTTING_DOWN');
  });
});
