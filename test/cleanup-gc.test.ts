// Light cleanup's young-generation collection: always with lightGcMinKiB 0, and with the default only
// after tasks that left enough garbage to be worth a scavenge. The worker reports its RSS itself.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { fileURLToPath } from 'node:url';
import { Supervisor, type SupervisorEventMap } from 'gpu-supervisor';

const GC_WORKER = fileURLToPath(new URL('./fixtures/gc-worker.mjs', import.meta.url));
const TASKS = 40;
const CONFIG = { models: {}, executionProviders: ['cpu'], sessionOptions: {}, options: {} };

async function minorGcsAfter(lightGcMinKiB: number, payload: Record<string, unknown>) {
  const supervisor = new Supervisor({
    worker: GC_WORKER,
    workers: 1,
    logLevel: 'silent',
    recycleEveryTasks: 0,
    cleanup: { lightGcMinKiB },
  });
  const cleanups: SupervisorEventMap['cleanup'][] = [];
  supervisor.events.on('cleanup', (e) => cleanups.push(e));
  try {
    await supervisor.start();
    const before = (await supervisor.run({ op: 'minor-gcs' })) as number;
    for (let i = 0; i < TASKS; i++) await supervisor.run(payload);
    const after = (await supervisor.run({ op: 'minor-gcs' })) as number;
    return { minorGcs: after - before, cleanups };
  } finally {
    await supervisor.shutdown();
  }
}

describe('light cleanup collects the young generation when it is worth it', () => {
  test('lightGcMinKiB 0: a minor collection after every task', async () => {
    const { minorGcs } = await minorGcsAfter(0, { op: 'noop' });
    assert.ok(minorGcs >= TASKS, `${minorGcs} minor GCs for ${TASKS} tasks`);
  });

  test('default 1024 KiB: tiny tasks are not followed by a collection each', async () => {
    const { minorGcs, cleanups } = await minorGcsAfter(1024, { op: 'noop' });
    assert.ok(minorGcs < TASKS / 2, `${minorGcs} minor GCs for ${TASKS} no-op tasks`);
    // Every task still gets its cleanup (hook + measurement), with RSS read by the worker itself.
    assert.ok(cleanups.length >= TASKS, `${cleanups.length} cleanup events`);
    for (const e of cleanups) {
      assert.equal(e.mode, 'light');
      assert.ok(e.rssBeforeMiB > 10 && e.rssAfterMiB > 10, JSON.stringify(e));
      assert.equal(e.freedMiB, Math.round((e.rssBeforeMiB - e.rssAfterMiB) * 10) / 10);
    }
  });

  test('the decision: collect after >= lightGcMinKiB of heap growth since the last collection', async () => {
    // In-process, with a counting stand-in for gc(): which cleanups would collect, deterministically.
    const core = await import('../dist/worker/core.js');
    const ready = await core.initWorker(
      {
        kind: 'init',
        modulePath: GC_WORKER,
        config: CONFIG,
        workerId: 0,
        logLevel: 'silent',
        lightGcMinKiB: 1024,
      },
      {},
    );
    assert.equal(ready.kind, 'ready');
    const calls: string[] = [];
    const gc = (options?: { type: string }): void => void calls.push(options?.type ?? 'full');
    const kept: Float64Array[] = [];
    await core.cleanUp(false, gc); // sets the baseline
    calls.length = 0;
    kept.push(new Float64Array(256)); // 2 KiB held: not worth a scavenge
    await core.cleanUp(false, gc);
    assert.deepEqual(calls, []);
    kept.push(new Float64Array(2 * 131072)); // 2 MiB held (external memory counts too)
    await core.cleanUp(false, gc);
    assert.deepEqual(calls, ['minor']);
    await core.cleanUp(false, gc); // nothing new since
    assert.deepEqual(calls, ['minor']);
    await core.cleanUp(true, gc); // forced: always a full collection
    assert.deepEqual(calls, ['minor', 'major']);
    assert.equal(kept.length, 2);
  });
});
