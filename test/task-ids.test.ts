// How each client's task ids are held (forkTaskId, socketTaskId in src/transport/session.ts): one-to-one per client, and no two
// clients ever hold the same id, whatever ids they send.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { BULLMQ_ID_PREFIX, forkTaskId, socketTaskId } from '../dist/transport/session.js';

// Ids built to hit the prefixes that matter, beside arbitrary strings.
const clientId = fc.oneof(
  fc.string({ minLength: 1 }),
  fc
    .tuple(
      fc.constantFrom('s1:', 's12:', 's:', 'bullmq:', 'bullmq', 'f:', 'f:s1:', 'f:f:', 'S1:', ''),
      fc.string(),
    )
    .map(([prefix, rest]) => prefix + rest)
    .filter((id) => id.length > 0),
);

test('a fork id is held as sent unless it could pass for another client’s', () => {
  for (const id of ['abc', 's1', 's', 'sx:abc', 'c123-4', 'bull:1', 'F:x']) assert.equal(forkTaskId(id), id);
  assert.equal(forkTaskId('s1:abc'), 'f:s1:abc');
  assert.equal(forkTaskId('bullmq:3:1'), 'f:bullmq:3:1');
  assert.equal(forkTaskId('f:abc'), 'f:f:abc');
});

test('fork ids map one-to-one, and never onto a socket or BullMQ id', () => {
  fc.assert(
    fc.property(clientId, clientId, fc.nat(1000), (a, b, connection) => {
      if (a !== b) assert.notEqual(forkTaskId(a), forkTaskId(b));
      assert.notEqual(forkTaskId(a), socketTaskId(connection, b));
      assert.ok(!forkTaskId(a).startsWith(BULLMQ_ID_PREFIX));
    }),
    { seed: 20261201, numRuns: 5000 },
  );
});

test('two socket connections never hold the same id', () => {
  fc.assert(
    fc.property(fc.nat(1000), fc.nat(1000), clientId, clientId, (m, n, a, b) => {
      if (m !== n || a !== b) assert.notEqual(socketTaskId(m, a), socketTaskId(n, b));
    }),
    { seed: 20261201, numRuns: 5000 },
  );
});
