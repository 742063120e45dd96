// The pure parts, as tables: client message validation, JSON-safe values, error shapes and the task
// history ring (the recycle policy and the worker state machine have files of their own).
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { ErrorCode, SupervisorError } from 'gpu-supervisor';
import { decodeValue, encodeValue } from '../dist/queue/job-codec.js';
import { checkBearer } from '../dist/metrics/http-admin.js';
import { containsBinary, toJsonSafe, validateClientMessage } from '../dist/transport/session.js';
import { isErrorCode, workerErrorShape } from '../dist/protocol/errors.js';
import { ADMIN_COMMANDS } from '../dist/protocol/messages.js';
import { RecentTasks as TaskHistory, type TaskRecord } from '../dist/service/recent-tasks.js';
import { ownRssReader } from '../dist/probes/own-rss.js';

describe('validateClientMessage', () => {
  test('an unknown type is kept short: it is logged and may be megabytes long', () => {
    const result = validateClientMessage({ type: 'x'.repeat(1_000_000), id: 'a' });
    assert.equal(result.ok, false);
    assert.ok(!result.ok && result.kind !== undefined && result.kind.length <= 64, 'kind is cut');
    assert.ok(!result.ok && result.message.length < 300, 'the message is cut too');
  });

  const valid: Array<[string, unknown, unknown]> = [
    [
      'task',
      { type: 'task', id: 't1', payload: { model: 'mlp' } },
      { type: 'task', id: 't1', payload: { model: 'mlp' } },
    ],
    [
      'task with timeoutMs and priority',
      { type: 'task', id: 't2', payload: 1, timeoutMs: 1500, priority: -3 },
      { type: 'task', id: 't2', payload: 1, timeoutMs: 1500, priority: -3 },
    ],
    [
      'task with fractional timeoutMs',
      { type: 'task', id: 't3', payload: null, timeoutMs: 0.5 },
      { type: 'task', id: 't3', payload: null, timeoutMs: 0.5 },
    ],
    [
      'task with priority 0',
      { type: 'task', id: 't4', payload: 'x', priority: 0 },
      { type: 'task', id: 't4', payload: 'x', priority: 0 },
    ],
    [
      'task whose payload is present but undefined',
      { type: 'task', id: 't5', payload: undefined },
      { type: 'task', id: 't5', payload: undefined },
    ],
    [
      'task: unknown extra fields are dropped',
      { type: 'task', id: 't6', payload: 2, extra: true },
      { type: 'task', id: 't6', payload: 2 },
    ],
    ['cancel', { type: 'cancel', id: 'c1' }, { type: 'cancel', id: 'c1' }],
    [
      'cancel: extra fields are dropped',
      { type: 'cancel', id: 'c2', payload: 1 },
      { type: 'cancel', id: 'c2' },
    ],
    [
      'admin without args',
      { type: 'admin', id: 'a1', command: 'stats' },
      { type: 'admin', id: 'a1', command: 'stats' },
    ],
    [
      'admin with args',
      { type: 'admin', id: 'a2', command: 'recycle', args: { force: true } },
      { type: 'admin', id: 'a2', command: 'recycle', args: { force: true } },
    ],
    [
      'admin with null-prototype args',
      {
        type: 'admin',
        id: 'a3',
        command: 'clear-cache',
        args: Object.assign(Object.create(null) as object, { a: 1 }),
      },
      {
        type: 'admin',
        id: 'a3',
        command: 'clear-cache',
        args: Object.assign(Object.create(null) as object, { a: 1 }),
      },
    ],
    [
      'id of 256 characters',
      { type: 'cancel', id: 'x'.repeat(256) },
      { type: 'cancel', id: 'x'.repeat(256) },
    ],
    [
      'null-prototype message',
      Object.assign(Object.create(null) as object, { type: 'cancel', id: 'np' }),
      { type: 'cancel', id: 'np' },
    ],
  ];
  for (const [name, raw, expected] of valid) {
    test(`accepts ${name}`, () => {
      const result = validateClientMessage(raw);
      assert.ok(result.ok, JSON.stringify(result));
      assert.deepEqual(result.message, expected);
    });
  }

  test('accepts every admin command', () => {
    assert.deepEqual([...ADMIN_COMMANDS].sort(), [
      'clear-cache',
      'clear-history',
      'history',
      'recycle',
      'report',
      'shutdown',
      'stats',
    ]);
    for (const command of ADMIN_COMMANDS) {
      const result = validateClientMessage({ type: 'admin', id: `a-${command}`, command });
      assert.ok(result.ok, command);
    }
  });

  class Custom {
    type = 'task';
    id = 'k';
    payload = 1;
  }

  // [name, raw message, expected id echoed back, expected kind, pattern the message must match]
  const invalid: Array<[string, unknown, string | undefined, string | undefined, RegExp]> = [
    ['undefined', undefined, undefined, undefined, /must be an object/],
    ['null', null, undefined, undefined, /must be an object/],
    ['a string', 'task', undefined, undefined, /must be an object/],
    ['a number', 42, undefined, undefined, /must be an object/],
    ['an array', [{ type: 'task', id: 'x', payload: 1 }], undefined, undefined, /must be an object/],
    ['a Map', new Map([['type', 'task']]), undefined, undefined, /must be an object/],
    ['a class instance', new Custom(), undefined, undefined, /must be an object/],
    ['unknown type', { type: 'launch', id: 'u1' }, 'u1', 'launch', /unknown message type "launch"/],
    [
      'unknown type, bad id',
      { type: 'launch', id: '' },
      undefined,
      'launch',
      /unknown message type "launch"/,
    ],
    ['missing type', { id: 'u2' }, 'u2', undefined, /unknown message type/],
    ['non-string type', { type: 7, id: 'u3' }, 'u3', undefined, /unknown message type 7/],
    [
      'result type from a client',
      { type: 'result', id: 'u4' },
      'u4',
      'result',
      /expected "task", "admin" or "cancel"/,
    ],
    ['missing id', { type: 'task', payload: 1 }, undefined, 'task', /"id" must be a non-empty string/],
    ['empty id', { type: 'task', id: '', payload: 1 }, undefined, 'task', /"id" must be a non-empty string/],
    ['numeric id', { type: 'cancel', id: 5 }, undefined, 'cancel', /"id" must be a non-empty string/],
    [
      'overlong id',
      { type: 'admin', id: 'x'.repeat(257), command: 'stats' },
      undefined,
      'admin',
      /at most 256/,
    ],
    ['task without payload', { type: 'task', id: 'p1' }, 'p1', 'task', /needs a "payload"/],
    [
      'timeoutMs 0',
      { type: 'task', id: 'to0', payload: 1, timeoutMs: 0 },
      'to0',
      'task',
      /"timeoutMs" must be a positive number/,
    ],
    ['timeoutMs -1', { type: 'task', id: 'to1', payload: 1, timeoutMs: -1 }, 'to1', 'task', /"timeoutMs"/],
    ['timeoutMs NaN', { type: 'task', id: 'to2', payload: 1, timeoutMs: NaN }, 'to2', 'task', /"timeoutMs"/],
    [
      'timeoutMs Infinity',
      { type: 'task', id: 'to3', payload: 1, timeoutMs: Infinity },
      'to3',
      'task',
      /"timeoutMs"/,
    ],
    ["timeoutMs '5'", { type: 'task', id: 'to4', payload: 1, timeoutMs: '5' }, 'to4', 'task', /"timeoutMs"/],
    [
      'timeoutMs null',
      { type: 'task', id: 'to5', payload: 1, timeoutMs: null },
      'to5',
      'task',
      /"timeoutMs"/,
    ],
    [
      'priority 1.5',
      { type: 'task', id: 'pr1', payload: 1, priority: 1.5 },
      'pr1',
      'task',
      /"priority" must be an integer/,
    ],
    ['priority NaN', { type: 'task', id: 'pr2', payload: 1, priority: NaN }, 'pr2', 'task', /"priority"/],
    [
      'priority Infinity',
      { type: 'task', id: 'pr3', payload: 1, priority: Infinity },
      'pr3',
      'task',
      /"priority"/,
    ],
    ["priority '1'", { type: 'task', id: 'pr4', payload: 1, priority: '1' }, 'pr4', 'task', /"priority"/],
    [
      'unknown admin command',
      { type: 'admin', id: 'ad1', command: 'reboot' },
      'ad1',
      'admin',
      /unknown admin command "reboot"/,
    ],
    ['missing admin command', { type: 'admin', id: 'ad2' }, 'ad2', 'admin', /unknown admin command/],
    [
      'inherited admin command name',
      { type: 'admin', id: 'ad3', command: 'toString' },
      'ad3',
      'admin',
      /"toString"/,
    ],
    [
      'admin args an array',
      { type: 'admin', id: 'ar1', command: 'stats', args: [1] },
      'ar1',
      'admin',
      /"args" must be an object/,
    ],
    [
      'admin args null',
      { type: 'admin', id: 'ar2', command: 'stats', args: null },
      'ar2',
      'admin',
      /"args" must be an object/,
    ],
    [
      'admin args a string',
      { type: 'admin', id: 'ar3', command: 'stats', args: 'x' },
      'ar3',
      'admin',
      /"args"/,
    ],
    [
      'admin args a Map',
      { type: 'admin', id: 'ar4', command: 'stats', args: new Map() },
      'ar4',
      'admin',
      /"args"/,
    ],
  ];
  for (const [name, raw, id, kind, pattern] of invalid) {
    test(`refuses ${name}`, () => {
      const result = validateClientMessage(raw);
      assert.equal(result.ok, false);
      assert.ok(!result.ok);
      assert.equal(result.code, ErrorCode.BAD_REQUEST);
      assert.equal(result.code, 'E_BAD_REQUEST');
      assert.equal(result.id, id, 'id echoed back only when valid');
      assert.equal(result.kind, kind);
      assert.match(result.message, pattern);
    });
  }

  test('unknown admin command message lists the valid ones', () => {
    const result = validateClientMessage({ type: 'admin', id: 'l', command: 'nope' });
    assert.ok(!result.ok);
    for (const command of ADMIN_COMMANDS) assert.ok(result.message.includes(command), command);
  });

  test('a frozen message is accepted and not modified', () => {
    const frozen = Object.freeze({ type: 'task', id: 'f', payload: Object.freeze([1]), priority: 2 });
    assert.deepEqual(validateClientMessage(frozen), {
      ok: true,
      message: { type: 'task', id: 'f', payload: [1], priority: 2 },
    });
  });
});

describe('toJsonSafe / containsBinary', () => {
  test('typed arrays nested in objects and arrays become number arrays that survive JSON', () => {
    const value = {
      f32: new Float32Array([1.5, -2, 0.25]),
      nested: { i64: new BigInt64Array([1n, -2n, 3n]), list: [new Uint8Array([0, 255]), 'x', 3] },
      deep: [[{ u16: new Uint16Array([7]) }]],
      big: 42n,
    };
    const safe = toJsonSafe(value);
    const expected = {
      f32: [1.5, -2, 0.25],
      nested: { i64: [1, -2, 3], list: [[0, 255], 'x', 3] },
      deep: [[{ u16: [7] }]],
      big: 42,
    };
    assert.deepEqual(safe, expected);
    assert.deepEqual(JSON.parse(JSON.stringify(safe)), expected);
    assert.equal(containsBinary(safe), false);
    assert.equal(containsBinary(value), true);
    assert.throws(() => JSON.stringify(value), /BigInt/);
  });

  test('a Buffer and a DataView become their bytes (the view only)', () => {
    const bytes = new Uint8Array([1, 2, 3, 4]);
    assert.deepEqual(toJsonSafe(Buffer.from([9, 8])), [9, 8]);
    assert.deepEqual(toJsonSafe(new DataView(bytes.buffer, 1, 2)), [2, 3]);
    assert.deepEqual(toJsonSafe(bytes.subarray(2)), [3, 4]);
  });

  test('the input is not modified', () => {
    const f32 = new Float32Array([1, 2]);
    const value = { f32, list: [f32] };
    toJsonSafe(value);
    assert.equal(value.f32, f32);
    assert.equal(value.list[0], f32);
  });

  const plain: Array<[string, unknown]> = [
    ['a number', 3.5],
    ['a string', 'hello'],
    ['true', true],
    ['null', null],
    ['undefined', undefined],
    ['an empty object', {}],
    ['an empty array', []],
    ['a nested plain value', { a: [1, 'two', { b: null, c: [true] }], d: { e: -0.5 } }],
  ];
  for (const [name, value] of plain) {
    test(`${name} passes through unchanged`, () => {
      assert.deepEqual(toJsonSafe(value), value);
      assert.equal(containsBinary(value), false);
    });
  }

  test('Map, Set and Date are returned as they are', () => {
    const map = new Map([[1, 2]]);
    const set = new Set([1]);
    const date = new Date(0);
    const out = toJsonSafe({ map, set, date }) as Record<string, unknown>;
    assert.equal(out.map, map);
    assert.equal(out.set, set);
    assert.equal(out.date, date);
  });

  const binary: Array<[string, unknown, boolean]> = [
    ['a Float32Array', new Float32Array(1), true],
    ['an ArrayBuffer', new ArrayBuffer(1), true],
    ['a DataView', new DataView(new ArrayBuffer(1)), true],
    ['a typed array in an array', [1, [new Int8Array(1)]], true],
    ['a typed array in an object', { a: { b: new Float64Array(1) } }, true],
    ['a bigint (not binary)', { n: 1n }, false],
    ['a number array', [1, 2, 3], false],
    ['a string', 'Float32Array', false],
    ['null', null, false],
  ];
  for (const [name, value, expected] of binary) {
    test(`containsBinary: ${name} -> ${expected}`, () => {
      assert.equal(containsBinary(value), expected);
    });
  }

  test('containsBinary looks 8 levels deep, no further', () => {
    const nest = (depth: number): unknown => {
      let value: unknown = new Float32Array(1);
      for (let i = 0; i < depth; i++) value = { v: value };
      return value;
    };
    assert.equal(containsBinary(nest(8)), true);
    assert.equal(containsBinary(nest(9)), false);
  });

  test('an ArrayBuffer becomes its bytes in toJsonSafe', () => {
    const buffer = new Uint8Array([1, 2, 3]).buffer;
    assert.equal(containsBinary({ buffer }), true);
    assert.deepEqual(toJsonSafe({ buffer }), { buffer: [1, 2, 3] });
  });
});

describe('workerErrorShape / SupervisorError.fromShape', () => {
  const withCode = (message: string, code: unknown) => Object.assign(new Error(message), { code });

  const shapes: Array<[string, unknown, { code: string; message: string }]> = [
    [
      'E_BAD_REQUEST from a worker passes',
      withCode('bad input', 'E_BAD_REQUEST'),
      { code: 'E_BAD_REQUEST', message: 'bad input' },
    ],
    [
      'E_MODEL_NOT_FOUND from a worker passes',
      withCode('no model', 'E_MODEL_NOT_FOUND'),
      { code: 'E_MODEL_NOT_FOUND', message: 'no model' },
    ],
    [
      'E_TIMEOUT is not the worker’s to raise',
      withCode('late', 'E_TIMEOUT'),
      { code: 'E_TASK_FAILED', message: 'late' },
    ],
    [
      'E_WORKER_CRASHED is not the worker’s to raise',
      withCode('x', 'E_WORKER_CRASHED'),
      { code: 'E_TASK_FAILED', message: 'x' },
    ],
    [
      'a Node errno code',
      withCode('ENOENT: no such file', 'ENOENT'),
      { code: 'E_TASK_FAILED', message: 'ENOENT: no such file' },
    ],
    ['a numeric code', withCode('num', 400), { code: 'E_TASK_FAILED', message: 'num' }],
    ['a plain Error', new Error('boom'), { code: 'E_TASK_FAILED', message: 'boom' }],
    [
      'an Error without a message uses its name',
      new RangeError(),
      { code: 'E_TASK_FAILED', message: 'RangeError' },
    ],
    ['a thrown string', 'just a string', { code: 'E_TASK_FAILED', message: 'just a string' }],
    ['a thrown number', 42, { code: 'E_TASK_FAILED', message: '42' }],
    ['a thrown undefined', undefined, { code: 'E_TASK_FAILED', message: 'undefined' }],
    ['a thrown null', null, { code: 'E_TASK_FAILED', message: 'null' }],
    ['a thrown symbol', Symbol('sym'), { code: 'E_TASK_FAILED', message: 'Symbol(sym)' }],
    [
      'an error-like object is not an Error',
      { code: 'E_BAD_REQUEST', message: 'fake' },
      { code: 'E_TASK_FAILED', message: '[object Object]' },
    ],
  ];
  for (const [name, thrown, expected] of shapes) {
    test(`workerErrorShape: ${name}`, () => {
      assert.deepEqual(workerErrorShape(thrown), expected);
    });
  }

  test('a thrown null-prototype object is reported, not rethrown', () => {
    // In src/worker/runtime.ts this happens inside the catch of run(): an unhandled rejection that kills
    // the worker, so the caller sees E_WORKER_CRASHED instead of E_TASK_FAILED.
    assert.deepEqual(workerErrorShape(Object.create(null)), {
      code: 'E_TASK_FAILED',
      message: '[object Object]',
    });
  });

  for (const code of Object.values(ErrorCode)) {
    test(`fromShape keeps the known code ${code}`, () => {
      const error = SupervisorError.fromShape({ code, message: `m-${code}` });
      assert.ok(error instanceof SupervisorError);
      assert.ok(error instanceof Error);
      assert.equal(error.code, code);
      assert.equal(error.message, `m-${code}`);
      assert.equal(error.name, 'SupervisorError');
      assert.deepEqual(error.toJSON(), { code, message: `m-${code}` });
      assert.equal(isErrorCode(code), true);
    });
  }

  for (const code of ['E_WHATEVER', 'ENOENT', '', 'e_timeout', 'TIMEOUT']) {
    test(`fromShape maps the unknown code ${JSON.stringify(code)} to E_TASK_FAILED`, () => {
      const error = SupervisorError.fromShape({ code, message: 'kept' });
      assert.equal(error.code, ErrorCode.TASK_FAILED);
      assert.equal(error.message, 'kept');
      assert.equal(isErrorCode(code), false);
    });
  }

  test('a worker error round-trips through the wire shape', () => {
    const shape = workerErrorShape(withCode('no such model "x"', 'E_MODEL_NOT_FOUND'));
    const error = SupervisorError.fromShape(JSON.parse(JSON.stringify(shape)) as typeof shape);
    assert.equal(error.code, ErrorCode.MODEL_NOT_FOUND);
    assert.equal(JSON.stringify(error), JSON.stringify(shape));
  });

  test('error codes are the public names', () => {
    assert.deepEqual(Object.values(ErrorCode).sort(), [
      'E_BAD_REQUEST',
      'E_CANCELLED',
      'E_DUPLICATE_ID',
      'E_MODEL_NOT_FOUND',
      'E_NOT_RUNNING',
      'E_OUT_OF_MEMORY',
      'E_QUEUE_FULL',
      'E_SHUTTING_DOWN',
      'E_TASK_FAILED',
      'E_TIMEOUT',
      'E_UNAUTHORIZED',
      'E_WORKERS_UNAVAILABLE',
      'E_WORKER_CRASHED',
    ]);
  });
});

describe('TaskHistory', () => {
  const record = (id: string): TaskRecord => ({
    id,
    model: 'mlp',
    workerPid: 1,
    ok: true,
    code: undefined,
    queueMs: 0,
    runMs: 1,
    at: Number(id.replace(/\D/g, '')) || 0,
  });
  const ids = (records: TaskRecord[]) => records.map((r) => r.id);
  const fill = (history: TaskHistory, n: number) => {
    for (let i = 1; i <= n; i++) history.add(record(`r${i}`));
  };

  // [capacity, records added, expected ids of list()]
  const rings: Array<[number, number, string[]]> = [
    [3, 0, []],
    [3, 1, ['r1']],
    [3, 3, ['r1', 'r2', 'r3']],
    [3, 4, ['r2', 'r3', 'r4']],
    [3, 7, ['r5', 'r6', 'r7']],
    [1, 5, ['r5']],
    [5, 12, ['r8', 'r9', 'r10', 'r11', 'r12']],
    [0, 4, []],
  ];
  for (const [capacity, added, expected] of rings) {
    test(`capacity ${capacity}, ${added} added -> [${expected.join(', ')}]`, () => {
      const history = new TaskHistory(capacity);
      fill(history, added);
      assert.equal(history.size, expected.length);
      assert.equal(history.capacity, capacity);
      assert.deepEqual(ids(history.list()), expected);
    });
  }

  // [limit, expected ids] for a ring of capacity 4 holding r3..r6
  const limits: Array<[number, string[]]> = [
    [0, []],
    [1, ['r6']],
    [2, ['r5', 'r6']],
    [4, ['r3', 'r4', 'r5', 'r6']],
    [100, ['r3', 'r4', 'r5', 'r6']],
    [-1, []],
  ];
  for (const [limit, expected] of limits) {
    test(`list(${limit}) gives the newest, oldest first`, () => {
      const history = new TaskHistory(4);
      fill(history, 6);
      assert.deepEqual(ids(history.list(limit)), expected);
    });
  }

  test('list returns a copy, not the ring', () => {
    const history = new TaskHistory(2);
    fill(history, 2);
    history.list().length = 0;
    assert.equal(history.list().length, 2);
  });

  test('clear() returns the removed count and the ring starts over', () => {
    const history = new TaskHistory(3);
    fill(history, 5);
    assert.equal(history.clear(), 3);
    assert.equal(history.size, 0);
    assert.deepEqual(history.list(), []);
    assert.equal(history.clear(), 0);
    history.add(record('n1'));
    history.add(record('n2'));
    assert.deepEqual(ids(history.list()), ['n1', 'n2']);
    assert.equal(history.clear(), 2);
  });

  test('capacity 0 keeps nothing', () => {
    const history = new TaskHistory(0);
    fill(history, 3);
    assert.equal(history.size, 0);
    assert.deepEqual(history.list(), []);
    assert.deepEqual(history.list(5), []);
    assert.equal(history.clear(), 0);
  });

  test('records are kept by reference, in insertion order', () => {
    const history = new TaskHistory(2);
    const a = record('a1');
    const b = record('b2');
    history.add(a);
    history.add(b);
    const [first, second] = history.list();
    assert.equal(first, a);
    assert.equal(second, b);
  });
});

describe('ownRssReader', () => {
  test("reads this process's RSS as Node does, and follows memory as it is touched", () => {
    const rss = ownRssReader();
    const mine = rss();
    const node = process.memoryUsage.rss();
    assert.ok(Math.abs(mine - node) < 8 * 1024 * 1024, `${mine} vs ${node}`);
    // 64 MiB written to (so resident), outside the V8 heap as a model arena would be.
    const block = Buffer.alloc(64 * 1024 * 1024, 1);
    const grown = rss();
    assert.ok(grown - mine > 60 * 1024 * 1024, `grew by ${(grown - mine) / 1048576} MiB`);
    assert.ok(Math.abs(grown - process.memoryUsage.rss()) < 8 * 1024 * 1024);
    assert.equal(block[block.length - 1], 1);
  });
});

describe('job codec (values stored in Redis)', () => {
  test('a circular or too deeply nested value is E_BAD_REQUEST, never a stack overflow', () => {
    const loop: Record<string, unknown> = { a: 1 };
    loop.self = loop;
    assert.throws(() => encodeValue(loop), { code: 'E_BAD_REQUEST', message: /circular/ });
    let deep: unknown = 0;
    for (let i = 0; i < 5000; i++) deep = [deep];
    assert.throws(() => encodeValue(deep), { code: 'E_BAD_REQUEST', message: /nests deeper/ });
    // Shared (not circular) references are fine: each is stored where it appears.
    const shared = { x: 1 };
    assert.deepEqual(decodeValue(JSON.parse(JSON.stringify(encodeValue({ a: shared, b: shared })))), {
      a: { x: 1 },
      b: { x: 1 },
    });
  });

  test('a "__proto__" key survives both ways; a Date is stored as JSON stores it', () => {
    const withProto = JSON.parse('{"__proto__": {"polluted": true}, "ok": 1}') as Record<string, unknown>;
    const back = decodeValue(JSON.parse(JSON.stringify(encodeValue(withProto)))) as Record<string, unknown>;
    assert.deepEqual(Object.keys(back), ['__proto__', 'ok']);
    assert.equal(({} as Record<string, unknown>).polluted, undefined, 'no prototype was touched');
    const when = new Date('2026-12-01T00:00:00Z');
    assert.equal((encodeValue({ when }) as { when: unknown }).when, when.toISOString());
  });
});

describe('checkBearer', () => {
  test('the whole token after the scheme is compared, spaces inside it included', () => {
    const token = 'correct horse battery';
    assert.equal(checkBearer(`Bearer ${token}`, token), 'ok');
    assert.equal(checkBearer(`bearer   ${token}`, token), 'ok');
    assert.equal(checkBearer('Bearer correct', token), 'wrong');
    assert.equal(checkBearer(`Bearer ${token} staple`, token), 'wrong');
    assert.equal(checkBearer('Basic abc', token), 'wrong');
    assert.equal(checkBearer(undefined, token), 'missing');
  });
});
