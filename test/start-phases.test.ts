// Where a worker's start goes (issue 16): a real worker process reports each phase of its start, the
// pool joins them with its own measure, and the same figures reach the worker-ready event, the
// `worker ready` log line, stats and the history database.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { openDatabase } from '../dist/history/sqlite.js';
import { Supervisor, type SupervisorEventMap } from 'gpu-supervisor';
import { SupervisorProcess, scratchDir } from './helpers.js';

type Phases = SupervisorEventMap['worker-ready']['phases'];
const TOP_LEVEL = ['spawnMs', 'bootMs', 'runtimeMs', 'initMs', 'moduleMs', 'setupMs', 'readyMs'] as const;

function assertConsistent(phases: Phases, startMs: number): void {
  for (const key of TOP_LEVEL) {
    const value = phases[key];
    assert.equal(typeof value, 'number', `${key} is reported`);
    assert.ok(value! >= 0, `${key} = ${value} is not negative`);
  }
  // The worker measures its part on its own clock, the parent the whole: the parts fit in the whole.
  const measured = TOP_LEVEL.filter((k) => k !== 'readyMs').reduce((sum, k) => sum + phases[k]!, 0);
  assert.ok(
    measured <= phases.totalMs,
    `phases sum to ${measured} ms, more than the ${phases.totalMs} ms measured`,
  );
  assert.ok(
    Math.abs(phases.totalMs - startMs) <= 1,
    `totalMs ${phases.totalMs} is the event's startMs ${startMs}`,
  );
  // Binding, then the sessions (created side by side, so they overlap), happen inside setup.
  const longest = Math.max(0, ...(phases.sessions ?? []).map((s) => s.ms));
  const inSetup = (phases.bindingMs ?? 0) + longest;
  assert.ok(inSetup <= phases.setupMs!, `binding + sessions ${inSetup} ms fit in setup ${phases.setupMs} ms`);
}

describe('start phases, process backend', () => {
  let sup: Supervisor;
  let dir: string;
  const ready: SupervisorEventMap['worker-ready'][] = [];
  before(async () => {
    dir = scratchDir('gpu-sup-phases-');
    sup = new Supervisor({
      workers: 2,
      logLevel: 'silent',
      recycleEveryTasks: 0,
      sessionCache: { dir: 'off' },
      workerOptions: { preload: ['mlp', 'silero-vad'] },
      history: { path: join(dir, 'history.db'), flushMs: 20 },
    });
    sup.events.on('worker-ready', (e) => ready.push(e));
    await sup.start();
  });
  after(() => sup.shutdown());

  test('every phase is reported, none negative, and they add up to no more than fork to ready', () => {
    assert.equal(ready.length, 2);
    for (const { phases, startMs } of ready) {
      assertConsistent(phases, startMs);
      assert.ok(phases.bindingMs! > 0, 'the onnxruntime-node binding load is measured');
      assert.deepEqual(
        phases.sessions!.map((s) => s.model).sort(),
        ['mlp', 'silero-vad'],
        'each preloaded session is reported',
      );
      assert.ok(phases.sessions!.every((s) => s.ms > 0 && s.cache === 'off'));
      assert.ok(phases.bootMs! > 0 && phases.setupMs! > 0);
      // The worker's CPU to ready: Node's boot and the sessions at least cost some.
      assert.ok(phases.cpuMs! > 0, `cpuMs ${phases.cpuMs}`);
    }
  });

  test('stats carry the last start of each slot; history stores it', async () => {
    const stats = await sup.stats();
    for (const worker of stats.workers) {
      const event = ready.find((e) => e.pid === worker.pid);
      assert.ok(event, `worker ${worker.pid} reported ready`);
      assert.deepEqual(worker.start, event.phases);
    }
    // A recycle replaces the slot's start with the new worker's.
    const old = stats.workers[0]!;
    await sup.admin('recycle', { pid: old.pid });
    const after = (await sup.stats()).workers.find((w) => w.slot === old.slot)!;
    assert.notEqual(after.pid, old.pid);
    assert.deepEqual(after.start, ready.find((e) => e.pid === after.pid)!.phases);
    await new Promise((resolve) => setTimeout(resolve, 200)); // history.flushMs
    const db = openDatabase(join(dir, 'history.db'), { readonly: true });
    try {
      const rows = db
        .prepare(
          `SELECT pid, start_phases, start_total_ms FROM memory_events WHERE kind = 'start' ORDER BY seq`,
        )
        .all() as Array<{ pid: number; start_phases: string; start_total_ms: number }>;
      assert.equal(rows.length, ready.length);
      for (const row of rows) {
        const event = ready.find((e) => e.pid === row.pid)!;
        assert.deepEqual(JSON.parse(row.start_phases), event.phases);
        assert.equal(row.start_total_ms, event.phases.totalMs);
      }
    } finally {
      db.close();
    }
  });
});

test('the `worker ready` log line carries the phases', async () => {
  const sup = SupervisorProcess.fork(['--workers', '1', '--session-cache', 'off']);
  try {
    await sup.ready();
    const line = await sup.waitFor(() => sup.logs.find((l) => l.msg === 'worker ready'), 'worker ready');
    const phases = line.phases as Phases;
    assertConsistent(phases, line.startMs as number);
  } finally {
    await sup.stop();
  }
});

test('thread backend: the parts a thread has are reported, and fit in the whole', async () => {
  const sup = new Supervisor({
    workers: 1,
    backend: 'thread',
    logLevel: 'silent',
    sessionCache: { dir: 'off' },
    workerOptions: { preload: ['mlp'] },
  });
  const ready: SupervisorEventMap['worker-ready'][] = [];
  sup.events.on('worker-ready', (e) => ready.push(e));
  await sup.start();
  try {
    const { phases } = ready[0]!;
    assert.equal(phases.bootMs, undefined, 'a thread has no process boot of its own');
    assert.equal(phases.cpuMs, undefined, "a thread's CPU is the supervisor's");
    assert.ok(phases.moduleMs! >= 0 && phases.setupMs! > 0 && phases.sessions![0]!.model === 'mlp');
    const measured = phases.spawnMs + phases.moduleMs! + phases.setupMs!;
    assert.ok(measured <= phases.totalMs);
  } finally {
    await sup.shutdown();
  }
});
