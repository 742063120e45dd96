// SupervisorClient.fork when its supervisor dies under it: the caller's process must never go down
// with it. Found by review: a send into the dead channel, before its exit was seen, failed with EPIPE
// as an 'error' event nobody listened to, which ended the caller's process.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { SupervisorClient } from 'gpu-supervisor';
import { ECHO_WORKER } from './helpers.js';

test('tasks sent to a supervisor killed a moment ago are answered with an error; the caller lives on', async () => {
  const client = await SupervisorClient.fork({
    worker: ECHO_WORKER,
    workers: 1,
    logLevel: 'silent',
    stdio: 'ignore',
  });
  const { pid } = (await client.stats()).supervisor;
  process.kill(pid, 'SIGKILL');
  // The kernel closes its end now; this process has not yet seen the exit or the disconnect.
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 300);
  const outcomes = await Promise.allSettled(
    Array.from({ length: 5 }, (_, i) => client.run({ op: 'echo', value: i }, { timeoutMs: 10_000 })),
  );
  for (const outcome of outcomes) {
    assert.equal(outcome.status, 'rejected');
    assert.match((outcome as PromiseRejectedResult).reason.code as string, /^E_/);
  }
  await client.close();
});
