// clear-cache { model } and cleanup.everyTasks (issue 15), on a real supervisor process over IPC, with
// the default ONNX worker and real onnxruntime sessions of the shipped `mlp` and `silero-vad` models.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { SupervisorMessage, SupervisorStats } from 'gpu-supervisor';
import { planCacheClear } from '../dist/core/cache-clear.js';
import { SupervisorProcess, sileroInputs, type LogLine } from './helpers.js';

const BASE = ['--socket', 'off', '--history', 'off', '--recycle-every', '0', '--log-level', 'info'];
const MLP = {
  model: 'mlp',
  inputs: { x: { type: 'float32', dims: [1, 512], data: Array.from({ length: 512 }, (_, i) => i / 512) } },
};
const SILERO = { model: 'silero-vad', inputs: sileroInputs(512, 'json') };

type Change = { beforeMiB: number; afterMiB: number; freedMiB: number };
interface CleanupAnswer {
  recycled: number[];
  ram: Change;
  gpu?: Change;
  workers: Array<{ oldPid: number; newPid: number | undefined; ram?: Change }>;
  model?: string;
  mode?: string;
}

/** A client of one forked supervisor: tasks and admin commands over its IPC channel. */
class Ipc {
  private next = 0;
  constructor(readonly sup: SupervisorProcess) {}

  async task(payload: unknown, id = `t${++this.next}`): Promise<{ workerPid: number }> {
    const answer = await this.sup.request({ type: 'task', id, payload }, 60_000);
    assert.ok(answer.type === 'result' && answer.ok, JSON.stringify(answer));
    return answer as { workerPid: number } & SupervisorMessage;
  }

  async admin(command: string, args?: Record<string, unknown>): Promise<SupervisorMessage> {
    return this.sup.request({ type: 'admin', id: `a${++this.next}`, command, args }, 60_000);
  }

  async value<T>(command: string, args?: Record<string, unknown>): Promise<T> {
    const answer = await this.admin(command, args);
    assert.ok(answer.type === 'admin-result' && answer.ok, JSON.stringify(answer));
    return answer.value as T;
  }

  stats(): Promise<SupervisorStats> {
    return this.value<SupervisorStats>('stats');
  }
}

const sorted = (pids: Iterable<number>): number[] => [...pids].sort((a, b) => a - b);

describe('clear-cache { model }: only the workers holding that session', () => {
  let ipc: Ipc;
  before(async () => {
    ipc = new Ipc(SupervisorProcess.fork([...BASE, '--workers', '3', '--pipeline-depth', '1']));
    await ipc.sup.ready();
  });
  after(async () => {
    await ipc.sup.stop();
  });

  const holders = async (model: string): Promise<number[]> =>
    sorted((await ipc.stats()).workers.filter((w) => w.sessions?.includes(model)).map((w) => w.pid));

  test('each worker says which sessions it holds; a task loads one, and stats show it', async () => {
    const idle = await ipc.stats();
    assert.equal(idle.workers.length, 3);
    for (const w of idle.workers) assert.deepEqual(w.sessions, [], 'nothing loaded before the first task');
    // Two at once on idle workers with pipelineDepth 1: two different workers load mlp.
    const ran = await Promise.all([ipc.task(MLP), ipc.task(MLP)]);
    const mlpPids = sorted(new Set(ran.map((r) => r.workerPid)));
    assert.equal(mlpPids.length, 2, 'the two tasks ran on two workers');
    assert.deepEqual(await holders('mlp'), mlpPids);
  });

  test('recycles the mlp holders (their pids change) and no other worker; logged once', async () => {
    const silero = await ipc.task(SILERO);
    const before = await ipc.stats();
    const mlpHolders = sorted(before.workers.filter((w) => w.sessions?.includes('mlp')).map((w) => w.pid));
    const others = sorted(before.workers.map((w) => w.pid).filter((pid) => !mlpHolders.includes(pid)));
    assert.equal(mlpHolders.length, 2);
    assert.equal(others.length, 1);
    const logged = ipc.sup.logsWith('admin cleanup').length;

    const answer = await ipc.value<CleanupAnswer>('clear-cache', { model: 'mlp' });
    assert.deepEqual(sorted(answer.recycled), mlpHolders);
    assert.equal(answer.model, 'mlp');
    assert.equal(answer.mode, 'recycle');
    assert.deepEqual(sorted(answer.workers.map((w) => w.oldPid)), mlpHolders);
    for (const w of answer.workers) assert.ok(w.newPid !== undefined && !mlpHolders.includes(w.newPid));
    assert.ok(answer.ram.beforeMiB > 0 && answer.ram.afterMiB > 0, JSON.stringify(answer.ram));

    const after = sorted((await ipc.stats()).workers.map((w) => w.pid));
    for (const pid of others) assert.ok(after.includes(pid), `worker ${pid} (no mlp session) was kept`);
    for (const pid of mlpHolders) assert.ok(!after.includes(pid), `worker ${pid} (mlp) was replaced`);
    // The silero worker still holds its session (it was not touched); the new ones hold nothing.
    if (others.includes(silero.workerPid)) {
      const kept = (await ipc.stats()).workers.find((w) => w.pid === silero.workerPid);
      assert.deepEqual(kept?.sessions, ['silero-vad']);
    }
    // The line comes on stderr, the answer on the IPC channel: two pipes, no order between them.
    await ipc.sup.waitFor(
      () => (ipc.sup.logsWith('admin cleanup').length > logged ? true : undefined),
      'the admin cleanup line',
    );
    const lines = ipc.sup.logsWith('admin cleanup').slice(logged);
    assert.equal(lines.length, 1, 'one admin cleanup line');
    assert.equal(lines[0]!.command, 'clear-cache mlp');
    assert.equal(lines[0]!.model, 'mlp');
    assert.deepEqual(sorted(lines[0]!.recycled as number[]), mlpHolders);
  });

  test('mode light: the holders release it in place, pids kept, figures reported; the next task reloads it', async () => {
    const ran = await Promise.all([ipc.task(MLP), ipc.task(MLP)]);
    const mlpHolders = await holders('mlp');
    assert.deepEqual(mlpHolders, sorted(new Set(ran.map((r) => r.workerPid))));
    const pidsBefore = sorted((await ipc.stats()).workers.map((w) => w.pid));
    const logged = ipc.sup.logsWith('admin cleanup').length;

    const answer = await ipc.value<CleanupAnswer>('clear-cache', { model: 'mlp', mode: 'light' });
    assert.deepEqual(answer.recycled, []);
    assert.equal(answer.mode, 'light');
    assert.deepEqual(sorted(answer.workers.map((w) => w.oldPid)), mlpHolders);
    for (const w of answer.workers) {
      assert.equal(w.newPid, w.oldPid, 'in place: the same process');
      assert.ok(w.ram && w.ram.beforeMiB > 0 && w.ram.afterMiB > 0, JSON.stringify(w));
      assert.equal(Math.round((w.ram.beforeMiB - w.ram.afterMiB) * 10) / 10, w.ram.freedMiB);
    }
    // With glibc the worker trims its heap after the release: the session's memory leaves its RSS.
    const glibc = (process.report.getReport() as { header?: { glibcVersionRuntime?: string } }).header
      ?.glibcVersionRuntime;
    if (glibc) for (const w of answer.workers) assert.ok(w.ram!.freedMiB > 0, JSON.stringify(w));
    const sum = (pick: (c: Change) => number): number =>
      Math.round(answer.workers.reduce((total, w) => total + pick(w.ram!), 0) * 10) / 10;
    assert.ok(Math.abs(answer.ram.beforeMiB - sum((c) => c.beforeMiB)) <= 0.1, JSON.stringify(answer));

    const stats = await ipc.stats();
    assert.deepEqual(sorted(stats.workers.map((w) => w.pid)), pidsBefore, 'no worker was killed');
    assert.deepEqual(await holders('mlp'), [], 'the mlp sessions are released');
    // The line comes on stderr, the answer on the IPC channel: two pipes, no order between them.
    await ipc.sup.waitFor(
      () => (ipc.sup.logsWith('admin cleanup').length > logged ? true : undefined),
      'the admin cleanup line',
    );
    const lines = ipc.sup.logsWith('admin cleanup').slice(logged);
    assert.equal(lines.length, 1);
    assert.equal(lines[0]!.command, 'clear-cache mlp (light)');
    assert.deepEqual(lines[0]!.recycled, []);
    assert.ok(Array.isArray(lines[0]!.workers) && (lines[0]!.workers as unknown[]).length === 2);

    // The next mlp task on that worker creates the session again: the worker reports it held anew.
    const again = await ipc.task(MLP);
    assert.ok(pidsBefore.includes(again.workerPid));
    assert.deepEqual(await holders('mlp'), [again.workerPid]);
  });

  test('an unknown model is E_MODEL_NOT_FOUND; bad arguments are E_BAD_REQUEST; nothing is touched', async () => {
    const pids = sorted((await ipc.stats()).workers.map((w) => w.pid));
    const expectError = async (args: Record<string, unknown>, code: string): Promise<void> => {
      const answer = await ipc.admin('clear-cache', args);
      assert.ok(answer.type === 'admin-result' && !answer.ok, JSON.stringify(answer));
      assert.equal(answer.error.code, code, answer.error.message);
    };
    await expectError({ model: 'no-such-model' }, 'E_MODEL_NOT_FOUND');
    await expectError({ model: 'no-such-model', mode: 'light' }, 'E_MODEL_NOT_FOUND');
    await expectError({ mode: 'light' }, 'E_BAD_REQUEST');
    await expectError({ model: 'mlp', mode: 'hard' }, 'E_BAD_REQUEST');
    await expectError({ model: 3 }, 'E_BAD_REQUEST');
    assert.deepEqual(sorted((await ipc.stats()).workers.map((w) => w.pid)), pids);
  });

  test('a configured model no worker holds: nothing recycled, answered all the same', async () => {
    await ipc.value('clear-cache', { model: 'silero-vad' }); // whoever holds it is replaced
    const pids = sorted((await ipc.stats()).workers.map((w) => w.pid));
    const answer = await ipc.value<CleanupAnswer>('clear-cache', { model: 'silero-vad' });
    assert.deepEqual(answer.recycled, []);
    assert.deepEqual(answer.workers, []);
    assert.deepEqual(sorted((await ipc.stats()).workers.map((w) => w.pid)), pids);
  });
});

describe('cleanup.everyTasks', () => {
  const cleanups = (sup: SupervisorProcess): LogLine[] => sup.logsWith('cleanup');

  /** `count` tasks at once on one worker; the cleanup lines once `lines` of them came, and a round trip more. */
  async function runTasks(
    args: string[],
    count: number,
    lines: number,
  ): Promise<{ lines: LogLine[]; ids: string[] }> {
    const ipc = new Ipc(SupervisorProcess.fork([...BASE, '--workers', '1', ...args]));
    try {
      await ipc.sup.ready();
      const ids = Array.from({ length: count }, (_, i) => `e${i + 1}`);
      // Sent at once: with pipelineDepth 2 the worker holds two at a time (one sent ahead).
      await Promise.all(ids.map((id) => ipc.task(MLP, id)));
      await ipc.sup.waitFor(
        () => (cleanups(ipc.sup).length >= lines ? true : undefined),
        `${lines} cleanup lines`,
      );
      // The worker runs messages in order: after this answer, any further cleanup would have been said.
      await ipc.task(MLP, 'probe');
      return { lines: cleanups(ipc.sup).filter((l) => l.taskId !== 'probe'), ids };
    } finally {
      await ipc.sup.stop();
    }
  }

  test('3: nine tasks on one worker, sent ahead, give three cleanup lines, each covering three', async () => {
    const { lines, ids } = await runTasks(['--cleanup-every', '3', '--pipeline-depth', '2'], 9, 3);
    assert.deepEqual(
      lines.map((l) => [l.taskId, l.tasks, l.mode]),
      [
        [ids[2], 3, 'light'],
        [ids[5], 3, 'light'],
        [ids[8], 3, 'light'],
      ],
    );
    for (const l of lines) assert.ok(typeof l.rssAfterMiB === 'number' && typeof l.pid === 'number');
  });

  test('default 1: a cleanup line after each task, each covering one', async () => {
    const { lines, ids } = await runTasks(['--pipeline-depth', '2'], 4, 4);
    assert.deepEqual(
      lines.map((l) => [l.taskId, l.tasks]),
      ids.map((id) => [id, 1]),
    );
  });
});

test('planCacheClear: which workers a clear-cache touches', () => {
  const workers = [
    { pid: 1, slot: 0, sessions: ['mlp'] },
    { pid: 2, slot: 1, sessions: ['silero-vad'] },
    { pid: 3, slot: 2, sessions: undefined }, // a module that cannot tell: it may hold any
    { pid: 4, slot: 3, sessions: ['custom'] }, // loaded by a custom module, not in the config
  ];
  const models = ['mlp', 'silero-vad'];
  const pids = (plan: ReturnType<typeof planCacheClear>): number[] | string =>
    plan.kind === 'unknown-model' ? plan.kind : plan.targets.map((t) => t.pid);
  assert.deepEqual(pids(planCacheClear({ mode: 'recycle' }, models, workers)), [1, 2, 3, 4]);
  assert.deepEqual(pids(planCacheClear({ model: 'mlp', mode: 'recycle' }, models, workers)), [1, 3]);
  assert.deepEqual(pids(planCacheClear({ model: 'mlp', mode: 'light', pid: 1 }, models, workers)), [1]);
  assert.deepEqual(pids(planCacheClear({ model: 'mlp', mode: 'light', pid: 2 }, models, workers)), []);
  assert.deepEqual(pids(planCacheClear({ model: 'custom', mode: 'recycle' }, models, workers)), [3, 4]);
  assert.equal(pids(planCacheClear({ model: 'nope', mode: 'recycle' }, models, workers)), 'unknown-model');
  const light = planCacheClear({ model: 'silero-vad', mode: 'light' }, models, workers);
  assert.equal(light.kind, 'light');
});

describe('clear-cache { model, mode: light } in /metrics', () => {
  test('each in-place release counts as a cleanup (mode "release"), with the RSS it gave back', async () => {
    const { Supervisor, createMetrics } = await import('gpu-supervisor');
    const sup = new Supervisor({
      workers: 2,
      recycleEveryTasks: 0,
      logLevel: 'silent',
      history: { path: 'off' },
    });
    await sup.start();
    const metrics = createMetrics(sup);
    try {
      await Promise.all([sup.run(MLP), sup.run(MLP)]);
      const answer = (await sup.admin('clear-cache', { model: 'mlp', mode: 'light' })) as CleanupAnswer;
      const text = await metrics.metrics();
      const sample = (name: string, label: string): number =>
        Number(new RegExp(`^gpu_supervisor_${name}\\{${label}\\} (\\S+)$`, 'm').exec(text)?.[1] ?? NaN);
      assert.equal(sample('cleanups_total', 'mode="release"'), answer.workers.length, text);
      const freed = answer.workers.reduce((total, w) => total + Math.max(0, w.ram!.freedMiB), 0);
      assert.ok(
        Math.abs(sample('freed_ram_mib_total', 'source="release"') - freed) <= 0.1 * answer.workers.length,
        text,
      );
    } finally {
      metrics.close();
      await sup.shutdown();
    }
  });
});
