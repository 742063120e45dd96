// Guarantee 3 with cleanup.everyTasks > 1, on real processes: the cleanup rides on every N-th task, but
// within reach of the RSS ceiling (by the measured growth over the tasks one cleanup would cover) every
// task is measured again, so a worker leaking steadily is caught by the task that crossed: the first
// cleanup reading over the ceiling is the last task its process runs.
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import type { SupervisorEventMap, TaskOutcome } from 'gpu-supervisor';
import { ECHO_WORKER } from './helpers.js';
import { supervisorFactory } from './fixtures/pool-helpers.js';

const { make, shutdownAll } = supervisorFactory({ worker: ECHO_WORKER });
after(shutdownAll);

const EVERY = 5;
const LEAK_MiB = 3;

test(`cleanup.everyTasks ${EVERY}, a steady ${LEAK_MiB} MiB leak: measured per task near the ceiling, nothing runs past the crossing`, async () => {
  const probe = make({ workers: 1, recycleEveryTasks: 0 });
  await probe.start();
  const base = (await probe.stats()).workers[0]!.rssMiB!;
  await probe.shutdown();
  const ceiling = Math.round(base + 20 * LEAK_MiB);
  const sup = make({
    workers: 1,
    recycleEveryTasks: 0,
    cleanup: { everyTasks: EVERY },
    recycle: { rssMiB: ceiling },
  });
  const cleanups: SupervisorEventMap['cleanup'][] = [];
  const recycles: SupervisorEventMap['recycle'][] = [];
  sup.events.on('cleanup', (e) => cleanups.push(e));
  sup.events.on('recycle', (e) => recycles.push(e));
  await sup.start();
  const first = (await sup.stats()).workers[0]!.pid;
  // One at a time: each task's cleanup (if it carries one) is reported before the next is sent.
  const ran: Array<Extract<TaskOutcome, { ok: true }>> = [];
  for (let i = 0; i < 40; i++) {
    const outcome = await sup.submit(`l${i}`, { op: 'leak', mib: LEAK_MiB });
    assert.ok(outcome.ok, JSON.stringify(outcome));
    ran.push(outcome);
  }
  const mine = cleanups.filter((c) => c.pid === first);
  const over = mine.find((c) => c.rssAfterMiB > ceiling);
  assert.ok(
    over,
    `the first worker crossed ${ceiling} MiB: ${JSON.stringify(mine.map((c) => c.rssAfterMiB))}`,
  );
  // Far from the ceiling the cleanup covers EVERY tasks; the readings just before the crossing cover one.
  assert.ok(
    mine.some((c) => c.tasks === EVERY),
    `far from the ceiling a cleanup covers ${EVERY} tasks: ${JSON.stringify(mine.map((c) => c.tasks))}`,
  );
  const lastTwo = mine.slice(mine.indexOf(over) - 1, mine.indexOf(over) + 1);
  assert.deepEqual(
    lastTwo.map((c) => c.tasks),
    [1, 1],
    `near the ceiling every task is measured: ${JSON.stringify(mine.map((c) => [c.tasks, c.rssAfterMiB]))}`,
  );
  const crossing = ran[Number(over.taskId?.slice(1))];
  assert.ok(crossing, `the crossing task ${over.taskId} is one of ours`);
  assert.deepEqual(
    ran
      .filter((o) => o.workerPid === first && (o.value as number) > (crossing.value as number))
      .map((o) => `l${ran.indexOf(o)}`),
    [],
    `tasks run by pid ${first} after its reading crossed ${ceiling} MiB`,
  );
  assert.equal(recycles[0]?.reason, 'rss', JSON.stringify(recycles[0]));
  assert.equal(recycles[0]?.oldPid, first);
});
