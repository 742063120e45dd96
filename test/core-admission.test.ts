// core/admission.ts and core/task-queue.ts as tables and properties: the pure parts the scheduler asks.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { Admission, killedFromOutside } from '../dist/core/admission.js';
import { TaskQueue } from '../dist/core/task-queue.js';
import { step, type Life } from '../dist/core/life.js';

const options = { slots: 2, maxConcurrent: 2, minUptimeMs: 1000, maxFailedStarts: 2 };

describe('Admission', () => {
  test('never more than maxConcurrent turns at once; the line is served in order', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 3 }),
        fc.array(fc.record({ release: fc.boolean(), key: fc.nat(5) }), { maxLength: 60 }),
        (maxConcurrent, ops) => {
          const admission = new Admission<number>({ ...options, maxConcurrent });
          const line: number[] = [];
          const holding = new Set<number>();
          for (const op of ops) {
            if (op.release) {
              const granted = admission.release(op.key);
              const wasLine = line.indexOf(op.key);
              if (wasLine >= 0) line.splice(wasLine, 1);
              if (holding.delete(op.key)) {
                const expected = line.splice(0, Math.min(line.length, maxConcurrent - holding.size));
                assert.deepEqual(granted, expected, 'granted in the order they asked');
                for (const key of expected) holding.add(key);
              } else assert.deepEqual(granted, []);
            } else {
              const now = admission.request(op.key);
              if (holding.has(op.key)) assert.equal(now, true);
              else if (holding.size < maxConcurrent) {
                assert.equal(now, true);
                holding.add(op.key);
              } else {
                assert.equal(now, false);
                if (!line.includes(op.key)) line.push(op.key);
              }
            }
            assert.ok(admission.underway <= maxConcurrent);
            assert.equal(admission.underway, holding.size);
          }
        },
      ),
      { seed: 20261201, numRuns: 500 },
    );
  });

  test("only failures of the worker's own making open the circuit, and not while a worker serves", () => {
    const admission = new Admission<number>(options);
    const inUse = (): boolean => true;
    for (let i = 0; i < 10; i++) for (const slot of [0, 1]) admission.killedYoung(slot, 'SIGKILL');
    assert.equal(admission.unavailable(inUse, false), undefined, 'kills from outside: no circuit');
    assert.ok(admission.backoffMs(0) > 0 && admission.backoffMs(0) <= 1000, 'they back off, at most 1 s');
    for (const slot of [0, 1]) for (let i = 0; i < 2; i++) admission.startFailed(slot, 'setup threw');
    assert.equal(admission.unavailable(inUse, true), undefined, 'a worker still serves: tasks wait for it');
    assert.match(
      admission.unavailable(inUse, false) ?? '',
      /keep failing to start \(2 in a row\); last error: setup threw/,
    );
    admission.healthy(0);
    assert.equal(admission.unavailable(inUse, false), undefined, 'one healthy slot closes it');
  });

  test('which signals come from outside', () => {
    for (const signal of ['SIGKILL', 'SIGTERM', 'SIGINT', 'SIGHUP'])
      assert.equal(killedFromOutside(signal), true, signal);
    for (const signal of ['SIGSEGV', 'SIGABRT', 'SIGBUS', null])
      assert.equal(killedFromOutside(signal), false, String(signal));
  });
});

describe('TaskQueue', () => {
  test('higher priority first, arrival order within a priority, a requeued task keeps its place', () => {
    fc.assert(
      fc.property(
        fc.array(fc.integer({ min: -2, max: 2 }), { maxLength: 50 }),
        fc.nat(49),
        (priorities, back) => {
          const queue = new TaskQueue<{ priority: number; seq: number; n: number }>();
          const tasks = priorities.map((priority, n) => ({ priority, seq: 0, n }));
          for (const task of tasks) queue.push(task);
          const first = queue.shift();
          if (first && back % 2 === 0) queue.push(first, true);
          const out = queue.drain();
          const expected = [...tasks]
            .filter((t) => back % 2 === 0 || t !== first)
            .sort((a, b) => b.priority - a.priority || a.n - b.n);
          assert.deepEqual(
            out.map((t) => t.n),
            expected.map((t) => t.n),
          );
        },
      ),
      { seed: 20261201, numRuns: 300 },
    );
  });

  test('a withdrawn task is never handed out, and the size counts only waiting ones', () => {
    const queue = new TaskQueue<{ priority: number; seq: number; n: number }>();
    const a = { priority: 0, seq: 0, n: 1 };
    const b = { priority: 1, seq: 0, n: 2 };
    queue.push(a);
    queue.push(b);
    assert.equal(queue.remove(b), true);
    assert.equal(queue.size, 1);
    assert.equal(queue.shift(), a);
    assert.equal(queue.shift(), undefined);
  });
});

describe('life.step', () => {
  test('a draining worker holds what it held and can never be sent a task', () => {
    let life: Life = { state: 'ready', since: 0 };
    life = step(life, { kind: 'sent' });
    life = step(life, { kind: 'drain', cause: { reason: 'every-n', detail: 'n' } });
    assert.deepEqual(life, {
      state: 'draining',
      held: 1,
      cleaning: 0,
      cause: { reason: 'every-n', detail: 'n' },
    });
    assert.throws(() => step(life, { kind: 'sent' }), /illegal worker transition draining -> busy/);
    life = step(life, { kind: 'answered', cleanup: true, at: 1 });
    assert.deepEqual(
      [life.state, 'held' in life && life.held, 'cleaning' in life && life.cleaning],
      ['draining', 0, 1],
    );
  });
});
