// The SQLite history: real database files in a temp dir, real lock holders, corrupt and unwritable
// files, a filesystem that refuses writes (a file-size limit), and a real supervisor whose
// leaking worker makes the freed MiB known.
import { after, afterEach, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import {
  chmodSync,
  chownSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Supervisor, type SupervisorEventMap } from 'gpu-supervisor';
import {
  HistoryService,
  HistoryStore,
  SCHEMA_VERSION,
  attachHistory,
  buildReport,
  resolveHistoryPath,
  timelineSvg,
  type MemoryEventRow,
  type TaskRow,
} from '../dist/history/index.js';
import { ECHO_WORKER, waitUntil } from './helpers.js';

interface Db {
  prepare(sql: string): { get(...a: unknown[]): unknown; run(...a: unknown[]): unknown };
  pragma(s: string, o?: { simple: boolean }): unknown;
  exec(sql: string): void;
  close(): void;
}
const Database = createRequire(import.meta.url)('better-sqlite3') as new (path: string) => Db;

const dir = mkdtempSync(join(tmpdir(), 'gs-history-'));
after(() => rmSync(dir, { recursive: true, force: true }));
let n = 0;
const dbPath = (): string => join(dir, `h${++n}`, 'history.db');

const open: HistoryStore[] = [];
afterEach(() => {
  for (const s of open.splice(0)) s.close();
});
function storeAt(path: string, options: Partial<Parameters<typeof HistoryStore.open>[0]> = {}) {
  const warnings: Array<{ obj: Record<string, unknown>; msg: string }> = [];
  const infos: string[] = [];
  const log = {
    warn: (obj: object, msg: string) => warnings.push({ obj: obj as Record<string, unknown>, msg }),
    info: (_: object, msg: string) => infos.push(msg),
  };
  const store = HistoryStore.open({ path, log, ...options });
  open.push(store);
  return { store, warnings, infos };
}

const task = (i: number, at = Date.now()): TaskRow => ({
  id: `t${i}`,
  model: i % 2 ? 'mlp' : undefined,
  workerPid: 100 + (i % 3),
  ok: i % 5 !== 0,
  code: i % 5 === 0 ? 'E_TIMEOUT' : undefined,
  queueMs: i / 10,
  runMs: i % 7 === 0 ? undefined : i,
  at,
});
const event = (i: number, at = Date.now()): MemoryEventRow => ({
  at,
  kind: 'cleanup',
  pid: 100,
  newPid: undefined,
  slot: 0,
  mode: 'light',
  reason: undefined,
  detail: undefined,
  rssBeforeMiB: 60 + i,
  rssAfterMiB: 59 + i,
  rssFreedMiB: 1,
  gpuBeforeMiB: undefined,
  gpuAfterMiB: undefined,
  gpuFreedMiB: undefined,
  tasksDone: undefined,
  ms: 2,
});
const count = (path: string, table: string): number => {
  const db = new Database(path);
  try {
    return (db.prepare(`SELECT COUNT(*) AS n FROM ${table}`).get() as { n: number }).n;
  } finally {
    db.close();
  }
};

describe('HistoryStore on a real SQLite file', () => {
  test('round trip: rows come back as written, newest first, after a reopen; WAL and schema version set', () => {
    const path = dbPath();
    const { store } = storeAt(path);
    const tasks = Array.from({ length: 12 }, (_, i) => task(i, 1_000 + i));
    for (const t of tasks) store.addTask(t);
    const events = [
      event(1, 5),
      {
        ...event(2, 6),
        kind: 'recycle' as const,
        newPid: 101,
        reason: 'rss',
        tasksDone: 9,
        gpuFreedMiB: 300,
      },
    ];
    for (const e of events) store.addEvent(e);
    assert.deepEqual(store.recentTasks(5), tasks.slice(-5).reverse());
    store.close();
    const again = storeAt(path).store;
    assert.deepEqual(again.recentTasks(100), [...tasks].reverse());
    assert.deepEqual(again.memoryEvents(), events);
    const db = new Database(path);
    assert.equal(db.pragma('journal_mode', { simple: true }), 'wal');
    assert.equal(db.pragma('user_version', { simple: true }), SCHEMA_VERSION);
    db.close();
  });

  test('batching: 2000 rows land in a few transactions off the hot path; close flushes the rest', async () => {
    const path = dbPath();
    const { store } = storeAt(path, { flushMs: 100 });
    for (let i = 0; i < 2000; i++) store.addTask(task(i));
    assert.equal(store.health().transactions, 0, 'nothing written synchronously by addTask');
    assert.equal(store.health().pending, 2000);
    await waitUntil(() => store.health().pending === 0, 'the timer flushed');
    assert.ok(store.health().transactions <= 2, `${store.health().transactions} transactions`);
    for (let i = 0; i < 777; i++) store.addEvent(event(i));
    store.close();
    assert.equal(count(path, 'tasks'), 2000);
    assert.equal(count(path, 'memory_events'), 777);
  });

  test('retention by rows keeps the newest maxRows per table', () => {
    const path = dbPath();
    const { store } = storeAt(path, { maxRows: 100, retentionEveryMs: 3_600_000 });
    for (let i = 0; i < 250; i++) store.addTask(task(i));
    for (let i = 0; i < 130; i++) store.addEvent(event(i));
    store.flush(); // the first flush also runs retention
    assert.equal(count(path, 'tasks'), 100);
    assert.equal(count(path, 'memory_events'), 100);
    assert.deepEqual(
      store.recentTasks(1000)!.map((t) => t.id),
      Array.from({ length: 100 }, (_, i) => `t${249 - i}`),
    );
    assert.deepEqual(store.applyRetention(), { tasks: 0, events: 0 });
  });

  test('retention by age deletes rows older than maxAgeDays, keeps the rest', () => {
    const path = dbPath();
    const { store } = storeAt(path, { maxAgeDays: 7, retentionEveryMs: 3_600_000 });
    const day = 86_400_000;
    const now = Date.now();
    for (let i = 0; i < 10; i++) store.addTask(task(i, now - (i < 4 ? 10 * day : day)));
    for (let i = 0; i < 6; i++) store.addEvent(event(i, now - (i < 5 ? 8 * day : 0)));
    store.flush();
    assert.equal(count(path, 'tasks'), 6);
    assert.equal(count(path, 'memory_events'), 1);
    for (let i = 10; i < 13; i++) store.addTask(task(i, now - 30 * day));
    store.flush(); // retention ran a moment ago: not again until retentionEveryMs
    assert.equal(count(path, 'tasks'), 9);
    assert.deepEqual(store.applyRetention(), { tasks: 3, events: 0 });
  });

  test('clear deletes everything, buffered rows included, and says how many', () => {
    const { store } = storeAt(dbPath());
    for (let i = 0; i < 30; i++) store.addTask(task(i));
    store.flush();
    for (let i = 0; i < 5; i++) store.addEvent(event(i));
    assert.equal(store.clear(), 35);
    assert.deepEqual(store.recentTasks(), []);
    assert.deepEqual(store.memoryEvents(), []);
    assert.equal(store.clear(), 0);
  });
});

describe('HistoryStore when the disk fails: one warning, rows wait, writes resume', () => {
  test('locked: a second connection holds an EXCLUSIVE lock; nothing is lost once it lets go', async () => {
    const path = dbPath();
    const { store, warnings, infos } = storeAt(path, { flushMs: 20, retryMinMs: 50, retryMaxMs: 200 });
    store.addTask(task(0));
    assert.ok(store.flush());
    const holder = new Database(path);
    holder.exec('BEGIN EXCLUSIVE');
    try {
      for (let i = 1; i <= 50; i++) store.addTask(task(i));
      await waitUntil(() => store.health().failures >= 3, 'several retries');
      assert.equal(store.health().state, 'failing');
      assert.equal(store.health().lastError?.code, 'SQLITE_BUSY');
      assert.equal(warnings.length, 1, 'one warning for the whole outage');
      assert.match(warnings[0]!.msg, /tasks keep flowing/);
    } finally {
      holder.exec('COMMIT');
      holder.close();
    }
    await waitUntil(() => store.health().pending === 0, 'the retry wrote the buffer', 15_000);
    assert.equal(store.health().state, 'open');
    assert.ok(infos.includes('history database writable again'));
    assert.equal(count(path, 'tasks'), 51);
  });

  test('the database file deleted under it: one warning, a new file, and the later rows are in it', () => {
    const path = dbPath();
    const { store, warnings } = storeAt(path);
    for (let i = 0; i < 5; i++) store.addTask(task(i));
    assert.equal(store.flush(), true);
    for (const suffix of ['', '-wal', '-shm']) rmSync(path + suffix, { force: true });
    for (let i = 5; i < 10; i++) store.addTask(task(i));
    assert.equal(store.flush(), true);
    store.close();
    assert.ok(existsSync(path), 'a new database file');
    const { store: reopened } = storeAt(path);
    assert.deepEqual(
      reopened
        .recentTasks(50)!
        .map((t) => t.id)
        .sort(),
      ['t5', 't6', 't7', 't8', 't9'],
      'the rows written after the delete were kept',
    );
    assert.equal(warnings.filter((w) => /removed or replaced/.test(w.msg)).length, 1);
  });

  test('a full buffer drops the oldest rows and counts them, with one warning', () => {
    const path = dbPath();
    const { store, warnings } = storeAt(path, { maxBuffer: 100, retryMinMs: 60_000 });
    const holder = new Database(path);
    holder.exec('BEGIN EXCLUSIVE');
    try {
      for (let i = 0; i < 250; i++) store.addTask(task(i));
      store.flush();
    } finally {
      holder.exec('COMMIT');
      holder.close();
    }
    const { dropped, pending } = store.health();
    assert.equal(dropped + pending, 250);
    assert.ok(dropped >= 150 && pending <= 100, `dropped ${dropped}, pending ${pending}`);
    assert.equal(warnings.filter((w) => /buffer full/.test(w.msg)).length, 1);
    assert.ok(store.flush());
    assert.equal(store.recentTasks(1)![0]!.id, 't249', 'the newest rows were kept');
  });

  test('corrupt file: SQLITE_NOTADB, one warning, reads say unavailable, the file is left alone', () => {
    const path = dbPath();
    mkdirSync(join(path, '..'), { recursive: true });
    const garbage = Buffer.alloc(16_384, 0x5a);
    writeFileSync(path, garbage);
    const { store, warnings } = storeAt(path, { retryMinMs: 60_000 });
    for (let i = 0; i < 10; i++) store.addTask(task(i));
    assert.equal(store.flush(), false);
    assert.equal(store.recentTasks(), undefined);
    assert.equal(store.health().lastError?.code, 'SQLITE_NOTADB');
    assert.equal(store.health().pending, 10);
    assert.equal(warnings.length, 1);
    assert.throws(() => store.clear(), /unavailable \(SQLITE_NOTADB\)/);
  });

  test('unwritable path (its directory is a regular file): degrades, never throws', () => {
    const file = join(dir, `plain-file-${++n}`);
    writeFileSync(file, 'not a directory');
    const { store, warnings } = storeAt(join(file, 'history.db'), { retryMinMs: 60_000 });
    store.addTask(task(1));
    assert.equal(store.flush(), false);
    assert.equal(store.health().state, 'failing');
    assert.equal(warnings.length, 1);
  });

  // A read-only file without privileges: the writer runs in a child process as an ordinary user (as
  // root, the test drops to uid/gid 65534 for the child, which root may do without any capability, and
  // hands it a directory of its own), so chmod 0444 really refuses its writes; chmod 0644 lets them in.
  test('read-only file (chmod 0444, as a non-root writer): SQLITE_READONLY, then writes resume', () => {
    const path = dbPath();
    const folder = join(path, '..');
    mkdirSync(folder, { recursive: true });
    const asRoot = process.getuid?.() === 0;
    if (asRoot) {
      chmodSync(dir, 0o711); // the writer may pass through the temp dir (mkdtemp makes it 0700)
      chownSync(folder, 65534, 65534);
    }
    const writer = `
      import { chmodSync, closeSync, openSync } from 'node:fs';
      import { HistoryStore } from ${JSON.stringify(new URL('../dist/history/index.js', import.meta.url).href)};
      const path = process.argv[1];
      const warnings = [];
      const log = { warn: (_, msg) => warnings.push(msg), info: () => undefined };
      HistoryStore.open({ path, log }).close(); // creates the database
      chmodSync(path, 0o444);
      let refused = false;
      try { closeSync(openSync(path, 'r+')); } catch { refused = true; }
      const store = HistoryStore.open({ path, log, retryMinMs: 50, retryMaxMs: 100 });
      for (let i = 0; i < 20; i++)
        store.addTask({ id: 't' + i, workerPid: 1, ok: true, queueMs: 1, runMs: 1, at: Date.now() });
      const flushed = store.flush();
      const failing = store.health();
      // The operator gives the permission back to the file and to the -shm that SQLite created in its
      // image while it was read-only (README: chmod u+w history.db*).
      chmodSync(path, 0o644);
      chmodSync(path + '-shm', 0o644);
      const deadline = Date.now() + 10000;
      while (store.health().pending > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 25));
      const resumed = store.health();
      store.close();
      console.log(JSON.stringify({ uid: process.getuid(), refused, flushed, failing, resumed, warnings }));
    `;
    const out = execFileSync(process.execPath, ['--input-type=module', '-e', writer, path], {
      encoding: 'utf8',
      ...(asRoot ? { uid: 65534, gid: 65534 } : {}),
    });
    const result = JSON.parse(out) as {
      uid: number;
      refused: boolean;
      flushed: boolean;
      failing: { state: string; pending: number; lastError?: { code: string } };
      resumed: { state: string; pending: number };
      warnings: string[];
    };
    assert.notEqual(result.uid, 0, 'the writer is not root (root writes through 0444)');
    assert.equal(result.refused, true, 'the file really refuses writes');
    assert.equal(result.flushed, false);
    assert.equal(result.failing.lastError?.code, 'SQLITE_READONLY');
    assert.equal(result.failing.state, 'failing');
    assert.equal(result.failing.pending, 20, 'rows kept in memory');
    assert.equal(
      result.warnings.length,
      1,
      `one warning for the outage: ${JSON.stringify(result.warnings.slice(0, 3))}`,
    );
    assert.equal(result.resumed.pending, 0, 'writes resumed once the file is writable again');
    assert.equal(count(path, 'tasks'), 20);
  });

  // A filesystem that refuses to grow the file, without privileges: the writer runs in a child process
  // under a file-size limit (RLIMIT_FSIZE; Node ignores SIGXFSZ, so the write fails with EFBIG, which
  // SQLite reports as SQLITE_IOERR_WRITE; a full disk, ENOSPC, would be SQLITE_FULL: same handling).
  test('the disk refuses writes (a 256 KiB file-size limit): one warning, rows kept in memory', () => {
    const path = dbPath();
    mkdirSync(join(path, '..'), { recursive: true });
    const writer = `
      import { HistoryStore } from ${JSON.stringify(new URL('../dist/history/index.js', import.meta.url).href)};
      const warnings = [];
      const log = { warn: (_, msg) => warnings.push(msg), info: () => undefined };
      const store = HistoryStore.open({ path: process.argv[1], log, retryMinMs: 60000, maxBuffer: 1e6 });
      let written = true;
      let rows = 0;
      for (let i = 0; written && i < 100000; i += 500) {
        for (let k = 0; k < 500; k++)
          store.addTask({ id: 'x'.repeat(300) + (i + k), workerPid: 1, ok: true, queueMs: 1, runMs: 1, at: Date.now() });
        rows += 500;
        written = store.flush();
      }
      console.log(JSON.stringify({ written, rows, health: store.health(), warnings }));
    `;
    const out = execFileSync(
      'sh',
      ['-c', 'ulimit -f 512 && exec "$0" --input-type=module -e "$1" "$2"', process.execPath, writer, path],
      { encoding: 'utf8' },
    );
    const result = JSON.parse(out) as {
      written: boolean;
      rows: number;
      health: { state: string; pending: number; written: number; lastError?: { code: string } };
      warnings: string[];
    };
    assert.equal(result.written, false, 'the file hit its size limit');
    assert.equal(result.health.lastError?.code, 'SQLITE_IOERR_WRITE');
    assert.equal(result.health.state, 'failing');
    assert.ok(result.health.written > 0, 'rows were written until the limit');
    assert.equal(result.health.written + result.health.pending, result.rows, 'no row lost: the rest wait');
    assert.equal(
      result.warnings.length,
      1,
      `one warning for the outage: ${JSON.stringify(result.warnings.slice(0, 3))}`,
    );
    assert.ok(statSync(path).size <= 512 * 512, 'the limit held');
  });
});

describe('a real supervisor feeding the history', () => {
  const sups: Supervisor[] = [];
  afterEach(async () => {
    for (const s of sups.splice(0)) await s.shutdown();
  });
  function supervisor(options: ConstructorParameters<typeof Supervisor>[0]): Supervisor {
    const sup = new Supervisor({ worker: ECHO_WORKER, logLevel: 'silent', recycleEveryTasks: 0, ...options });
    sups.push(sup);
    return sup;
  }

  let baseline = 0;
  before(async () => {
    const probe = supervisor({ workers: 1 });
    probe.events.once('worker-ready', (e) => (baseline = e.rssMiB!));
    await probe.start();
    await probe.run({ op: 'echo', value: 1 });
    await probe.shutdown();
    assert.ok(baseline > 0);
  });

  test('report numbers match a run whose leak is known (4 MiB/task, RSS ceiling => recycles)', async () => {
    const ceiling = Math.round(baseline + 40);
    const sup = supervisor({ workers: 1, recycle: { rssMiB: ceiling } });
    const { store } = storeAt(dbPath());
    const detach = attachHistory(sup.events, store);
    const recycles: SupervisorEventMap['recycle'][] = [];
    sup.events.on('recycle', (e) => recycles.push(e));
    await sup.start();
    for (let i = 0; i < 45; i++) await sup.run({ op: 'leak', mib: 4 });
    await waitUntil(() => store.recentTasks(1)?.length === 1, 'rows written');
    await sup.shutdown();
    detach();
    store.flush();

    const report = buildReport(store)!;
    assert.ok(recycles.length >= 3, `${recycles.length} recycles`);
    assert.equal(report.tasks.total, 45);
    assert.equal(report.tasks.ok, 45);
    assert.deepEqual(report.overall.restartsByReason, { rss: recycles.length });
    const leak = report.overall.leakMiBPerTask!;
    // 4 MiB kept per task, plus what the allocator and V8's heap add on ~10 points per worker.
    assert.ok(leak > 3.5 && leak < 5, `leak rate ${leak} MiB/task`);
    const freed = recycles.map((r) => r.rssFreedMiB!);
    assert.equal(report.overall.recycleFreedMiB.count, recycles.length);
    assert.ok(Math.abs(report.overall.recycleFreedMiB.total - freed.reduce((a, b) => a + b, 0)) < 0.05);
    for (const f of freed)
      assert.ok(f > 40 - 10 && f < 40 + 14, `freed ${f} MiB for a ceiling 40 over baseline`);
    const between = recycles.map((r) => r.tasksDone).sort((a, b) => a - b);
    // The median of an even count is the mean of the two middle values.
    const mid = between.length / 2;
    const expectedMedian = Number.isInteger(mid)
      ? (between[mid - 1]! + between[mid]!) / 2
      : between[Math.floor(mid)];
    assert.equal(report.overall.tasksBetweenRecycles.median, expectedMedian);
    assert.ok(
      between.every((t) => t >= 8 && t <= 12),
      between.join(','),
    );
    // One slot, every worker in it; the projection grows with the tasks, the measurement does not.
    assert.equal(report.slots.length, 1);
    assert.equal(report.slots[0]!.pids.length, recycles.length + 1);
    const measured = report.overall.rssPeakWithRecyclingMiB!;
    assert.ok(measured <= ceiling + 4 + 2, `peak ${measured}, ceiling ${ceiling}`);
    const projected = report.overall.rssPeakWithoutRecyclingMiB.value!;
    assert.ok(
      projected > baseline + 45 * 3.5 && projected < baseline + 45 * 4.5 + 10,
      `projected ${projected}`,
    );
    const recycledWorkers = report.workers.filter((w) => w.recycled);
    assert.equal(recycledWorkers.length, recycles.length);
    for (const w of recycledWorkers) assert.ok(w.rss.peakMiB! > ceiling - 1);

    const svg = timelineSvg(store.memoryEvents()!);
    const rssLines = [...svg.matchAll(/<polyline class="rss" data-pid="(\d+)"/g)].map((m) => Number(m[1]));
    assert.deepEqual(rssLines.sort(), report.workers.map((w) => w.pid).sort());
    assert.equal([...svg.matchAll(/class="recycle-mark" data-reason="rss"/g)].length, recycles.length);
    writeFileSync(join(dir, 'timeline.svg'), svg);
  });

  test('a locked database does not slow or fail tasks; rows arrive after the lock goes', async () => {
    const path = dbPath();
    const { store, warnings } = storeAt(path, { flushMs: 20, retryMinMs: 50, retryMaxMs: 100 });
    store.addTask(task(0));
    store.flush();
    const sup = supervisor({ workers: 2 });
    attachHistory(sup.events, store);
    await sup.start();
    const holder = new Database(path);
    holder.exec('BEGIN EXCLUSIVE');
    try {
      const values = await Promise.all(
        Array.from({ length: 200 }, (_, i) => sup.run({ op: 'echo', value: i })),
      );
      assert.deepEqual(
        values,
        Array.from({ length: 200 }, (_, i) => i),
      );
      await waitUntil(() => store.health().failures > 0, 'a write was refused');
      assert.equal(warnings.length, 1);
    } finally {
      holder.exec('COMMIT');
      holder.close();
    }
    await waitUntil(() => store.health().pending === 0, 'buffer written');
    assert.equal(count(path, 'tasks'), 201);
  });

  test('HistoryService: open, history, report with svg, clear, close', async () => {
    const path = dbPath();
    const sup = supervisor({ workers: 1, recycleEveryTasks: 5 });
    const warnings: string[] = [];
    const log = { warn: (_: object, m: string) => warnings.push(m), info: () => undefined };
    const service = HistoryService.open(
      { path, maxAgeDays: 30, maxRows: 1000, flushMs: 50 },
      log,
      sup.events,
    )!;
    try {
      await sup.start();
      for (let i = 0; i < 12; i++) await sup.run({ op: 'echo', value: i });
      await waitUntil(() => service.recentTasks(100)?.length === 12, 'tasks recorded');
      assert.deepEqual(
        service.recentTasks(2)!.map((t) => t.ok),
        [true, true],
      );
      await waitUntil(
        () => (service.report().report.overall.restartsByReason['every-n'] ?? 0) >= 2,
        'recycles',
      );
      const { report, text, svg } = service.report({ svg: true });
      assert.equal(report.tasks.total, 12);
      assert.equal(report.overall.tasksBetweenRecycles.median, 5);
      assert.match(text, /RSS peak without recycling \(PROJECTED\)/);
      assert.match(text, /every-n 2/);
      assert.match(svg!, /^<svg /);
      assert.equal(service.report().svg, undefined);
      const rows = report.tasks.total + (service.store.memoryEvents()?.length ?? 0);
      assert.equal(service.clear(), rows);
      assert.deepEqual(warnings, []);
    } finally {
      service.close();
    }
    assert.equal(
      HistoryService.open({ path: 'off', maxAgeDays: 0, maxRows: 0, flushMs: 1 }, log, sup.events),
      undefined,
    );
  });

  test('resolveHistoryPath: off, auto under XDG_STATE_HOME or ~/.local/state, explicit paths', () => {
    assert.equal(resolveHistoryPath('off'), undefined);
    assert.equal(
      resolveHistoryPath('auto', { XDG_STATE_HOME: '/x/state' }),
      '/x/state/gpu-supervisor/history.db',
    );
    assert.match(resolveHistoryPath('auto', {})!, /\/\.local\/state\/gpu-supervisor\/history\.db$/);
    assert.equal(resolveHistoryPath('/a/b.db'), '/a/b.db');
    assert.equal(resolveHistoryPath('rel/h.db'), join(process.cwd(), 'rel/h.db'));
  });

  // Its cost in throughput is the bench's business (bench/, not asserted here); what a test can hold is
  // that a busy pool loses no row: 3000 tasks from 16 concurrent callers, every one a row, once.
  test('a busy pool with history attached: every answer right, every task one row', async () => {
    const path = dbPath();
    const { store, warnings } = storeAt(path, { flushMs: 50 });
    const sup = supervisor({ workers: 2 });
    attachHistory(sup.events, store);
    await sup.start();
    const total = 3000;
    let next = 0;
    const values: number[] = [];
    await Promise.all(
      Array.from({ length: 16 }, async () => {
        while (next < total) {
          const i = next++;
          const outcome = await sup.submit(`busy-${i}`, { op: 'echo', value: i });
          assert.ok(outcome.ok && outcome.value === i, JSON.stringify(outcome));
          values.push(i);
        }
      }),
    );
    assert.equal(values.length, total);
    await sup.shutdown();
    await waitUntil(() => store.health().pending === 0, 'every row written');
    assert.equal(count(path, 'tasks'), total);
    const db = new Database(path);
    try {
      const row = db
        .prepare("SELECT COUNT(DISTINCT id) AS ids, SUM(ok) AS ok FROM tasks WHERE id LIKE 'busy-%'")
        .get() as { ids: number; ok: number };
      assert.deepEqual(row, { ids: total, ok: total });
    } finally {
      db.close();
    }
    assert.deepEqual(warnings, []);
  });
});
