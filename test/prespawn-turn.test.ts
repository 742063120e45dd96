// Guarantee 7 when a recycle.maxConcurrent turn comes late: a worker due by count while another holds
// the only turn must start its successor the moment the turn comes, not once it has finished the tasks
// it still holds (found by the model test, test/scheduler-model.test.ts). The pure rule, then the real
// Scheduler with fake workers, observed through its slot view and the fakes themselves.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { successorWhileDraining } from '../dist/core/prespawn.js';
import { FakeTask as Task, flush } from './fixtures/fake-task.js';
import { fakePool, readyAll } from './fixtures/fake-pool.js';

describe('successorWhileDraining (pure)', () => {
  test('a busy worker due by count or by an admin starts its successor beside it, with pre-spawn on', () => {
    assert.equal(successorWhileDraining('every-n', 2, true), true);
    assert.equal(successorWhileDraining('admin', 1, true), true);
  });
  test('not once it holds nothing (it is replaced), not without pre-spawn, not for other reasons', () => {
    assert.equal(successorWhileDraining('every-n', 0, true), false);
    assert.equal(successorWhileDraining('every-n', 2, false), false);
    for (const reason of ['rss', 'gpu', 'leak', 'max-age', 'crash', 'timeout'] as const)
      assert.equal(successorWhileDraining(reason, 2, true), false, reason);
  });
});

describe('scheduler: a due worker whose maxConcurrent turn comes while it is busy (fake workers)', () => {
  test('its successor starts at the turn, and takes the slot while the due worker still runs its last tasks', async () => {
    const { pool, fakes } = fakePool({
      workers: 2,
      pipelineDepth: 2,
      recycleEveryTasks: 2,
      idleTimeoutMs: 0,
      logLevel: 'silent',
      cleanup: { gpu: false },
      recycle: { maxConcurrent: 1, prespawn: true },
    });
    const started = pool.start();
    await readyAll(fakes);
    await started;
    const [a, b] = fakes.all;
    // Four tasks at once: each worker is sent its two (N = 2), so both are due; a's successor took the
    // only turn, so b waits for it.
    const tasks = Array.from({ length: 4 }, (_, i) => new Task(`t${i}`));
    for (const task of tasks) pool.submit(task);
    await flush();
    assert.equal(a!.inbox.length, 2);
    assert.equal(b!.inbox.length, 2);
    assert.equal(fakes.starting.length, 1, "a's successor starts; b's waits for the turn");
    assert.equal(pool.slotViews()[1]!.waitingTurn, true);
    fakes.starting[0]!.becomeReady();
    await flush();
    // a finishes its two: it is stopped and its turn ends, so b's comes, b still holding both of its own.
    a!.finish({ value: 'ok' });
    a!.finish({ value: 'ok' });
    await flush();
    assert.equal(a!.state, 'exited');
    assert.equal(b!.inbox.length, 2, 'b still holds its two tasks');
    assert.equal(fakes.starting.length, 1, "b's successor starts with b's turn, not once b is spent");
    const successor = fakes.starting[0]!;
    successor.becomeReady();
    await flush();
    const slot = pool.slotViews()[1]!;
    assert.equal(slot.worker?.pid, successor.pid, 'the successor serves the slot');
    assert.equal(b!.state, 'ready', 'beside b, which finishes what it holds');
    b!.finish({ value: 'ok' });
    b!.finish({ value: 'ok' });
    await flush();
    for (const task of tasks) assert.ok(task.answers[0]?.ok, JSON.stringify(task.answers));
    await pool.close();
  });
});
