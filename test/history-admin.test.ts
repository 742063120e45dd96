// The history store wired into the supervisor: where 'auto' applies, and the admin commands
// `history`, `report` and `clear-history` over the real fork channel of a real daemon.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { SupervisorError } from 'gpu-supervisor';
import { Supervisor, SupervisorClient } from 'gpu-supervisor';
import { ECHO_WORKER } from './helpers.js';

type TaskRow = { id: string; ok: boolean; code: string | undefined; workerPid: number | undefined };

let dir: string;
before(() => {
  dir = mkdtempSync(join(tmpdir(), 'gpu-supervisor-history-admin-'));
});
after(() => rmSync(dir, { recursive: true, force: true }));

describe('history store in the supervisor', () => {
  test("library mode: 'auto' keeps no database, admin history falls back to the ring (newest first)", async () => {
    const supervisor = new Supervisor({
      worker: ECHO_WORKER,
      workers: 1,
      logLevel: 'silent',
      history: { path: 'auto' },
      // Where 'auto' would put it, were it on: nothing may appear there.
    });
    try {
      await supervisor.start();
      await supervisor.submit('first', { op: 'echo', value: 1 });
      await supervisor.submit('second', { op: 'echo', value: 2 });
      const { tasks } = (await supervisor.admin('history', {})) as { tasks: TaskRow[] };
      assert.deepEqual(
        tasks.map((t) => t.id),
        ['second', 'first'],
      );
      await assert.rejects(supervisor.admin('report', {}), (error: SupervisorError) => {
        assert.equal(error.code, 'E_BAD_REQUEST');
        assert.match(error.message, /history\.path/);
        return true;
      });
    } finally {
      await supervisor.shutdown();
    }
  });

  test('daemon with --history FILE: history, report (+svg) and clear-history answer from the database', async () => {
    const path = join(dir, 'sub', 'history.db');
    const client = await SupervisorClient.fork({
      worker: ECHO_WORKER,
      workers: 2,
      logLevel: 'silent',
      stdio: 'ignore',
      args: ['--history', path, '--recycle-every', '5'],
    });
    try {
      for (let i = 0; i < 12; i++) await client.run({ op: 'echo', value: i });
      await assert.rejects(client.run({ op: 'throw', message: 'nope' }), { code: 'E_TASK_FAILED' });
      assert.ok(existsSync(path), 'the database file exists');
      // Writes are batched (flushMs): poll until the rows are there.
      let tasks: TaskRow[] = [];
      for (let tries = 0; tries < 100 && tasks.length < 13; tries++) {
        tasks = ((await client.admin('history', { last: 50 })) as { tasks: TaskRow[] }).tasks;
        if (tasks.length < 13) await new Promise((r) => setTimeout(r, 100));
      }
      assert.equal(tasks.length, 13);
      assert.equal(tasks[0]!.ok, false, 'newest first: the failed task');
      assert.equal(tasks[0]!.code, 'E_TASK_FAILED');
      const limited = (await client.admin('history', { last: 3 })) as { tasks: TaskRow[] };
      assert.equal(limited.tasks.length, 3);
      await assert.rejects(client.admin('history', { last: 0 }), { code: 'E_BAD_REQUEST' });
      // One answer reads at most 10,000 rows: a query blocks the supervisor while it runs.
      await assert.rejects(client.admin('history', { last: 10_001 }), {
        code: 'E_BAD_REQUEST',
        message: /1 to 10000/,
      });
      assert.equal(
        ((await client.admin('history', { last: 10_000 })) as { tasks: TaskRow[] }).tasks.length,
        13,
      );

      const answer = (await client.admin('report', { svg: true })) as {
        report: unknown;
        text: string;
        svg: string;
      };
      assert.equal(typeof answer.text, 'string');
      assert.match(answer.svg, /^<svg[\s\S]*<\/svg>\s*$/);
      const plain = (await client.admin('report', {})) as { svg?: string };
      assert.equal(plain.svg, undefined);

      const cleared = (await client.admin('clear-history')) as { removed: number; recycled: number[] };
      assert.ok(cleared.removed >= 13, `removed ${cleared.removed} rows`);
      assert.equal(cleared.recycled.length, 2, 'every worker recycled (aggressive cleanup)');
      const after = (await client.admin('history', {})) as { tasks: TaskRow[] };
      assert.equal(after.tasks.length, 0);
    } finally {
      await client.close();
    }
  });
});
