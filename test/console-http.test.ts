// The admin console's HTTP side, seen from outside: sign-in, cookies, forgery checks, the event stream.
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { createServer, request, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, test } from 'node:test';
import { pino } from 'pino';
import { Supervisor } from 'gpu-supervisor';
import { EventStreamHub } from '../dist/console/event-stream.js';
import { startHttpFront, type HttpFront } from '../dist/metrics/http-server.js';
import { POOL_WORKER } from './fixtures/pool-helpers.js';

const TOKEN = 'console-test-token-42';
const silent = pino({ level: 'silent' });

interface Reply {
  status: number;
  headers: IncomingMessage['headers'];
  text: string;
}

function call(
  port: number,
  method: string,
  path: string,
  headers: Record<string, string> = {},
  body?: string,
): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, method, path, headers, agent: false }, (res) => {
      const parts: Buffer[] = [];
      res.on('data', (c: Buffer) => parts.push(c));
      res.on('end', () =>
        resolve({ status: res.statusCode ?? 0, headers: res.headers, text: Buffer.concat(parts).toString() }),
      );
    });
    req.on('error', reject);
    req.end(body);
  });
}

/** Opens GET /events and resolves with the response once its first frame (hello) has arrived. */
function openStream(
  port: number,
  headers: Record<string, string> = {},
): Promise<{ res: IncomingMessage; first: string; close: () => void }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path: '/events', headers, agent: false }, (res) => {
      if (res.statusCode !== 200) {
        let text = '';
        res.on('data', (c: Buffer) => (text += c.toString()));
        res.on('end', () => resolve({ res, first: text, close: () => req.destroy() }));
        return;
      }
      let text = '';
      const onData = (c: Buffer): void => {
        text += c.toString();
        if (text.includes('event: hello') && text.endsWith('\n\n')) {
          res.off('data', onData);
          resolve({ res, first: text, close: () => req.destroy() });
        }
      };
      res.on('data', onData);
    });
    req.on('error', reject);
    req.end();
  });
}

async function signIn(port: number): Promise<string> {
  const reply = await call(
    port,
    'POST',
    '/login',
    { 'content-type': 'application/json' },
    JSON.stringify({ token: TOKEN }),
  );
  assert.equal(reply.status, 204, reply.text);
  const cookie = String(reply.headers['set-cookie']);
  assert.match(
    cookie,
    /^gpu_supervisor_session=[\w-]{40,}; HttpOnly; SameSite=Strict; Path=\/; Max-Age=\d+$/,
  );
  return cookie.split(';')[0]!;
}

function signOut(port: number, cookie: string): ReturnType<typeof call> {
  return call(port, 'POST', '/logout', { cookie, 'content-type': 'application/json' }, '{}');
}

describe('console over HTTP', () => {
  let sup: Supervisor;
  let front: HttpFront;

  before(async () => {
    sup = new Supervisor({ worker: POOL_WORKER, workers: 2, logLevel: 'silent', socket: 'off' });
    await sup.start();
    const config = {
      ...sup.config,
      http: { port: 0, host: '127.0.0.1' },
      adminToken: TOKEN,
      maxClients: 2,
    };
    front = (await startHttpFront(
      { supervisor: sup, config, log: silent, forked: false },
      { processMetrics: false },
    ))!;
  });
  after(async () => {
    await front.close();
    await sup.shutdown();
  });

  test('the page and its files carry the security headers; no token ever goes in a URL', async () => {
    const page = await call(front.port, 'GET', '/');
    assert.equal(page.status, 200);
    assert.match(String(page.headers['content-type']), /^text\/html/);
    const csp = String(page.headers['content-security-policy']);
    assert.match(csp, /script-src 'self'(;|$)/);
    assert.doesNotMatch(csp, /unsafe-inline|unsafe-eval/);
    assert.match(csp, /frame-ancestors 'none'/);
    assert.equal(page.headers['x-content-type-options'], 'nosniff');
    // No inline script in the page: every <script> has a src on this origin.
    for (const tag of page.text.match(/<script\b[^>]*>/g) ?? []) assert.match(tag, /src="\/console\//);
    assert.doesNotMatch(page.text, /<script\b[^>]*>[^<]/);
    const uplot = await call(front.port, 'GET', '/console/vendor/uPlot.iife.min.js');
    assert.equal(uplot.status, 200);
    assert.match(String(uplot.headers['content-type']), /^text\/javascript/);
    assert.match(uplot.text, /uPlot/);
  });

  test('sign-in: a wrong token is 401, the right one gives an HttpOnly SameSite=Strict cookie', async () => {
    const wrong = await call(
      front.port,
      'POST',
      '/login',
      { 'content-type': 'application/json' },
      JSON.stringify({ token: 'not-the-token' }),
    );
    assert.equal(wrong.status, 401);
    assert.equal(wrong.headers['set-cookie'], undefined);
    const cookie = await signIn(front.port);
    const session = JSON.parse((await call(front.port, 'GET', '/console/api/session', { cookie })).text);
    assert.deepEqual(session, { tokenConfigured: true, public: false, signedIn: true, access: 'admin' });
    const anonymous = JSON.parse((await call(front.port, 'GET', '/console/api/session')).text);
    assert.equal(anonymous.access, 'none');
    // Signing out ends the session on the server, not only in the browser.
    const out = await signOut(front.port, cookie);
    assert.equal(out.status, 204);
    assert.match(String(out.headers['set-cookie']), /Max-Age=0/);
    const after = JSON.parse((await call(front.port, 'GET', '/console/api/session', { cookie })).text);
    assert.equal(after.access, 'none');
  });

  test('a cookie-carried action that a cross-site form or page could send is refused', async () => {
    const cookie = await signIn(front.port);
    const pids = (await sup.stats()).workers.map((w) => w.pid);
    const asForm = await call(
      front.port,
      'POST',
      '/admin/stats',
      { cookie, 'content-type': 'application/x-www-form-urlencoded' },
      'a=1',
    );
    assert.equal(asForm.status, 403, asForm.text);
    const otherOrigin = await call(
      front.port,
      'POST',
      '/admin/clear-cache',
      { cookie, 'content-type': 'application/json', origin: 'http://evil.example' },
      '{}',
    );
    assert.equal(otherOrigin.status, 403, otherOrigin.text);
    const crossSite = await call(
      front.port,
      'POST',
      '/admin/clear-cache',
      { cookie, 'content-type': 'application/json', 'sec-fetch-site': 'cross-site' },
      '{}',
    );
    assert.equal(crossSite.status, 403, crossSite.text);
    assert.deepEqual(
      (await sup.stats()).workers.map((w) => w.pid),
      pids,
      'no refused action replaced a worker',
    );
    const sameOrigin = await call(
      front.port,
      'POST',
      '/admin/stats',
      { cookie, 'content-type': 'application/json', origin: `http://127.0.0.1:${front.port}` },
      '{}',
    );
    assert.equal(sameOrigin.status, 200, sameOrigin.text);
    // A bearer token is never sent by a browser on its own: curl keeps working without a content type.
    const bearer = await call(front.port, 'POST', '/admin/stats', { authorization: `Bearer ${TOKEN}` });
    assert.equal(bearer.status, 200);
    const noCookie = await call(
      front.port,
      'POST',
      '/admin/stats',
      { 'content-type': 'application/json' },
      '{}',
    );
    assert.equal(noCookie.status, 401);
  });

  test('POST /admin/clear-cache { model }: an unknown model is a 404 E_MODEL_NOT_FOUND; light keeps the pids', async () => {
    const bearer = { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json' };
    const clearCache = (body: object) =>
      call(front.port, 'POST', '/admin/clear-cache', bearer, JSON.stringify(body));
    const pids = (await sup.stats()).workers.map((w) => w.pid);
    const unknown = await clearCache({ model: 'no-such-model' });
    assert.equal(unknown.status, 404, unknown.text);
    assert.equal(JSON.parse(unknown.text).error.code, 'E_MODEL_NOT_FOUND');
    const bad = await clearCache({ mode: 'light' });
    assert.equal(bad.status, 400, bad.text);
    // This worker module cannot say what it holds: every worker counts as holding a configured model.
    const light = await clearCache({ model: 'mlp', mode: 'light' });
    assert.equal(light.status, 200, light.text);
    const answer = JSON.parse(light.text) as { recycled: number[]; workers: Array<{ oldPid: number }> };
    assert.deepEqual(answer.recycled, []);
    assert.deepEqual(answer.workers.map((w) => w.oldPid).sort(), [...pids].sort());
    assert.deepEqual(
      (await sup.stats()).workers.map((w) => w.pid),
      pids,
      'no worker was replaced by the refused or the light clear',
    );
  });

  test('GET /events: refused without a sign-in; a stream opens with hello; at most maxClients', async () => {
    const refused = await openStream(front.port);
    assert.equal(refused.res.statusCode, 401);
    const cookie = await signIn(front.port);
    const one = await openStream(front.port, { cookie });
    assert.equal(one.res.statusCode, 200);
    assert.match(String(one.res.headers['content-type']), /^text\/event-stream/);
    const hello = JSON.parse(/event: hello\ndata: (.*)\n/.exec(one.first)![1]!);
    assert.equal(hello.info.pid, process.pid);
    assert.deepEqual(
      hello.snapshot.workers.map((w: { pid: number }) => w.pid).sort(),
      (await sup.stats()).workers.map((w) => w.pid).sort(),
    );
    const two = await openStream(front.port, { authorization: `Bearer ${TOKEN}` });
    assert.equal(two.res.statusCode, 200);
    const three = await openStream(front.port, { cookie });
    assert.equal(three.res.statusCode, 503, 'maxClients is 2');
    // A closed stream frees its place.
    one.close();
    await new Promise((r) => setTimeout(r, 100));
    const again = await openStream(front.port, { cookie });
    assert.equal(again.res.statusCode, 200);
    two.close();
    again.close();
  });

  test('a stream opened with a sign-in ends once the sign-in does (sign-out)', async () => {
    const cookie = await signIn(front.port);
    const stream = await openStream(front.port, { cookie });
    assert.equal(stream.res.statusCode, 200);
    const ended = once(stream.res, 'end');
    const out = await signOut(front.port, cookie);
    assert.equal(out.status, 204);
    // Stats frames go out once a second: the next one finds the session gone and ends the stream.
    stream.res.resume();
    await Promise.race([
      ended,
      new Promise((_, reject) =>
        setTimeout(() => reject(new Error('the stream outlived the sign-out')), 10_000),
      ),
    ]);
    stream.close();
  });

  test('HEAD /events answers the headers at once and holds no stream place', async () => {
    const head = (): Promise<IncomingMessage> =>
      new Promise((resolve, reject) => {
        const req = request(
          {
            port: front.port,
            path: '/events',
            method: 'HEAD',
            headers: { authorization: `Bearer ${TOKEN}` },
          },
          resolve,
        );
        req.on('error', reject);
        req.end();
      });
    for (let i = 0; i < 3; i++) {
      const res = await head();
      assert.equal(res.statusCode, 200);
      assert.match(String(res.headers['content-type']), /^text\/event-stream/);
      res.resume();
    }
    // Three HEADs with maxClients 2: both places are still free.
    const one = await openStream(front.port, { authorization: `Bearer ${TOKEN}` });
    const two = await openStream(front.port, { authorization: `Bearer ${TOKEN}` });
    assert.equal(one.res.statusCode, 200);
    assert.equal(two.res.statusCode, 200);
    one.close();
    two.close();
    await new Promise((r) => setTimeout(r, 100));
  });

  test('stats frames arrive once a second, shared: two streams get the same snapshot', async () => {
    const a = await openStream(front.port, { authorization: `Bearer ${TOKEN}` });
    const b = await openStream(front.port, { authorization: `Bearer ${TOKEN}` });
    const nextStats = (res: IncomingMessage): Promise<string> =>
      new Promise((resolve) => {
        let text = '';
        const onData = (c: Buffer): void => {
          text += c.toString();
          const m = /event: stats\ndata: (.*)\n\n/.exec(text);
          if (m) {
            res.off('data', onData);
            resolve(m[1]!);
          }
        };
        res.on('data', onData);
      });
    const started = Date.now();
    const [sa, sb] = await Promise.all([nextStats(a.res), nextStats(b.res)]);
    assert.ok(Date.now() - started < 2500);
    assert.equal(sa, sb, 'one snapshot, serialized once, for every stream');
    a.close();
    b.close();
  });
});

describe('console without a token, and in public mode', () => {
  let sup: Supervisor;
  const fronts: HttpFront[] = [];

  before(async () => {
    sup = new Supervisor({ worker: POOL_WORKER, workers: 1, logLevel: 'silent', socket: 'off' });
    await sup.start();
  });
  after(async () => {
    for (const f of fronts) await f.close();
    await sup.shutdown();
  });

  async function frontWith(adminToken: string | null, consolePublic: boolean): Promise<HttpFront> {
    const config = { ...sup.config, http: { port: 0, host: '127.0.0.1', consolePublic }, adminToken };
    const front = (await startHttpFront(
      { supervisor: sup, config, log: silent, forked: false },
      { processMetrics: false },
    ))!;
    fronts.push(front);
    return front;
  }

  test('no admin token: the session says so, the stream and sign-in are 403 and say how to set one', async () => {
    const front = await frontWith(null, false);
    const session = JSON.parse((await call(front.port, 'GET', '/console/api/session')).text);
    assert.deepEqual(session, { tokenConfigured: false, public: false, signedIn: false, access: 'none' });
    const stream = await openStream(front.port);
    assert.equal(stream.res.statusCode, 403);
    assert.match(stream.first, /GPU_SUPERVISOR_ADMIN_TOKEN/);
    const login = await call(
      front.port,
      'POST',
      '/login',
      { 'content-type': 'application/json' },
      '{"token":"x"}',
    );
    assert.equal(login.status, 403);
  });

  test('http.consolePublic: the read-only views open without a token, actions still need it', async () => {
    const front = await frontWith(TOKEN, true);
    const stream = await openStream(front.port);
    assert.equal(stream.res.statusCode, 200);
    assert.match(stream.first, /"access":"read"/);
    stream.close();
    assert.equal((await call(front.port, 'GET', '/console/api/history')).status, 200);
    const action = await call(
      front.port,
      'POST',
      '/admin/clear-cache',
      { 'content-type': 'application/json' },
      '{}',
    );
    assert.equal(action.status, 401);
  });

  test('without consolePublic the history view needs a sign-in', async () => {
    const front = await frontWith(TOKEN, false);
    assert.equal((await call(front.port, 'GET', '/console/api/history')).status, 401);
  });
});

test('a stream that stops reading is dropped once its unread bytes pass the limit; others keep going', async () => {
  const drops: string[] = [];
  const hub = new EventStreamHub({
    maxClients: 4,
    maxBufferedBytes: 256 * 1024,
    onDrop: (why) => drops.push(why),
  });
  const server = createServer((_req: IncomingMessage, res: ServerResponse) => hub.add(res, {}, ': hi\n\n'));
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const port = (server.address() as AddressInfo).port;
  const open = (): Promise<IncomingMessage> =>
    new Promise((resolve) => request({ host: '127.0.0.1', port, agent: false }, resolve).end());
  const slow = await open();
  slow.pause();
  slow.socket.pause();
  const fast = await open();
  let fastBytes = 0;
  fast.on('data', (c: Buffer) => (fastBytes += c.length));
  const chunk = 'x'.repeat(64 * 1024);
  let sent = 0;
  // Enough to fill the kernel's socket buffers on both sides and then the limit: loopback buffers are
  // a few MiB at most.
  for (let i = 0; i < 400 && hub.size === 2; i++) {
    hub.broadcast('bulk', chunk);
    sent += chunk.length;
    await new Promise((r) => setImmediate(r));
  }
  assert.equal(hub.size, 1, 'the slow stream is gone, the reading one stays');
  assert.equal(drops.length, 1);
  assert.ok(sent < 400 * chunk.length, 'dropped well before the end of the flood');
  hub.broadcast('bulk', 'after');
  await new Promise((r) => setTimeout(r, 200));
  assert.ok(fastBytes > sent * 0.9, `the reading stream got what was sent (${fastBytes} of ${sent})`);
  // The slow client, once it reads again, finds its stream cut short.
  const slowClosed = once(slow.socket, 'close');
  slow.resume();
  slow.socket.resume();
  await slowClosed;
  hub.close();
  server.close();
});

test('clear-cache answers the freed RAM (and GPU when measured), totals and per worker', async () => {
  const sup = new Supervisor({ worker: POOL_WORKER, workers: 2, logLevel: 'silent', socket: 'off' });
  await sup.start();
  try {
    const before = (await sup.stats()).workers.map((w) => w.pid);
    const answer = (await sup.admin('clear-cache')) as {
      recycled: number[];
      ram?: { beforeMiB: number; afterMiB: number; freedMiB: number };
      workers?: Array<{ oldPid: number; newPid: number }>;
    };
    assert.deepEqual([...answer.recycled].sort(), [...before].sort());
    assert.ok(answer.ram && answer.ram.beforeMiB > 0 && answer.ram.afterMiB > 0, JSON.stringify(answer));
    assert.deepEqual(answer.workers?.map((w) => w.oldPid).sort(), [...before].sort());
  } finally {
    await sup.shutdown();
  }
});
