// The pool's guarantees as properties: fast-check drives the real Scheduler, with fake workers
// (FakeWorkers: the worker message contract, no processes) through random interleavings of tasks,
// answers (some submitting a follow-up from inside the answer), crashes, slow and failed starts, kills from outside, admin recycles, timeouts, cancels
// and a final shutdown, and checks after every step what the README promises.
import { after, describe, test } from 'node:test';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import type { FakeRuntime } from '../dist/pool/runtime/fake-runtime.js';
import { FakeTask, flush as flushTurns } from './fixtures/fake-task.js';
import { fakePool } from './fixtures/fake-pool.js';
import type { SlotView } from '../dist/pool/slot-view.js';

const RUNS = Number(process.env.MODEL_RUNS ?? 3000);

// A stand-in /proc (labelled as such): a fixed host, so 'auto' pre-spawn and the RAM budget decide the
// same way on every run and every machine.
const STAND_IN_PROC = mkdtempSync(join(tmpdir(), 'gpu-supervisor-model-proc-'));
writeFileSync(
  join(STAND_IN_PROC, 'stat'),
  'cpu  100 0 100 10000 0 0 0 0 0 0\ncpu0 100 0 100 10000 0 0 0 0 0 0\n',
);
writeFileSync(join(STAND_IN_PROC, 'meminfo'), 'MemTotal: 16777216 kB\nMemAvailable: 16000000 kB\n');
after(() => rmSync(STAND_IN_PROC, { recursive: true, force: true }));

interface Knobs {
  workers: number;
  pipelineDepth: number;
  recycleEveryTasks: number;
  maxConcurrent: number;
  /** 'auto' reads a stand-in /proc whose CPU counters never move: idleness unmeasured, starts allowed. */
  prespawn: boolean | 'auto';
  retries: number;
  spareWorkers: number;
  rssMiB: number;
  /** cleanup.everyTasks: the after-task cleanup rides on every N-th task sent. */
  cleanupEvery: number;
  /** Let every task finish before the shutdown (checks liveness), or shut down with work in hand. */
  settleFirst: boolean;
}

type Command =
  /** chained: its answer submits a follow-up task from inside itself, as a 'task' listener may. */
  | { t: 'submit'; priority: number; chained: boolean }
  | { t: 'ready'; k: number }
  | { t: 'failStart'; k: number; own: boolean }
  | { t: 'finish'; k: number; ok: boolean; leak: number }
  | { t: 'crash'; k: number; signal: boolean }
  | { t: 'admin'; k: number; one: boolean }
  | { t: 'abandon'; k: number; timeout: boolean };

const knobs = fc.record<Knobs>({
  workers: fc.integer({ min: 1, max: 3 }),
  pipelineDepth: fc.integer({ min: 1, max: 3 }),
  recycleEveryTasks: fc.constantFrom(0, 1, 2, 3, 5),
  maxConcurrent: fc.integer({ min: 1, max: 2 }),
  prespawn: fc.constantFrom<boolean | 'auto'>(true, false, 'auto'),
  retries: fc.integer({ min: 0, max: 1 }),
  spareWorkers: fc.constantFrom(0, 0, 1),
  rssMiB: fc.constantFrom(0, 0, 80),
  cleanupEvery: fc.constantFrom(1, 1, 2, 3),
  settleFirst: fc.boolean(),
});

const k = fc.nat(7);
const command: fc.Arbitrary<Command> = fc.oneof(
  {
    weight: 6,
    arbitrary: fc.record({
      t: fc.constant('submit' as const),
      priority: fc.integer({ min: 0, max: 2 }),
      chained: fc.boolean(),
    }),
  },
  { weight: 5, arbitrary: fc.record({ t: fc.constant('ready' as const), k }) },
  { weight: 1, arbitrary: fc.record({ t: fc.constant('failStart' as const), k, own: fc.boolean() }) },
  {
    weight: 8,
    arbitrary: fc.record({
      t: fc.constant('finish' as const),
      k,
      ok: fc.boolean(),
      leak: fc.constantFrom(0, 0, 5, 20),
    }),
  },
  { weight: 1, arbitrary: fc.record({ t: fc.constant('crash' as const), k, signal: fc.boolean() }) },
  { weight: 1, arbitrary: fc.record({ t: fc.constant('admin' as const), k, one: fc.boolean() }) },
  { weight: 1, arbitrary: fc.record({ t: fc.constant('abandon' as const), k, timeout: fc.boolean() }) },
);

const flush = (): Promise<void> => flushTurns(3);

const pick = <T>(items: readonly T[], index: number): T | undefined =>
  items.length === 0 ? undefined : items[index % items.length];

async function play(settings: Knobs, commands: Command[]): Promise<void> {
  const { pool, fakes } = fakePool(
    {
      workers: settings.workers,
      pipelineDepth: settings.pipelineDepth,
      recycleEveryTasks: settings.recycleEveryTasks,
      retries: settings.retries,
      spareWorkers: settings.spareWorkers,
      minUptimeMs: 60_000,
      maxFailedStarts: 2,
      startTimeoutMs: 600_000,
      idleTimeoutMs: 0,
      logLevel: 'silent',
      cleanup: { gpu: false, everyTasks: settings.cleanupEvery },
      recycle: {
        maxConcurrent: settings.maxConcurrent,
        prespawn: settings.prespawn,
        rssMiB: settings.rssMiB,
      },
    },
    { procRoot: STAND_IN_PROC },
  );
  const tasks: FakeTask[] = [];
  const byId = new Map<string, FakeTask>();
  let ownFailures = 0;
  // Guarantee 7 speaks of pre-spawn on a count-based recycle (with warm spares a spare takes the slot).
  const prespawnByCount =
    settings.prespawn !== false && settings.spareWorkers === 0 && settings.recycleEveryTasks > 0;
  /** Slot workers (pids) whose successor was lost: it died starting or once ready, before taking over. */
  const successorLost = new Set<number>();
  let lastViews: SlotView[] = [];
  const problems: string[] = [];

  // Priority: when a task reaches a worker, no task of higher priority is certainly waiting: one never
  // sent, or handed back unstarted by a worker that died (a started one may be answered or retried).
  const holder = new Map<string, FakeRuntime>();
  const waiting = (t: FakeTask): boolean => {
    if (t.settled) return false;
    const last = holder.get(t.id);
    return last === undefined || (last.state === 'exited' && !last.started.includes(t.id));
  };
  const watch = (fake: FakeRuntime): void => {
    const send = fake.send.bind(fake);
    fake.send = (message) => {
      const runs = message.kind === 'batch' ? message.runs : message.kind === 'run' ? [message] : [];
      for (const run of runs) {
        const task = byId.get(run.taskId)!;
        const higher = tasks.find((t) => t !== task && t.priority > task.priority && waiting(t));
        holder.set(task.id, fake);
        if (higher && fake.state !== 'exited')
          problems.push(
            `${task.id} (priority ${task.priority}) sent while ${higher.id} (priority ${higher.priority}) waited`,
          );
        send({
          kind: 'run',
          taskId: run.taskId,
          payload: run.payload,
          ...(run.cleanup ? { cleanup: run.cleanup } : {}),
        });
      }
      if (runs.length === 0) send(message);
    };
    fake.ceilingMiB = settings.rssMiB;
  };
  const started = pool.start();
  const watched = new Set<FakeRuntime>();
  const watchNew = (): void => {
    for (const fake of fakes.all) {
      if (watched.has(fake)) continue;
      watched.add(fake);
      watch(fake);
    }
  };
  // The first workers must come up for the pool to start at all.
  for (let i = 0; i < 50 && fakes.starting.length > 0; i++) {
    watchNew();
    for (const fake of fakes.starting) fake.becomeReady();
    await flush();
  }
  await started;

  for (const c of commands) {
    watchNew();
    if (process.env.MODEL_DEBUG)
      console.log(
        'cmd',
        JSON.stringify(c),
        'fakes',
        JSON.stringify(fakes.all.map((f) => [f.pid, f.state, f.inbox.length])),
      );
    switch (c.t) {
      case 'submit': {
        const submit = (priority: number, onAnswer?: () => void): void => {
          const task = new FakeTask(`t${tasks.length}`, priority, onAnswer);
          tasks.push(task);
          byId.set(task.id, task);
          pool.submit(task);
        };
        // Re-entry: the follow-up is submitted while the pool is still ending the first task.
        submit(c.priority, c.chained ? () => submit(c.priority) : undefined);
        break;
      }
      case 'ready':
        pick(fakes.starting, c.k)?.becomeReady();
        break;
      case 'failStart': {
        const fake = pick(fakes.starting, c.k);
        if (fake && c.own) ownFailures++;
        if (c.own) fake?.failSetup('model: setup threw');
        else fake?.die(null, 'SIGKILL');
        break;
      }
      case 'finish': {
        const busy = fakes.ready.filter((f) => f.inbox.length > 0);
        pick(busy, c.k)?.finish(
          c.ok ? { value: 'ok' } : { error: { code: 'E_TASK_FAILED', message: 'model' } },
          c.leak,
        );
        break;
      }
      case 'crash': {
        const fake = pick(fakes.ready, c.k);
        // A worker exiting with a code soon after its start is a failed start of its own making.
        if (fake && !c.signal) ownFailures++;
        fake?.die(c.signal ? null : 1, c.signal ? 'SIGKILL' : null);
        break;
      }
      case 'admin': {
        const pid = c.one ? pick(fakes.ready, c.k)?.pid : undefined;
        void pool.recycle('admin', pid);
        break;
      }
      case 'abandon': {
        const open = tasks.filter((t) => !t.settled);
        const task = pick(open, c.k);
        if (task) {
          const code = c.timeout ? 'E_TIMEOUT' : 'E_CANCELLED';
          task.finish({ ok: false, error: { code, message: 'model' } });
          pool.abandon(task, { reason: c.timeout ? 'timeout' : 'cancel', error: { code, message: 'model' } });
        }
        break;
      }
    }
    await flush();
    check();
  }

  // Liveness: once every start succeeds and every task is answered as it runs, nothing waits forever
  // (a due worker that is never replaced, a task lost between queue and worker, would).
  for (let i = 0; i < 400 && settings.settleFirst; i++) {
    watchNew();
    const starting = fakes.starting;
    const busy = fakes.ready.filter((f) => f.inbox.length > 0);
    if (starting.length === 0 && busy.length === 0) break;
    for (const fake of starting) fake.becomeReady();
    for (const fake of busy) fake.finish({ value: 'ok' });
    await flush();
  }
  check();
  const stuck = tasks.filter((t) => !t.settled).map((t) => t.id);
  if (settings.settleFirst) assert.deepEqual(stuck, [], 'every task is answered once the workers serve');

  // Shutdown: a start still pending is ended, not waited for; every task is answered once.
  const closed = pool.close();
  let done = false;
  void closed.then(() => (done = true));
  for (let i = 0; i < 200 && !done; i++) await flush();
  assert.ok(done, 'close() resolved');
  if (process.env.MODEL_DEBUG)
    console.log(
      'run',
      JSON.stringify(settings),
      'tasks',
      tasks.length,
      'ok',
      tasks.filter((t) => t.answers[0]?.ok).length,
      'fakes',
      fakes.all.length,
      'maxStarted',
      Math.max(...fakes.all.map((f) => f.started.length)),
    );
  check();
  for (const task of tasks)
    assert.equal(task.answers.length, 1, `${task.id} answered once: ${JSON.stringify(task.answers)}`);
  const alive = fakes.all.filter((f) => f.state !== 'exited');
  assert.deepEqual(
    alive.map((f) => f.pid),
    [],
    'no worker left after shutdown',
  );

  function check(): void {
    assert.deepEqual(problems, []);
    for (const task of tasks)
      assert.ok(task.answers.length <= 1, `${task.id} answered twice: ${JSON.stringify(task.answers)}`);
    if (settings.recycleEveryTasks > 0) {
      for (const fake of fakes.all) {
        assert.ok(
          fake.started.length <= settings.recycleEveryTasks,
          `worker ${fake.pid} ran ${fake.started.length} tasks, recycleEveryTasks ${settings.recycleEveryTasks}`,
        );
      }
    }
    if (settings.rssMiB > 0) {
      for (const fake of fakes.all)
        assert.deepEqual(
          fake.startedOverCeiling,
          [],
          `worker ${fake.pid} started tasks after crossing its ceiling`,
        );
    }
    if (ownFailures === 0) {
      const refused = tasks.filter((t) =>
        t.answers.some((a) => !a.ok && a.error.code === 'E_WORKERS_UNAVAILABLE'),
      );
      assert.deepEqual(
        refused.map((t) => t.id),
        [],
        "no circuit without a failed start of the worker's own making",
      );
    }
    if (prespawnByCount) prespawnHolds();
  }

  /**
   * Guarantee 7, after every step (once the scheduler's reactions to it have run): with pre-spawn,
   * (a) a ready successor never waits while its slot is short: whenever a slot's pre-spawned successor
   *     is ready, the slot's worker serves (ready, busy or cleaning: not yet due); the moment it is due
   *     (draining, for any reason) or gone, the successor has taken the slot;
   * (b) a slot is short for a count-based recycle only for an allowed reason: while its worker is
   *     draining for every-n and not yet being replaced, its successor is still starting, or the worker
   *     waits for a recycle.maxConcurrent turn (to start its successor), or its successor was lost (it
   *     failed or was killed starting, or died once ready: then the slot is refilled as without pre-spawn).
   * (The model's /proc never moves, so 'auto' never sees a busy CPU, and its RAM always covers an early
   * start: no deferral is an exception here.)
   */
  function prespawnHolds(): void {
    const views = pool.slotViews();
    if (process.env.MODEL_DEBUG) console.log('views', JSON.stringify(views));
    for (const view of views) {
      const before = lastViews[view.slot];
      const pid = view.worker?.pid;
      if (pid !== undefined && before?.worker?.pid === pid && before.successor && !view.successor)
        successorLost.add(pid);
      if (view.successor?.state === 'failed' && pid !== undefined) successorLost.add(pid);
      const state = view.worker?.state;
      const serving = state === 'ready' || state === 'busy' || state === 'cleaning';
      const where = `slot ${view.slot} (worker ${pid ?? 'none'}, ${state ?? 'empty'}${view.worker?.due ? `, due: ${view.worker.due}` : ''})`;
      if (view.successor?.state === 'ready')
        assert.ok(serving, `${where}: its successor ${view.successor.pid} is ready but does not serve`);
      if (!serving && view.worker?.due === 'every-n' && !view.replacing) {
        const allowed =
          view.successor?.state === 'starting' || view.waitingTurn || successorLost.has(view.worker.pid);
        assert.ok(
          allowed,
          `${where}: short with no successor starting, no turn awaited, none lost: ${JSON.stringify(view)}`,
        );
      }
    }
    lastViews = views;
  }
}

describe('the scheduler, model-based (fast-check, fake workers)', () => {
  test(`every guarantee holds over ${RUNS} random command sequences`, async () => {
    await fc.assert(
      fc.asyncProperty(knobs, fc.array(command, { minLength: 10, maxLength: 80 }), (s, c) =>
        play(s, c).catch((error: unknown) => {
          if (process.env.MODEL_VERBOSE) console.log('FAIL', JSON.stringify(String(error)));
          throw error;
        }),
      ),
      {
        numRuns: RUNS,
        seed: 20261201,
        ...(process.env.MODEL_PATH ? { path: process.env.MODEL_PATH } : {}),
        timeout: 5_000,
        verbose: Number(process.env.MODEL_VERBOSE ?? 0),
      },
    );
  });
});
