// Budgeted pre-spawn (issue 14 §2) and the 'auto' pre-spawn mode (issue 16): the pure decision, the
// /proc probes it is fed from (against stand-in files), and the real Scheduler driven with fake
// workers (FakeWorkers) on a stand-in /proc, where the order of starts and exits is observed exactly.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { IDLE_CORES_FOR_A_START, prespawnVerdict } from '../dist/core/prespawn.js';
import { CpuIdleProbe, allowedCpus, parseProcStat } from '../dist/probes/cpu-idle.js';
import { MemAvailableReader, memAvailableMiB } from '../dist/probes/host-memory.js';
import type { FakeRuntime, FakeWorkers } from '../dist/pool/runtime/fake-runtime.js';
import { FakeTask as Task, flush } from './fixtures/fake-task.js';
import type { SupervisorEventMap } from '../dist/events.js';
import { fakePool } from './fixtures/fake-pool.js';
import { scratchDir } from './helpers.js';

const meminfo = (availableKiB: number): string =>
  `MemTotal:       16318412 kB\nMemFree:          512000 kB\nMemAvailable:   ${availableKiB} kB\nBuffers:           1024 kB\n`;

/** A /proc/stat of two CPUs whose aggregate line has `busy` user ticks and `idle` idle ticks. */
const procStat = (busy: number, idle: number): string =>
  `cpu  ${busy} 0 0 ${idle} 0 0 0 0 0 0\ncpu0 ${busy / 2} 0 0 ${idle / 2} 0 0 0 0 0 0\n` +
  `cpu1 ${busy / 2} 0 0 ${idle / 2} 0 0 0 0 0 0\nintr 12345\nctxt 678\n`;

describe('prespawnVerdict (pure)', () => {
  const rules = { mode: true as const, marginMiB: 256 };

  test("GPU: free memory must cover the old worker's footprint plus the margin", () => {
    assert.deepEqual(prespawnVerdict({ gpu: { freeMiB: 2000, footprintMiB: 1000 } }, rules), { start: true });
    assert.deepEqual(prespawnVerdict({ gpu: { freeMiB: 1256, footprintMiB: 1000 } }, rules), { start: true });
    assert.deepEqual(prespawnVerdict({ gpu: { freeMiB: 1255, footprintMiB: 1000 } }, rules), {
      start: false,
      reason: 'gpu-budget',
    });
    assert.deepEqual(
      prespawnVerdict({ gpu: { freeMiB: 1255, footprintMiB: 1000 } }, { mode: true, marginMiB: 0 }),
      { start: true },
    );
  });

  test('RAM: MemAvailable must cover its RSS; GPU is judged first', () => {
    assert.deepEqual(prespawnVerdict({ ram: { availableMiB: 99, rssMiB: 100 } }, rules), {
      start: false,
      reason: 'ram-budget',
    });
    assert.deepEqual(prespawnVerdict({ ram: { availableMiB: 100, rssMiB: 100 } }, rules), { start: true });
    assert.deepEqual(
      prespawnVerdict(
        { gpu: { freeMiB: 0, footprintMiB: 10 }, ram: { availableMiB: 0, rssMiB: 100 } },
        rules,
      ),
      { start: false, reason: 'gpu-budget' },
    );
  });

  test('no facts (no GPU, nothing measured): nothing to judge, the start goes ahead', () => {
    assert.deepEqual(prespawnVerdict({}, rules), { start: true });
    assert.deepEqual(prespawnVerdict({}, { mode: 'auto', marginMiB: 256 }), { start: true });
  });

  test("'auto' waits for an idle core; true ignores the CPU; memory still comes first", () => {
    const auto = { mode: 'auto' as const, marginMiB: 256 };
    assert.deepEqual(prespawnVerdict({ idleCores: 0.2 }, auto), { start: false, reason: 'cpu-busy' });
    assert.deepEqual(prespawnVerdict({ idleCores: IDLE_CORES_FOR_A_START }, auto), { start: true });
    assert.deepEqual(prespawnVerdict({ idleCores: 1.7 }, auto), { start: true });
    assert.deepEqual(prespawnVerdict({ idleCores: 0 }, rules), { start: true });
    assert.deepEqual(prespawnVerdict({ idleCores: 0, ram: { availableMiB: 1, rssMiB: 50 } }, auto), {
      start: false,
      reason: 'ram-budget',
    });
  });
});

describe('host probes (stand-in /proc)', () => {
  test('memAvailableMiB reads MemAvailable in MiB; no file or no line: undefined', () => {
    const root = scratchDir('proc-');
    assert.equal(memAvailableMiB(root), undefined, 'no meminfo');
    writeFileSync(join(root, 'meminfo'), meminfo(2_097_152));
    assert.equal(memAvailableMiB(root), 2048);
    writeFileSync(join(root, 'meminfo'), 'MemTotal: 1000 kB\nMemFree: 10 kB\n');
    assert.equal(memAvailableMiB(root), undefined, 'a kernel before 3.14 has no MemAvailable');
    let now = 0;
    const reader = new MemAvailableReader(root, 100, () => now);
    writeFileSync(join(root, 'meminfo'), meminfo(1024));
    assert.equal(reader.miB(), 1);
    writeFileSync(join(root, 'meminfo'), meminfo(2048));
    now = 99;
    assert.equal(reader.miB(), 1, 'within minIntervalMs: the last reading');
    now = 100;
    assert.equal(reader.miB(), 2);
  });

  test('parseProcStat: idle + iowait over all ticks, and the CPU count', () => {
    assert.deepEqual(parseProcStat('cpu  10 1 2 30 4 5 6 7 100 100\ncpu0 x\ncpu1 y\ncpu2 z\n'), {
      idle: 34,
      total: 65,
      cpus: 3,
    });
    assert.equal(parseProcStat('intr 1\n'), undefined);
    // Only the CPUs it may run on: cpu1 all busy, cpu2 all idle.
    const stat = 'cpu  10 0 0 10 0\ncpu0 5 0 0 5 0\ncpu1 5 0 0 0 0\ncpu2 0 0 0 5 0\n';
    assert.deepEqual(parseProcStat(stat, new Set([1])), { idle: 0, total: 5, cpus: 1 });
    assert.deepEqual(parseProcStat(stat, new Set([0, 2])), { idle: 10, total: 15, cpus: 2 });
  });

  test('allowedCpus: Cpus_allowed_list of self/status; the probe counts only those CPUs', () => {
    const root = scratchDir('proc-');
    assert.equal(allowedCpus(root), undefined, 'no self/status');
    mkdirSync(join(root, 'self'));
    writeFileSync(
      join(root, 'self', 'status'),
      'Name:\tnode\nCpus_allowed:\t0b\nCpus_allowed_list:\t0-1,3\n',
    );
    assert.deepEqual([...allowedCpus(root)!], [0, 1, 3]);
    // Four CPUs: 0, 1 and 3 are ours and busy, 2 is idle and not ours.
    const four = (busy: number, idle: number): string =>
      `cpu  ${3 * busy} 0 0 ${idle} 0\ncpu0 ${busy} 0 0 0 0\ncpu1 ${busy} 0 0 0 0\ncpu2 0 0 0 ${idle} 0\ncpu3 ${busy} 0 0 0 0\n`;
    let now = 0;
    const probe = new CpuIdleProbe(root, 100, () => now);
    writeFileSync(join(root, 'stat'), four(100, 100));
    probe.idleCores();
    now = 200;
    writeFileSync(join(root, 'stat'), four(200, 200));
    assert.equal(probe.idleCores(), 0, 'the idle CPU is not one it may use');
  });

  test('CpuIdleProbe: idle cores over intervals of at least minIntervalMs, repeated in between', () => {
    const root = scratchDir('proc-');
    let now = 0;
    const probe = new CpuIdleProbe(root, 100, () => now);
    assert.equal(probe.idleCores(), undefined, 'no /proc/stat');
    writeFileSync(join(root, 'stat'), procStat(1000, 1000));
    assert.equal(probe.idleCores(), undefined, 'one sample is no interval');
    now = 50;
    writeFileSync(join(root, 'stat'), procStat(1100, 1000));
    assert.equal(probe.idleCores(), undefined, 'too short an interval is not measured');
    now = 150;
    // Since the first sample: 300 busy ticks, 100 idle, on 2 CPUs: half a core idle.
    writeFileSync(join(root, 'stat'), procStat(1300, 1100));
    assert.equal(probe.idleCores(), 0.5);
    now = 200;
    writeFileSync(join(root, 'stat'), procStat(1300, 1300));
    assert.equal(probe.idleCores(), 0.5, 'within minIntervalMs: the last figure');
    now = 260;
    assert.equal(probe.idleCores(), 2, 'the whole interval since was idle');
  });
});

/**
 * One worker recycled every 4 tasks, on a stand-in /proc. Each start records which other fake workers
 * were alive at that moment: a successor that starts while the worker it replaces still lives is two
 * residents at once (what a pre-spawn is, and what the budget must prevent when memory is short).
 */
async function recycleOnce(
  prespawn: boolean | 'auto',
  proc: { meminfo: string; stat?: [string, string] },
  adminBusy = false,
): Promise<{ recycle: SupervisorEventMap['recycle']; aliveAtStart: number[][]; fakes: FakeWorkers }> {
  const root = scratchDir('proc-');
  writeFileSync(join(root, 'meminfo'), proc.meminfo);
  if (proc.stat) writeFileSync(join(root, 'stat'), proc.stat[0]);
  const aliveAtStart: number[][] = [];
  const { pool, fakes, events } = fakePool(
    {
      workers: 1,
      pipelineDepth: 1,
      recycleEveryTasks: adminBusy ? 0 : 4,
      logLevel: 'silent',
      cleanup: { gpu: false },
      recycle: { prespawn },
    },
    {
      procRoot: root,
      runtime: (fakes) => () => {
        aliveAtStart.push(fakes.all.filter((f) => f.state !== 'exited').map((f) => f.pid));
        return fakes.start();
      },
    },
  );
  const recycles: Array<SupervisorEventMap['recycle']> = [];
  events.on('recycle', (e) => recycles.push(e));
  const started = pool.start();
  await flush();
  fakes.starting[0]!.becomeReady();
  await started;
  if (proc.stat) {
    // The CPU probe's baseline was taken at start; the next figure needs an interval of >= 100 ms.
    await sleep(150);
    writeFileSync(join(root, 'stat'), proc.stat[1]);
  }
  const first = fakes.all[0]!;
  const tasks = Array.from({ length: 4 }, (_, i) => new Task(`t${i}`));
  for (const task of tasks) pool.submit(task);
  let recycled: Promise<number[]> | undefined;
  for (let i = 0; i < 200 && recycles.length === 0; i++) {
    await flush();
    // After a cleanup has reported its RSS, while it runs its next task.
    if (adminBusy && !recycled && first.started.length >= 2 && first.inbox.length > 0)
      recycled = pool.recycle('admin', first.pid);
    for (const fake of fakes.starting) fake.becomeReady();
    const busy = fakes.ready.find((f) => f.inbox.length > 0);
    // The old worker answers slowly: one task per few turns, so a successor has time to start.
    if (busy && i % 3 === 2) busy.finish({ value: 'ok' });
  }
  await recycled;
  for (let i = 0; i < 50 && tasks.some((t) => !t.settled); i++) {
    for (const fake of fakes.ready) if (fake.inbox.length > 0) fake.finish({ value: 'ok' });
    await flush();
  }
  assert.ok(
    tasks.every((t) => t.answers.length === 1 && t.answers[0]!.ok),
    'every task answered once',
  );
  await pool.close();
  assert.equal(recycles.length, 1, 'one recycle');
  return { recycle: recycles[0]!, aliveAtStart, fakes };
}

const successorOf = (fakes: FakeWorkers): FakeRuntime => fakes.all[1]!;

describe('scheduler: budgeted pre-spawn (fake workers, stand-in /proc)', () => {
  test("MemAvailable below the worker's RSS: deferred (ram-budget), the successor starts after the exit", async () => {
    // FakeRuntime reports 50 MiB RSS; 40 MiB available.
    const { recycle, aliveAtStart, fakes } = await recycleOnce(true, { meminfo: meminfo(40 * 1024) });
    assert.equal(recycle.prespawn, 'deferred');
    assert.equal(recycle.prespawnReason, 'ram-budget');
    const [oldPid, newPid] = [fakes.all[0]!.pid, successorOf(fakes).pid];
    assert.equal(recycle.oldPid, oldPid);
    assert.equal(recycle.newPid, newPid);
    assert.deepEqual(aliveAtStart, [[], []], 'the old worker had exited when its successor started');
  });

  test('with room: pre-spawned as before (both alive at the start), prespawn early', async () => {
    const { recycle, aliveAtStart, fakes } = await recycleOnce(true, { meminfo: meminfo(8 * 1024 * 1024) });
    assert.equal(recycle.prespawn, 'early');
    assert.equal(recycle.prespawnReason, undefined);
    assert.deepEqual(aliveAtStart, [[], [fakes.all[0]!.pid]], 'started beside the worker it replaces');
  });

  test('prespawn false: neither pre-spawned nor said to be deferred', async () => {
    const { recycle, aliveAtStart } = await recycleOnce(false, { meminfo: meminfo(8 * 1024 * 1024) });
    assert.equal(recycle.prespawn, undefined);
    assert.deepEqual(aliveAtStart, [[], []]);
  });

  test("'auto' with every core busy: deferred (cpu-busy)", async () => {
    const { recycle, aliveAtStart } = await recycleOnce('auto', {
      meminfo: meminfo(8 * 1024 * 1024),
      stat: [procStat(1000, 1000), procStat(1400, 1000)],
    });
    assert.equal(recycle.prespawn, 'deferred');
    assert.equal(recycle.prespawnReason, 'cpu-busy');
    assert.deepEqual(aliveAtStart, [[], []]);
  });

  test("'auto' with an idle core: pre-spawned", async () => {
    const { recycle, aliveAtStart, fakes } = await recycleOnce('auto', {
      meminfo: meminfo(8 * 1024 * 1024),
      stat: [procStat(1000, 1000), procStat(1100, 1100)],
    });
    assert.equal(recycle.prespawn, 'early');
    assert.deepEqual(aliveAtStart, [[], [fakes.all[0]!.pid]]);
  });

  test('admin recycle of a busy worker: its successor starts early within the budget', async () => {
    const room = await recycleOnce(true, { meminfo: meminfo(8 * 1024 * 1024) }, true);
    assert.equal(room.recycle.reason, 'admin');
    assert.equal(room.recycle.prespawn, 'early');
    assert.deepEqual(room.aliveAtStart, [[], [room.fakes.all[0]!.pid]]);
    const short = await recycleOnce(true, { meminfo: meminfo(40 * 1024) }, true);
    assert.equal(short.recycle.prespawn, 'deferred');
    assert.equal(short.recycle.prespawnReason, 'ram-budget');
    assert.deepEqual(short.aliveAtStart, [[], []]);
  });
});
