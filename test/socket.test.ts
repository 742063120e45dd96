// The local socket (its frames: frame-codec.test.ts): a real daemon (`node dist/supervisor.js`
// with no IPC channel) spoken to through real Unix sockets, by SupervisorClient.connect and by raw frames.
import { after, afterEach, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, statSync, writeFileSync, existsSync } from 'node:fs';
import { createConnection, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SupervisorClient, type SupervisorMessage } from 'gpu-supervisor';
import { encodeFrame } from '../dist/transport/frame-codec.js';
import { FrameDecoder } from '../dist/transport/frame-decoder.js';
import { ECHO_WORKER, SupervisorProcess, expectFailure, unlessCode, waitUntil } from './helpers.js';

const TOKEN = 'socket-test-token-0123';

function frameOf(payload: Buffer): Buffer {
  const prefix = Buffer.alloc(4);
  prefix.writeUInt32BE(payload.byteLength);
  return Buffer.concat([prefix, payload]);
}

function payloadOf(header: string, sections = Buffer.alloc(0)): Buffer {
  const h = Buffer.from(header);
  const len = Buffer.alloc(4);
  len.writeUInt32BE(h.byteLength);
  return Buffer.concat([len, h, sections]);
}

/** A raw frame client: what a non-Node program speaking the socket protocol would do. */
class RawClient {
  readonly messages: Array<Record<string, unknown>> = [];
  readonly errors: string[] = [];
  closed = false;
  private readonly decoder = new FrameDecoder(1 << 26);

  private constructor(readonly socket: Socket) {
    socket.on('data', (chunk: Buffer) => {
      for (const item of this.decoder.push(chunk)) {
        if (item.kind === 'message') this.messages.push(item.message as Record<string, unknown>);
        else this.errors.push(item.error.message);
      }
    });
    socket.on('error', () => undefined);
    socket.on('close', () => (this.closed = true));
  }

  static open(path: string): Promise<RawClient> {
    return new Promise((resolve, reject) => {
      const socket = createConnection(path);
      socket.once('connect', () => resolve(new RawClient(socket)));
      socket.once('error', reject);
    });
  }

  send(message: unknown): void {
    this.socket.write(encodeFrame(message));
  }

  async waitFor(
    find: (m: Record<string, unknown>) => boolean,
    what: string,
  ): Promise<Record<string, unknown>> {
    let found: Record<string, unknown> | undefined;
    await waitUntil(() => (found = this.messages.find(find)) !== undefined, what, 20_000);
    return found!;
  }

  answer(id: string): Promise<Record<string, unknown>> {
    return this.waitFor((m) => m.id === id, `answer to ${id}`);
  }
}

describe('socket front on a standalone daemon', () => {
  let dir: string;
  let path: string;
  let daemon: SupervisorProcess;
  const clients: SupervisorClient[] = [];
  const raws: RawClient[] = [];

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'gpu-sup-socket-'));
    path = join(dir, 'run', 'sup.sock');
    const config = join(dir, 'config.json');
    writeFileSync(config, JSON.stringify({ maxClients: 6, maxMessageBytes: 65536 }));
    daemon = SupervisorProcess.daemon(
      ['--config', config, '--socket', path, '--worker', ECHO_WORKER, '--workers', '1'],
      {
        env: { GPU_SUPERVISOR_ADMIN_TOKEN: TOKEN },
      },
    );
    await daemon.waitForLog('socket listening');
  });
  after(async () => {
    for (const c of clients) await c.close().catch(() => undefined);
    for (const r of raws) r.socket.destroy();
    const { code } = await daemon.stop();
    rmSync(dir, { recursive: true, force: true });
    assert.equal(code, 0);
  });

  afterEach(async () => {
    for (const c of clients.splice(0)) await c.close().catch(() => undefined);
    for (const r of raws.splice(0)) r.socket.destroy();
  });

  const connect = async (token?: string): Promise<SupervisorClient> => {
    const client = await SupervisorClient.connect(path, token === undefined ? {} : { token });
    clients.push(client);
    return client;
  };
  const raw = async (): Promise<RawClient> => {
    const client = await RawClient.open(path);
    raws.push(client);
    return client;
  };

  test('directory 0700, socket 0600', () => {
    assert.equal(statSync(join(dir, 'run')).mode & 0o777, 0o700);
    assert.ok(statSync(path).isSocket());
    assert.equal(statSync(path).mode & 0o777, 0o600);
  });

  test('Float32Array payloads round-trip as typed arrays', async () => {
    const client = await connect();
    assert.equal(client.pid, daemon.child.pid);
    const value = { data: new Float32Array([0.5, -1.25, 3]), ids: new BigInt64Array([7n]), note: 'n' };
    const answer = await client.runDetailed({ op: 'echo', value });
    assert.deepStrictEqual(answer.value, value);
    assert.ok((answer.value as { data: unknown }).data instanceof Float32Array);
    assert.equal(typeof answer.workerPid, 'number');
    const typed = (await client.run({ op: 'typed', n: 3 })) as { f32: Float32Array };
    assert.deepStrictEqual(typed.f32, new Float32Array([1.5, 1.5, 1.5]));
  });

  test('admin: missing token and wrong token are E_UNAUTHORIZED, the right one works', async () => {
    const anonymous = await connect();
    await assert.rejects(anonymous.stats(), { code: 'E_UNAUTHORIZED' });
    // Tasks do not need the token unless requireToken is set.
    assert.equal(await anonymous.run({ op: 'echo', value: 1 }), 1);
    await assert.rejects(SupervisorClient.connect(path, { token: 'wrong-token-123' }), {
      code: 'E_UNAUTHORIZED',
    });
    const admin = await connect(TOKEN);
    const stats = await admin.stats();
    assert.equal(stats.supervisor.pid, daemon.child.pid);
    assert.equal(stats.workers.length, 1);
    const refusals = daemon.logsWith('unauthorized');
    assert.ok(refusals.some((l) => l.reason === 'wrong token'));
    assert.ok(refusals.some((l) => l.reason === 'missing token'));
    assert.ok(!daemon.logs.some((l) => JSON.stringify(l).includes('wrong-token-123')));
    assert.ok(!daemon.logs.some((l) => JSON.stringify(l).includes(TOKEN)));
  });

  test('after a wrong token nothing more on that connection is carried out, not even frames sent with it', async () => {
    const client = await raw();
    // One write: a wrong guess, a right one, and a command riding behind them.
    client.socket.write(
      Buffer.concat([
        encodeFrame({ type: 'hello', token: 'wrong-token-456' }),
        encodeFrame({ type: 'hello', token: TOKEN }),
        encodeFrame({ type: 'admin', id: 'behind-the-guess', command: 'stats' }),
      ]),
    );
    const error = await client.waitFor((m) => m.type === 'error', 'the refusal');
    assert.equal((error.error as { code: string }).code, 'E_UNAUTHORIZED');
    await waitUntil(() => client.closed, 'the connection closed by the daemon', 10_000);
    assert.deepEqual(
      client.messages.map((m) => m.type),
      ['error'],
      'no ready for the second guess, no answer to the command',
    );
  });

  test('an oversized frame is E_BAD_REQUEST; the connection and the daemon keep serving', async () => {
    const client = await raw();
    const head = Buffer.alloc(4);
    head.writeUInt32BE(200_000);
    client.socket.write(head);
    for (let i = 0; i < 4; i++) client.socket.write(Buffer.alloc(50_000, 0x41));
    const error = await client.waitFor((m) => m.type === 'error', 'error frame');
    assert.equal((error.error as { code: string }).code, 'E_BAD_REQUEST');
    assert.match((error.error as { message: string }).message, /maxMessageBytes/);
    client.send({ type: 'task', id: 'after-big', payload: { op: 'echo', value: 'still here' } });
    assert.equal((await client.answer('after-big')).value, 'still here');
    // The typed client refuses a message the daemon would refuse, under its own promise.
    const typed = await connect();
    await assert.rejects(typed.run({ op: 'echo', value: new Float32Array(20_000) }), {
      code: 'E_BAD_REQUEST',
    });
    assert.equal(await typed.run({ op: 'echo', value: 2 }), 2);
  });

  test('a value nested deeper than frames carry is E_BAD_REQUEST at once, not an answer that never comes', async () => {
    const client = await connect();
    let deep: unknown = 'leaf';
    for (let i = 0; i < 1500; i++) deep = [deep];
    await assert.rejects(client.run({ op: 'echo', value: deep }, { timeoutMs: 60_000 }), {
      code: 'E_BAD_REQUEST',
      message: /nests deeper/,
    });
    assert.equal(await client.run({ op: 'echo', value: 4 }), 4);
  });

  test('garbage frames are E_BAD_REQUEST; other clients are served', async () => {
    const bad = await raw();
    bad.socket.write(frameOf(Buffer.from('this is not a frame payload at all')));
    bad.socket.write(
      frameOf(payloadOf('{"type":"task","id":"g","payload":{"$tensor":3,"dtype":"uint8","length":1}}')),
    );
    bad.send({ type: 'task', id: 'no-payload' });
    bad.send({ type: 'bogus', id: 'b1' });
    await waitUntil(() => bad.messages.length >= 4, 'four answers', 20_000);
    const codes = bad.messages.map((m) => (m.error as { code: string }).code);
    assert.deepEqual(codes, ['E_BAD_REQUEST', 'E_BAD_REQUEST', 'E_BAD_REQUEST', 'E_BAD_REQUEST']);
    assert.equal((await bad.answer('no-payload')).type, 'result');
    const good = await connect();
    assert.equal(await good.run({ op: 'echo', value: 'ok' }), 'ok');
    assert.ok(daemon.running);
  });

  test('a client that disconnects mid-task frees the worker; the daemon stays up', async () => {
    const leaver = await raw();
    leaver.send({ type: 'task', id: 'long', payload: { op: 'sleep', ms: 60_000 } });
    const admin = await connect(TOKEN);
    await waitUntil(async () => (await admin.stats()).workers.some((w) => w.state === 'busy'), 'worker busy');
    leaver.socket.destroy();
    await waitUntil(
      () => daemon.logsWith('socket client left: its tasks cancelled').length > 0,
      'cancel log',
    );
    // One worker: this task can only run once the abandoned one's worker has been freed (replaced).
    assert.equal(await admin.run({ op: 'echo', value: 'next' }, { timeoutMs: 30_000 }), 'next');
    assert.ok(daemon.running);
  });

  test('a disconnecting client has its queued tasks cancelled too: none of them ever runs', async () => {
    const trace = join(dir, 'queued-trace');
    const leaver = await raw();
    leaver.send({ type: 'task', id: 'running', payload: { op: 'sleep', ms: 60_000 } });
    const admin = await connect(TOKEN);
    await waitUntil(async () => (await admin.stats()).workers.some((w) => w.state === 'busy'), 'worker busy');
    // One worker, busy for a minute: these wait (one of them perhaps sent ahead to the busy worker).
    for (let i = 0; i < 3; i++)
      leaver.send({ type: 'task', id: `queued-${i}`, payload: { op: 'note', file: trace } });
    await waitUntil(async () => {
      const stats = await admin.stats();
      return stats.queue.size + (stats.workers[0]?.inFlight ?? 0) === 4;
    }, 'the three tasks queued behind the running one');
    const before = daemon.logsWith('socket client left: its tasks cancelled').length;
    leaver.socket.destroy();
    const left = await waitUntil(
      () => daemon.logsWith('socket client left: its tasks cancelled').length > before,
      'cancel log',
    ).then(() => daemon.logsWith('socket client left: its tasks cancelled').at(-1)!);
    assert.equal(left.cancelled, 4, 'the running task and the three queued ones');
    // The next task runs on the replacement; the queued ones were dropped, not run first.
    assert.equal(await admin.run({ op: 'echo', value: 'next' }, { timeoutMs: 30_000 }), 'next');
    await new Promise((r) => setTimeout(r, 300));
    assert.equal(existsSync(trace), false, 'no queued task of the departed client ran');
    const stats = await admin.stats();
    assert.equal(stats.queue.size, 0);
  });

  test("hello: the ready answer carries maxMessageBytes and whether this connection's token is accepted", async () => {
    const anonymous = await raw();
    anonymous.send({ type: 'hello' });
    const plain = await anonymous.waitFor((m) => m.type === 'ready', 'ready');
    assert.equal(plain.pid, daemon.child.pid);
    assert.equal(plain.workers, 1);
    assert.equal(plain.maxMessageBytes, 65536, 'the configured limit, not the default');
    assert.equal(plain.authenticated, false);
    const admin = await raw();
    admin.send({ type: 'hello', token: TOKEN });
    const authed = await admin.waitFor((m) => m.type === 'ready', 'ready');
    assert.equal(authed.maxMessageBytes, 65536);
    assert.equal(authed.authenticated, true);
  });

  test('cancel through an AbortSignal', async () => {
    const client = await connect();
    const controller = new AbortController();
    const pending = client.run({ op: 'sleep', ms: 60_000 }, { signal: controller.signal });
    setTimeout(() => controller.abort(), 200);
    await assert.rejects(pending, { code: 'E_CANCELLED' });
  });

  test('at most maxClients connections; the extra one gets an error frame', async () => {
    // Earlier tests' hang-ups may still be on their way to the daemon: fill it up to maxClients (6).
    await waitUntil(async () => {
      const client = await SupervisorClient.connect(path).catch(unlessCode('E_QUEUE_FULL'));
      if (client) clients.push(client);
      return clients.length === 6;
    }, 'six clients');
    await assert.rejects(SupervisorClient.connect(path), { code: 'E_QUEUE_FULL', message: /maxClients/ });
    await clients.pop()!.close();
    await waitUntil(async () => {
      const again = await SupervisorClient.connect(path).catch(unlessCode('E_QUEUE_FULL'));
      if (again) clients.push(again);
      return again !== undefined;
    }, 'a slot after one left');
  });
});

describe('socket front: requireToken', () => {
  let dir: string;
  let daemon: SupervisorProcess;
  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'gpu-sup-socket-'));
    daemon = SupervisorProcess.daemon(
      ['--socket', join(dir, 's.sock'), '--worker', ECHO_WORKER, '--workers', '1', '--require-token', 'true'],
      { env: { GPU_SUPERVISOR_ADMIN_TOKEN: TOKEN } },
    );
    await daemon.waitForLog('socket listening');
  });
  after(async () => {
    await daemon.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  test('tasks need the token', async () => {
    const anonymous = await SupervisorClient.connect(join(dir, 's.sock'));
    await assert.rejects(anonymous.run({ op: 'echo', value: 1 }), { code: 'E_UNAUTHORIZED' });
    await anonymous.close();
    const authed = await SupervisorClient.connect(join(dir, 's.sock'), { token: TOKEN });
    assert.equal(await authed.run({ op: 'echo', value: 1 }), 1);
    await authed.close();
  });
});

describe('socket placement', () => {
  let dir: string;
  const daemons: SupervisorProcess[] = [];
  const forked: SupervisorProcess[] = [];
  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'gpu-sup-socket-'));
  });
  after(async () => {
    for (const d of daemons) await d.stop();
    for (const f of forked) await f.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  test('nothing listening: connect says E_NOT_RUNNING and names the path', async () => {
    await assert.rejects(SupervisorClient.connect(join(dir, 'nobody.sock')), {
      code: 'E_NOT_RUNNING',
      message: /no supervisor is listening on .*nobody\.sock/,
    });
  });

  test('a stale socket file is replaced; a live one is a start error', async () => {
    const path = join(dir, 'stale.sock');
    // A process that dies without removing its socket file leaves a stale one behind.
    const holder = SupervisorProcess.script('-e', [
      `require('net').createServer().listen(${JSON.stringify(path)})`,
    ]);
    await waitUntil(() => existsSync(path), 'stale socket file');
    await holder.stop('SIGKILL');
    assert.ok(existsSync(path));
    const first = SupervisorProcess.daemon(['--socket', path, '--worker', ECHO_WORKER, '--workers', '1']);
    daemons.push(first);
    await first.waitForLog('socket listening');
    assert.equal(first.logsWith('replacing a stale socket file').length, 1);
    const client = await SupervisorClient.connect(path);
    assert.equal(client.pid, first.child.pid);
    await client.close();

    const second = SupervisorProcess.daemon(['--socket', path, '--worker', ECHO_WORKER, '--workers', '1']);
    daemons.push(second);
    const { code } = await second.exit;
    assert.equal(code, 1);
    const fatal = second.logsWith('cannot start a front')[0];
    assert.match(JSON.stringify(fatal), /already listening/);
    assert.ok(first.running);
  });

  test("'auto': a standalone daemon listens under XDG_RUNTIME_DIR; a forked one does not", async () => {
    const runtime = join(dir, 'xdg');
    const auto = join(runtime, 'gpu-supervisor', 'supervisor.sock');
    const sup = SupervisorProcess.fork(['--worker', ECHO_WORKER, '--workers', '1'], {
      env: { XDG_RUNTIME_DIR: runtime, GPU_SUPERVISOR_SOCKET: '' },
    });
    forked.push(sup);
    await sup.ready();
    assert.ok(!existsSync(auto), 'a forked supervisor took the auto socket');
    await sup.stop();

    const daemon = SupervisorProcess.daemon(['--worker', ECHO_WORKER, '--workers', '1'], {
      env: { XDG_RUNTIME_DIR: runtime },
    });
    daemons.push(daemon);
    await daemon.waitForLog('socket listening');
    assert.equal(statSync(join(runtime, 'gpu-supervisor')).mode & 0o777, 0o700);
    const client = await SupervisorClient.connect(auto);
    assert.equal(client.workers, 1);
    await client.close();
    await daemon.stop();
    assert.ok(!existsSync(auto), 'the socket file is removed on shutdown');
  });
});

describe('fork channel: maxMessageBytes', () => {
  let sup: SupervisorProcess;
  before(async () => {
    sup = SupervisorProcess.fork(['--worker', ECHO_WORKER, '--workers', '1', '--max-message-bytes', '4096'], {
      serialization: 'advanced',
    });
    await sup.ready();
  });
  after(async () => {
    await sup.stop();
  });

  test('an oversized message is E_BAD_REQUEST under its id; the next one is served', async () => {
    const big = (await sup.request({
      type: 'task',
      id: 'big',
      payload: { op: 'echo', value: new Float32Array(2000) },
    })) as SupervisorMessage;
    assert.equal(big.type, 'result');
    expectFailure(big, 'E_BAD_REQUEST', /maxMessageBytes/);
    const text = (await sup.request({
      type: 'task',
      id: 'big-text',
      payload: { op: 'echo', value: 'x'.repeat(5000) },
    })) as SupervisorMessage;
    assert.ok(text.type === 'result' && !text.ok && text.error.code === 'E_BAD_REQUEST');
    const small = (await sup.request({
      type: 'task',
      id: 'small',
      payload: { op: 'echo', value: 3 },
    })) as SupervisorMessage;
    assert.ok(small.type === 'result' && small.ok && small.value === 3);
  });

  test('the size counts what a Map, a Set or an Error holds; a circular payload is counted once, at once', async () => {
    const inSet = await sup.request({
      type: 'task',
      id: 'in-a-set',
      payload: { op: 'echo', value: new Set(['x'.repeat(5000)]) },
    });
    expectFailure(inSet, 'E_BAD_REQUEST', /maxMessageBytes/);
    const inMap = await sup.request({
      type: 'task',
      id: 'in-a-map',
      payload: { op: 'echo', value: new Map([['k', 'x'.repeat(5000)]]) },
    });
    expectFailure(inMap, 'E_BAD_REQUEST', /maxMessageBytes/);
    const inError = await sup.request({
      type: 'task',
      id: 'in-an-error',
      payload: { op: 'echo', value: new Error('x'.repeat(5000)) },
    });
    expectFailure(inError, 'E_BAD_REQUEST', /maxMessageBytes/);
    const loop: Record<string, unknown> = { op: 'echo', value: 'small' };
    loop.self = loop;
    const circular = await sup.request({ type: 'task', id: 'circular', payload: loop });
    assert.ok(
      circular.type === 'result' && circular.ok && circular.value === 'small',
      JSON.stringify(circular),
    );
  });
});

describe('a fork parent and socket clients side by side', () => {
  let dir: string;
  let sup: SupervisorProcess;
  const raws: RawClient[] = [];
  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'gpu-sup-socket-'));
    sup = SupervisorProcess.fork(
      ['--socket', join(dir, 's.sock'), '--worker', ECHO_WORKER, '--workers', '3', '--history', 'off'],
      {},
    );
    await sup.ready();
  });
  after(async () => {
    for (const r of raws) r.socket.destroy();
    await sup.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  test("an id the fork parent sends never takes or cancels a socket client's task, nor the other way", async () => {
    const client = await RawClient.open(join(dir, 's.sock'));
    raws.push(client);
    client.send({ type: 'hello' });
    await client.waitFor((m) => m.type === 'ready', 'ready');
    // The socket client is connection 1: its "abc" is held as "s1:abc". The parent uses that very id.
    client.send({ type: 'task', id: 'abc', payload: { op: 'sleep', ms: 1500 } });
    client.send({ type: 'task', id: 'xyz', payload: { op: 'sleep', ms: 1500 } });
    await new Promise((r) => setTimeout(r, 200));
    sup.send({ type: 'task', id: 's1:abc', payload: { op: 'sleep', ms: 300 } });
    sup.send({ type: 'task', id: 'f:s1:abc', payload: { op: 'echo', value: 'escaped twice' } });
    const parents = await sup.answer('s1:abc');
    assert.ok(parents.type === 'result' && parents.ok, JSON.stringify(parents));
    const escaped = await sup.answer('f:s1:abc');
    assert.ok(
      escaped.type === 'result' && escaped.ok && escaped.value === 'escaped twice',
      JSON.stringify(escaped),
    );
    // Cancels of what looks like the socket client's ids, from the parent, reach nothing of its.
    sup.send({ type: 'cancel', id: 's1:xyz' });
    sup.send({ type: 'cancel', id: 'bullmq:1:1' });
    const abc = await client.answer('abc');
    const xyz = await client.answer('xyz');
    assert.equal(abc.ok, true, JSON.stringify(abc));
    assert.equal(xyz.ok, true, JSON.stringify(xyz));
  });

  test('a socket client refused for maxClients that keeps its end open does not hold the shutdown', async () => {
    const path = join(dir, 'one.sock');
    const config = join(dir, 'one.json');
    writeFileSync(config, JSON.stringify({ maxClients: 1 }));
    const daemon = SupervisorProcess.daemon(
      ['--config', config, '--socket', path, '--worker', ECHO_WORKER, '--workers', '1', '--history', 'off'],
      {},
    );
    let refused: Socket | undefined;
    try {
      await daemon.waitForLog('socket listening');
      const first = await SupervisorClient.connect(path);
      // A second one is refused; it reads the refusal and never hangs up its end.
      const socket = createConnection({ path, allowHalfOpen: true });
      refused = socket;
      socket.on('error', () => undefined);
      const refusal = new Promise<string>((resolve) =>
        socket.once('data', (chunk) => resolve(String(chunk))),
      );
      assert.match(await refusal, /maxClients/);
      const running = first.run({ op: 'sleep', ms: 500 });
      daemon.child.kill('SIGTERM');
      assert.equal(await running, 'slept');
      const exit = await Promise.race([
        daemon.exit,
        new Promise<'still running'>((r) => setTimeout(() => r('still running'), 10_000)),
      ]);
      assert.notEqual(exit, 'still running', 'the daemon outlived its shutdown');
      await first.close().catch(() => undefined);
    } finally {
      refused?.destroy();
      await daemon.stop();
    }
  });
});
