// The worker state machine as a table: what may follow what, and above all what may not (a draining
// worker never goes back to ready or busy, so it can never receive another task).
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import {
  IllegalTransitionError,
  assertTransition,
  canTransition,
  type WorkerState,
} from '../dist/core/life.js';

const STATES: WorkerState[] = ['starting', 'ready', 'busy', 'cleaning', 'draining', 'stopping', 'exited'];

const LEGAL: Record<WorkerState, WorkerState[]> = {
  starting: ['ready', 'stopping', 'exited'],
  ready: ['busy', 'draining', 'stopping', 'exited'],
  busy: ['cleaning', 'ready', 'draining', 'stopping', 'exited'],
  cleaning: ['ready', 'busy', 'draining', 'stopping', 'exited'],
  draining: ['stopping', 'exited'],
  stopping: ['exited'],
  exited: [],
};

describe('worker state machine', () => {
  for (const from of STATES) {
    test(`from ${from}`, () => {
      for (const to of STATES) {
        if (to === from) continue;
        const legal = LEGAL[from].includes(to);
        assert.equal(canTransition(from, to), legal, `${from} -> ${to}`);
        if (legal) assertTransition(from, to);
        else assert.throws(() => assertTransition(from, to), IllegalTransitionError);
      }
    });
  }

  test('a draining worker has no way back to taking tasks', () => {
    for (const to of ['ready', 'busy', 'cleaning'] as const)
      assert.equal(canTransition('draining', to), false);
    assert.throws(() => assertTransition('draining', 'ready'), /illegal worker transition draining -> ready/);
  });
});
