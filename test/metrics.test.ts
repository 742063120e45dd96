import assert from 'node:assert/strict';
import { unlinkSync, writeFileSync } from 'node:fs';
import { Agent, request as httpRequest, type IncomingHttpHeaders } from 'node:http';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { pino } from 'pino';
import { Supervisor, type TaskOutcome } from 'gpu-supervisor';
import { startHttpFront, type HttpFront } from '../dist/metrics/http-server.js';
import { parseExposition, valueOf, type Family } from './prom-text.js';
import {
  ECHO_WORKER,
  httpDaemon,
  expectFailure,
  scratchDir,
  waitUntil,
  type LogLine,
  type SupervisorProcess,
} from './helpers.js';

// ---- HTTP, the way an outside client sees it. ----

interface Reply {
  status: number;
  headers: IncomingHttpHeaders;
  text: string;
  json: () => unknown;
}

function call(
  port: number,
  method: string,
  path: string,
  options: {
    headers?: Record<string, string | number>;
    body?: string | Buffer;
    chunks?: Buffer[];
    noBody?: boolean;
    agent?: Agent;
  } = {},
): Promise<Reply> {
  return new Promise((resolve, reject) => {
    let answered = false;
    const req = httpRequest(
      { host: '127.0.0.1', port, method, path, headers: options.headers, agent: options.agent ?? false },
      (res) => {
        answered = true;
        const parts: Buffer[] = [];
        res.on('data', (c: Buffer) => parts.push(c));
        res.on('end', () => {
          const text = Buffer.concat(parts).toString('utf8');
          resolve({ status: res.statusCode ?? 0, headers: res.headers, text, json: () => JSON.parse(text) });
          if (!options.agent) req.destroy();
        });
      },
    );
    // After an early answer (a 413 before the body was sent) the rest of the upload may fail: that is fine.
    req.on('error', (error) => answered || reject(error));
    if (options.noBody) return void req.flushHeaders();
    for (const chunk of options.chunks ?? []) req.write(chunk);
    req.end(options.body);
  });
}

const TOKEN = 'metrics-test-token-0123';
const auth = { authorization: `Bearer ${TOKEN}` };

async function scrape(target: HttpFront | number): Promise<Map<string, Family>> {
  const reply = await call(typeof target === 'number' ? target : target.port, 'GET', '/metrics');
  assert.equal(reply.status, 200);
  assert.match(String(reply.headers['content-type']), /^text\/plain; version=0\.0\.4; charset=utf-8$/);
  return parseExposition(reply.text);
}

test('the exposition reader is strict (so what it accepts below means something)', () => {
  const ok = [
    '# HELP h_seconds a histogram',
    '# TYPE h_seconds histogram',
    'h_seconds_bucket{le="1",k="a\\"b"} 1',
    'h_seconds_bucket{le="+Inf",k="a\\"b"} 2',
    'h_seconds_sum{k="a\\"b"} 3.5',
    'h_seconds_count{k="a\\"b"} 2',
    '# TYPE g gauge',
    'g Nan',
    '',
  ].join('\n');
  const families = parseExposition(ok);
  assert.equal(valueOf(families, 'h_seconds_count', { k: 'a"b' }), 2);
  assert.ok(Number.isNaN(valueOf(families, 'g')));
  const broken = {
    'count != +Inf bucket': ok.replace('h_seconds_count{k="a\\"b"} 2', 'h_seconds_count{k="a\\"b"} 3'),
    'decreasing buckets': ok.replace('le="+Inf",k="a\\"b"} 2', 'le="+Inf",k="a\\"b"} 0'),
    'sample before TYPE': 'x 1\n',
    'duplicate series': '# TYPE g gauge\ng 1\ng 2\n',
    'foreign sample': '# TYPE g gauge\nh 1\n',
    'bad value': '# TYPE g gauge\ng one\n',
    'negative counter': '# TYPE c_total counter\nc_total -1\n',
    'no final newline': '# TYPE g gauge\ng 1',
    'unterminated label': '# TYPE g gauge\ng{a="b} 1\n',
  };
  for (const [what, text] of Object.entries(broken)) assert.throws(() => parseExposition(text), what);
});

describe('metrics and health over HTTP (library mode)', () => {
  const logLines: LogLine[] = [];
  const log = pino(
    { level: 'info' },
    { write: (line: string) => void logLines.push(JSON.parse(line) as LogLine) },
  );
  let sup: Supervisor;
  let front: HttpFront;
  let tokenless: HttpFront | undefined;

  before(async () => {
    sup = new Supervisor({ worker: ECHO_WORKER, workers: 2, logLevel: 'silent', recycleEveryTasks: 3 });
    const config = { ...sup.config, http: { port: 0, host: '127.0.0.1' }, adminToken: TOKEN };
    const started = await startHttpFront(
      { supervisor: sup, config, log, forked: false },
      { processMetrics: false },
    );
    assert.ok(started, 'http.port 0 starts the front');
    front = started;
  });
  after(async () => {
    await sup.shutdown();
    await front.close();
    await tokenless?.close();
  });

  test('binds an ephemeral port on 127.0.0.1 and logs it; /readyz is 503 before start, /healthz 200', async () => {
    assert.ok(front.port > 0);
    assert.deepEqual(
      logLines.filter((l) => l.msg === 'http listening').map((l) => [l.host, l.port]),
      [['127.0.0.1', front.port]],
    );
    const health = await call(front.port, 'GET', '/healthz');
    assert.equal(health.status, 200);
    const body = health.json() as { status: string; uptimeMs: number };
    assert.equal(body.status, 'ok');
    assert.ok(body.uptimeMs > 0);
    const ready = await call(front.port, 'GET', '/readyz');
    assert.equal(ready.status, 503);
    assert.match((ready.json() as { reason: string }).reason, /supervisor is new|no workers/);
    await sup.start();
    assert.equal((await call(front.port, 'GET', '/readyz')).status, 200);
  });

  test('/metrics counts the tasks, failures, recycles and times that happened', async () => {
    const recycled = new Set<number>();
    sup.events.on('recycle', (e) => recycled.add(e.oldPid));
    const outcomes: TaskOutcome[] = [];
    for (let i = 0; i < 9; i++) outcomes.push(await sup.submit(`ok-${i}`, { op: 'echo', value: i }));
    for (let i = 0; i < 2; i++) outcomes.push(await sup.submit(`throw-${i}`, { op: 'throw' }));
    outcomes.push(await sup.submit('bad', { op: 'bad-request' }));
    // A worker is recycled after exactly 3 tasks (never more: guarantees.test.ts holds that under load).
    // Nothing else recycles here, so every worker that served 3 is replaced for every-n.
    const perPid = new Map<number, number>();
    for (const o of outcomes) {
      if (o.workerPid !== undefined) perPid.set(o.workerPid, (perPid.get(o.workerPid) ?? 0) + 1);
    }
    assert.ok(
      [...perPid.values()].every((n) => n <= 3),
      JSON.stringify([...perPid]),
    );
    const due = [...perPid].filter(([, n]) => n === 3).map(([pid]) => pid);
    assert.ok(due.length >= 1, 'a worker served 3 tasks');
    const livePids = async (): Promise<number[]> =>
      (await sup.stats()).workers.filter((w) => w.state !== 'exited').map((w) => w.pid);
    // Replaced, and the replacement over: a successor takes the slot before its predecessor has even
    // stopped, so the stats alone do not say the recycle (and its metric) is done; its event does.
    await waitUntil(
      async () => {
        const live = await livePids();
        return live.length === 2 && due.every((pid) => !live.includes(pid) && recycled.has(pid));
      },
      'the due workers replaced',
      30_000,
    );
    const families = await scrape(front);
    assert.equal(valueOf(families, 'gpu_supervisor_recycles_total', { reason: 'every-n' }), due.length);
    assert.equal(valueOf(families, 'gpu_supervisor_tasks_total', { status: 'ok' }), 9);
    assert.equal(
      valueOf(families, 'gpu_supervisor_tasks_total', { status: 'failed', code: 'E_TASK_FAILED' }),
      2,
    );
    assert.equal(
      valueOf(families, 'gpu_supervisor_tasks_total', { status: 'failed', code: 'E_BAD_REQUEST' }),
      1,
    );
    assert.equal(valueOf(families, 'gpu_supervisor_task_run_seconds_count'), 12);
    assert.equal(valueOf(families, 'gpu_supervisor_task_wait_seconds_count'), 12);
    assert.equal(families.get('gpu_supervisor_task_run_seconds')?.type, 'histogram');
    assert.ok((valueOf(families, 'gpu_supervisor_task_run_seconds_sum') ?? -1) > 0);
    assert.equal(valueOf(families, 'gpu_supervisor_degraded'), 0);
    assert.equal(valueOf(families, 'gpu_supervisor_queue_size'), 0);
    assert.ok((valueOf(families, 'gpu_supervisor_supervisor_rss_mib') ?? 0) > 10);
    assert.ok((valueOf(families, 'gpu_supervisor_freed_ram_mib_total', { source: 'recycle' }) ?? -1) >= 0);

    // Per-worker series follow the live workers: a recycled worker's pid is gone from them.
    const live = (await livePids()).map(String).sort();
    const rss = families.get('gpu_supervisor_worker_rss_mib')?.samples ?? [];
    assert.deepEqual(rss.map((s) => s.labels.pid).sort(), live);
    for (const pid of due)
      assert.ok(!rss.some((s) => s.labels.pid === String(pid)), `recycled ${pid} is gone`);
    const byState = families.get('gpu_supervisor_workers')?.samples ?? [];
    assert.equal(
      byState.reduce((sum, s) => sum + s.value, 0),
      2,
    );
  });

  test('admin over HTTP: the token gates it; recycle shows up as reason admin', async () => {
    const before = (await scrape(front)).get('gpu_supervisor_recycles_total');
    const adminBefore = before?.samples.find((s) => s.labels.reason === 'admin')?.value ?? 0;
    const stats = await call(front.port, 'POST', '/admin/stats', { headers: auth });
    assert.equal(stats.status, 200);
    assert.equal((stats.json() as { workers: unknown[] }).workers.length, 2);

    const recycle = await call(front.port, 'POST', '/admin/recycle', { headers: auth, body: '{}' });
    assert.equal(recycle.status, 200, recycle.text);
    assert.equal((recycle.json() as { recycled: number[] }).recycled.length, 2);
    let families = await scrape(front);
    await waitUntil(async () => {
      families = await scrape(front);
      return valueOf(families, 'gpu_supervisor_recycles_total', { reason: 'admin' }) === adminBefore + 2;
    }, 'two admin recycles in /metrics');

    const history = await call(front.port, 'POST', '/admin/history', { headers: auth, body: '{"last":2}' });
    assert.equal(history.status, 200);
    assert.equal((history.json() as { tasks: unknown[] }).tasks.length, 2);
    const badArgs = await call(front.port, 'POST', '/admin/history', { headers: auth, body: '{"last":-1}' });
    assert.equal(badArgs.status, 400);
    expectFailure(badArgs.json(), 'E_BAD_REQUEST');

    const wrong = 'not-the-token-42';
    for (const headers of [{}, { authorization: `Bearer ${wrong}` }, { authorization: TOKEN }] as Array<
      Record<string, string>
    >) {
      const reply = await call(front.port, 'POST', '/admin/recycle', { headers });
      assert.equal(reply.status, 401);
      expectFailure(reply.json(), 'E_UNAUTHORIZED');
    }
    const refused = logLines.filter((l) => l.msg === 'http admin refused: bad token');
    assert.equal(refused.length, 3);
    assert.ok(!JSON.stringify(logLines).includes(wrong), 'a presented token is never logged');
    assert.ok(!JSON.stringify(logLines).includes(TOKEN), 'the admin token is never logged');
  });

  test('bad requests: JSON, size (1 MiB), routes and methods', async () => {
    const errorOf = (r: Reply): string => (r.json() as { error: { code: string } }).error.code;
    for (const body of ['{not json', '[1,2]', '"x"']) {
      const reply = await call(front.port, 'POST', '/admin/stats', { headers: auth, body });
      assert.equal(reply.status, 400, body);
      assert.equal(errorOf(reply), 'E_BAD_REQUEST');
    }
    const mib = 1024 * 1024;
    const overBy1 = await call(front.port, 'POST', '/admin/stats', {
      headers: auth,
      body: Buffer.alloc(mib + 1, 32),
    });
    assert.equal(overBy1.status, 413);
    const chunked = await call(front.port, 'POST', '/admin/stats', {
      headers: auth,
      chunks: [Buffer.alloc(mib / 2, 32), Buffer.alloc(mib / 2, 32), Buffer.alloc(16, 32)],
    });
    assert.equal(chunked.status, 413);
    const declared = await call(front.port, 'POST', '/admin/stats', {
      headers: { ...auth, 'content-length': 64 * mib },
      noBody: true,
    });
    assert.equal(declared.status, 413);
    assert.equal(errorOf(declared), 'E_BAD_REQUEST');
    const justUnder = await call(front.port, 'POST', '/admin/stats', {
      headers: auth,
      body: `{}${' '.repeat(mib - 2)}`,
    });
    assert.equal(justUnder.status, 200);

    // `/` is the admin console's page (issue 15; test/console-http.test.ts).
    for (const path of ['/nope', '/admin/shutdown', '/admin/unknown', '/metrics/x', '/console/nope.js']) {
      assert.equal((await call(front.port, 'GET', path)).status, 404, path);
    }
    const post = await call(front.port, 'POST', '/metrics');
    assert.equal(post.status, 405);
    assert.equal(post.headers.allow, 'GET, HEAD');
    const get = await call(front.port, 'GET', '/admin/stats', { headers: auth });
    assert.equal(get.status, 405);
    assert.equal(get.headers.allow, 'POST');
    assert.equal((await call(front.port, 'GET', '/healthz')).status, 200, 'still serving after all that');
  });

  test('without an admin token admin answers 403; a second front has its own registry', async () => {
    const config = { ...sup.config, http: { port: 0, host: '127.0.0.1' }, adminToken: null };
    tokenless = await startHttpFront(
      { supervisor: sup, config, log, forked: false },
      { processMetrics: false },
    );
    assert.ok(tokenless && tokenless.port !== front.port);
    const reply = await call(tokenless.port, 'POST', '/admin/stats', { headers: auth });
    assert.equal(reply.status, 403);
    expectFailure(reply.json(), 'E_UNAUTHORIZED');
    const taken = { ...config, http: { port: front.port, host: '127.0.0.1' } };
    await assert.rejects(
      startHttpFront({ supervisor: sup, config: taken, log, forked: false }, { processMetrics: false }),
      /cannot listen on 127\.0\.0\.1:\d+: .*EADDRINUSE/,
    );
    await sup.submit('one-more', { op: 'echo', value: 1 });
    const mine = await scrape(tokenless);
    assert.equal(
      valueOf(mine, 'gpu_supervisor_tasks_total', { status: 'ok' }),
      1,
      'counts from its own start',
    );
    assert.equal(valueOf(await scrape(front), 'gpu_supervisor_tasks_total', { status: 'ok' }), 10);
  });

  test('after shutdown: /readyz 503, admin 503 E_SHUTTING_DOWN, /healthz still 200; close ends keep-alive', async () => {
    await sup.shutdown();
    const ready = await call(front.port, 'GET', '/readyz');
    assert.equal(ready.status, 503);
    assert.match((ready.json() as { reason: string }).reason, /stopped/);
    const recycle = await call(front.port, 'POST', '/admin/recycle', { headers: auth });
    assert.equal(recycle.status, 503);
    expectFailure(recycle.json(), 'E_SHUTTING_DOWN');
    // A keep-alive connection left open: close() must end it, not wait out its grace period.
    const agent = new Agent({ keepAlive: true });
    try {
      assert.equal((await call(front.port, 'GET', '/healthz', { agent })).status, 200);
      await front.close();
    } finally {
      agent.destroy();
    }
    assert.ok(logLines.some((l) => l.msg === 'http closed'));
    assert.ok(!logLines.some((l) => /still open/.test(String(l.msg))), 'nothing had to be cut');
    await assert.rejects(call(front.port, 'GET', '/healthz'), /ECONNREFUSED/);
  });
});

describe('a degraded pool', () => {
  let sup: Supervisor | undefined;
  let front: HttpFront | undefined;
  after(async () => {
    await sup?.shutdown();
    await front?.close();
  });

  test('crash loop: /readyz 503 and gpu_supervisor_degraded 1; both recover once a worker stays up', async () => {
    const flag = join(scratchDir('metrics-crash-'), 'crash');
    writeFileSync(flag, 'on');
    sup = new Supervisor({
      worker: ECHO_WORKER,
      workers: 1,
      logLevel: 'silent',
      minUptimeMs: 1000,
      maxFailedStarts: 3,
      workerOptions: { crashFlagFile: flag },
    });
    const config = { ...sup.config, http: { port: 0, host: '127.0.0.1' } };
    const log = pino({ level: 'silent' });
    front = await startHttpFront({ supervisor: sup, config, log, forked: false }, { processMetrics: false });
    assert.ok(front);
    const port = front.port;
    await sup.start();
    let reason = '';
    await waitUntil(
      async () => {
        const reply = await call(port, 'GET', '/readyz');
        reason = reply.status === 503 ? (reply.json() as { reason: string }).reason : '';
        return /degraded/.test(reason);
      },
      '/readyz to say degraded',
      20_000,
    );
    assert.match(reason, /3 in a row/);
    assert.equal(valueOf(await scrape(port), 'gpu_supervisor_degraded'), 1);
    unlinkSync(flag);
    await waitUntil(async () => (await call(port, 'GET', '/readyz')).status === 200, 'ready again', 20_000);
    assert.equal(valueOf(await scrape(port), 'gpu_supervisor_degraded'), 0);
    assert.equal(await sup.run({ op: 'echo', value: 'back' }), 'back');
  });
});

describe('the daemon serves /metrics', () => {
  let daemon: SupervisorProcess | undefined;
  after(async () => {
    await daemon?.stop();
  });

  test('node dist/supervisor.js --http-port 0 logs its port, serves /metrics and /readyz, exits 0 on SIGTERM', async () => {
    const started = await httpDaemon();
    daemon = started.daemon;
    const { port } = started;
    assert.ok(Number.isInteger(port) && port > 0);
    // HTTP is up before the workers: their gauge is read once the pool is running.
    await daemon.waitForLog('supervisor ready', 30_000);
    const families = await scrape(port);
    assert.equal(
      families.get('gpu_supervisor_workers')?.samples.reduce((n, s) => n + s.value, 0),
      2,
    );
    assert.ok(families.has('gpu_supervisor_process_cpu_seconds_total'), 'the daemon exports process metrics');
    assert.equal((await call(port, 'GET', '/readyz')).status, 200);
    assert.equal((await call(port, 'POST', '/admin/stats')).status, 403, 'no token configured');
    assert.equal((await daemon.stop()).code, 0, 'SIGTERM: exit code 0');
  });

  test('while the workers start: /healthz is 200, /readyz 503; /readyz 200 once the pool runs', async () => {
    // Each worker's setup takes 3 s: the window a liveness probe must not mistake for a dead process.
    const { daemon: starting, port } = await httpDaemon(3000);
    try {
      assert.ok(!starting.logged('supervisor ready'), 'HTTP came up before the workers');
      assert.equal((await call(port, 'GET', '/healthz')).status, 200);
      assert.equal((await call(port, 'GET', '/readyz')).status, 503);
      await starting.waitForLog('supervisor ready', 30_000);
      assert.equal((await call(port, 'GET', '/readyz')).status, 200);
    } finally {
      assert.equal((await starting.stop()).code, 0);
    }
  });
});
