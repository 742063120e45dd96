// The BullMQ consumer's error mapping as one table over every error code, written from the table in
// docs/scale-out.md ("Error codes and retries"), and the failedReason round trip a producer relies on.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { ErrorCode, SupervisorError } from 'gpu-supervisor';
import {
  errorFromFailedReason,
  failureAction,
  failureMessage,
  type FailureAction,
} from '../dist/queue/job-errors.js';

const DOCUMENTED: Record<string, FailureAction> = {
  E_WORKER_CRASHED: 'retry',
  E_TIMEOUT: 'retry',
  E_WORKERS_UNAVAILABLE: 'retry',
  E_DUPLICATE_ID: 'retry',
  E_BAD_REQUEST: 'fail',
  E_MODEL_NOT_FOUND: 'fail',
  E_TASK_FAILED: 'fail',
  E_CANCELLED: 'fail',
  E_UNAUTHORIZED: 'fail',
  E_OUT_OF_MEMORY: 'fail',
  E_SHUTTING_DOWN: 'hand-back',
  E_QUEUE_FULL: 'hand-back',
  E_NOT_RUNNING: 'hand-back',
};

describe('job errors', () => {
  test('the table covers every error code there is (a new code must be placed in it)', () => {
    assert.deepEqual(Object.values(ErrorCode).sort(), Object.keys(DOCUMENTED).sort());
  });

  for (const [code, action] of Object.entries(DOCUMENTED)) {
    test(`${code} -> ${action}`, () => assert.equal(failureAction(code), action));
  }

  test('a code that is not ours fails the job (no retry, no hand-back)', () => {
    for (const code of ['', 'E_NOPE', 'e_timeout', 'TIMEOUT', 'Error'])
      assert.equal(failureAction(code), 'fail', code);
  });

  test('every code survives the trip through failedReason, message and all', () => {
    for (const code of Object.values(ErrorCode)) {
      const message = `worker 12 said: "no" (x: 1)\nsecond line`;
      const reason = failureMessage({ code, message });
      assert.equal(reason, `${code}: ${message}`);
      const error = errorFromFailedReason(reason);
      assert.ok(error instanceof SupervisorError);
      assert.equal(error.code, code);
      assert.equal(error.message, message);
    }
  });

  test("BullMQ's own failures (no code of ours) reach the producer as E_TASK_FAILED with the reason", () => {
    const stalled = errorFromFailedReason('job stalled more than allowable limit');
    assert.equal(stalled.code, 'E_TASK_FAILED');
    assert.equal(stalled.message, 'job stalled more than allowable limit');
    const unknown = errorFromFailedReason('E_NOPE: not a code of ours');
    assert.equal(unknown.code, 'E_TASK_FAILED');
    assert.equal(unknown.message, 'E_NOPE: not a code of ours');
    assert.equal(errorFromFailedReason(undefined).message, 'job failed');
    assert.equal(errorFromFailedReason('').message, 'job failed');
  });
});
