// The admin console in a real browser (Debian's chromium, driven by playwright-core).
/// <reference lib="dom" />
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { pino } from 'pino';
import type { BrowserContext, Page } from 'playwright-core';
import { DEFAULT_WORKER_MODULE, Supervisor, type SupervisorEventMap } from 'gpu-supervisor';
import { startHttpFront, type HttpFront } from '../dist/metrics/http-server.js';
import { browserSkip, launchBrowser } from './browser-helpers.js';
import { POOL_WORKER } from './fixtures/pool-helpers.js';
import { scratchDir } from './helpers.js';

const TOKEN = 'browser-test-token-7';
const silent = pino({ level: 'silent' });
type Recycle = SupervisorEventMap['recycle'];

interface Rig {
  sup: Supervisor;
  front: HttpFront;
  recycles: Recycle[];
  close: () => Promise<void>;
}

async function rig(
  options: ConstructorParameters<typeof Supervisor>[0],
  adminToken: string | null = TOKEN,
): Promise<Rig> {
  const dir = mkdtempSync(join(tmpdir(), 'console-browser-'));
  const sup = new Supervisor({
    worker: POOL_WORKER,
    workers: 2,
    logLevel: 'silent',
    socket: 'off',
    history: { path: join(dir, 'history.db'), flushMs: 50 },
    ...options,
  });
  const recycles: Recycle[] = [];
  sup.events.on('recycle', (e) => recycles.push(e));
  await sup.start();
  const config = { ...sup.config, http: { port: 0, host: '127.0.0.1' }, adminToken };
  const front = (await startHttpFront(
    { supervisor: sup, config, log: silent, forked: false },
    { processMetrics: false },
  ))!;
  return {
    sup,
    front,
    recycles,
    close: async () => {
      await front.close();
      await sup.shutdown();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** Console errors and page errors of every page: none is expected anywhere in this file (but CSP's). */
const problems: string[] = [];

async function openPage(context: BrowserContext, url: string, sink = problems): Promise<Page> {
  const page = await context.newPage();
  page.on('console', (m) => m.type() === 'error' && sink.push(`${m.text()}`));
  page.on('pageerror', (e) => sink.push(`${e.message}`));
  await page.goto(url);
  return page;
}

async function signIn(page: Page, token = TOKEN): Promise<void> {
  await page.locator('#token').fill(token);
  await page.locator('#login button[type=submit]').click();
}

async function shownPids(page: Page): Promise<number[]> {
  return page.$$eval('#workers tbody tr', (rows) => rows.map((r) => Number((r as HTMLElement).dataset.pid)));
}

async function livePids(sup: Supervisor): Promise<number[]> {
  return (await sup.stats()).workers.filter((w) => w.state !== 'exited').map((w) => w.pid);
}

const sorted = (xs: number[]): number[] => [...xs].sort((a, b) => a - b);

describe('the admin console in chromium', { skip: browserSkip }, () => {
  let browser: Awaited<ReturnType<typeof launchBrowser>>;
  before(async () => {
    browser = await launchBrowser();
  });
  after(async () => {
    await browser?.close();
  });

  test('refuses a wrong token, loads with the right one and shows the live pids', async () => {
    const r = await rig({});
    try {
      // The refused sign-in is a 401, which chromium logs as a failed load: the only error expected here.
      const logged: string[] = [];
      const page = await openPage(browser.context, r.front.url, logged);
      await page.locator('#login').waitFor({ state: 'visible' });
      await signIn(page, 'wrong-token-123');
      await page.locator('#login-error', { hasText: 'Wrong token.' }).waitFor();
      assert.equal(await page.locator('#main').isVisible(), false);
      await signIn(page);
      await page.locator('#main').waitFor({ state: 'visible' });
      await page.waitForFunction(() => document.querySelectorAll('#workers tbody tr').length === 2);
      assert.deepEqual(sorted(await shownPids(page)), sorted(await livePids(r.sup)));
      const header = await page.locator('#header').innerText();
      assert.match(header, new RegExp(`pid\\s+${process.pid}`));
      assert.match(header, /no GPU \(CPU execution provider\)/);
      assert.match(header, /ready \(2\/2 serving\)/);
      // The cookie is HttpOnly: the page's own script cannot read it.
      assert.equal(await page.evaluate(() => document.cookie), '');
      assert.deepEqual(logged, [
        'Failed to load resource: the server responded with a status of 401 (Unauthorized)',
      ]);
      await page.close();
    } finally {
      await r.close();
    }
  });

  test('without an admin token the page says how to set GPU_SUPERVISOR_ADMIN_TOKEN', async () => {
    const r = await rig({ workers: 1 }, null);
    try {
      const page = await openPage(browser.context, r.front.url);
      await page.locator('#no-token').waitFor({ state: 'visible' });
      assert.match(await page.locator('#no-token').innerText(), /GPU_SUPERVISOR_ADMIN_TOKEN/);
      assert.equal(await page.locator('#login').isVisible(), false);
      await page.close();
    } finally {
      await r.close();
    }
  });

  test('the table changes within 2 s when every-N recycles a worker; one series per worker, a mark per recycle', async () => {
    const r = await rig({ recycleEveryTasks: 3 });
    try {
      const page = await openPage(browser.context, r.front.url);
      await signIn(page);
      await page.waitForFunction(() => document.querySelectorAll('#workers tbody tr').length === 2);
      const before = await shownPids(page);
      for (let i = 0; i < 6 && r.recycles.length === 0; i++) await r.sup.run({ op: 'echo', value: i });
      await waitFor(() => r.recycles.length > 0, 'an every-n recycle');
      const recycle = r.recycles[0]!;
      assert.equal(recycle.reason, 'every-n');
      assert.ok(before.includes(recycle.oldPid));
      const seen = Date.now();
      await page.waitForFunction(
        ([oldPid, newPid]) => {
          const pids = Array.from(document.querySelectorAll('#workers tbody tr')).map((tr) =>
            Number((tr as HTMLElement).dataset.pid),
          );
          return pids.includes(newPid!) && !pids.includes(oldPid!);
        },
        [recycle.oldPid, recycle.newPid],
        { timeout: 2000 },
      );
      assert.ok(Date.now() - seen <= 2000);
      assert.equal(
        await page.locator(`#workers tr[data-pid="${recycle.newPid}"]`).getAttribute('class'),
        'fresh',
      );
      // More recycles, then the timeline: one RSS series per worker slot, one mark per recycle.
      for (let i = 0; i < 9; i++) await r.sup.run({ op: 'echo', value: i });
      await waitFor(() => r.recycles.length >= 3, 'three recycles');
      await new Promise((resolve) => setTimeout(resolve, 1500));
      const series = await page.$eval('#timeline .uplot', (root) =>
        Number((root as HTMLElement).dataset.series),
      );
      assert.equal(series, 2);
      // uPlot's legend lists the time plus each series.
      assert.equal(await page.locator('#timeline .u-legend .u-series').count(), 3);
      await marksMatch(page, r.recycles);
      const reasons = await page.$$eval('#timeline .recycle-mark', (marks) =>
        marks.map((m) => m.getAttribute('title')),
      );
      for (const title of reasons)
        assert.match(title!, /recycle \(every-n\): freed (-?\d+\.\d MiB|unknown); pid \d+ → \d+/);
      await page.close();
    } finally {
      await r.close();
    }
  });

  test('"Clear cache" replaces every pid shown, with progress, and prints what was freed', async () => {
    const r = await rig({ recycleEveryTasks: 0 });
    try {
      const page = await openPage(browser.context, r.front.url);
      await signIn(page);
      await page.waitForFunction(() => document.querySelectorAll('#workers tbody tr').length === 2);
      const before = await shownPids(page);
      await page.locator('#clear-cache').click();
      await page.locator('#confirm').waitFor({ state: 'visible' });
      await page.locator('#confirm-ok').click();
      await page.locator('#action-status', { hasText: /Clear cache: replac/ }).waitFor();
      await page.locator('#action-status[data-state=done]').waitFor({ timeout: 30_000 });
      const status = await page.locator('#action-status').innerText();
      for (const pid of before) assert.match(status, new RegExp(`${pid} → \\d+`));
      // Today's answer is { recycled }; the figures come from the recycle events the page saw.
      assert.match(status, /RAM \d+\.\d -> \d+\.\d MiB \(freed -?\d+\.\d MiB\)/);
      await page.waitForFunction(
        (old) => {
          const pids = Array.from(document.querySelectorAll('#workers tbody tr')).map((tr) =>
            Number((tr as HTMLElement).dataset.pid),
          );
          return pids.length === old.length && pids.every((p) => !old.includes(p));
        },
        before,
        { timeout: 3000 },
      );
      assert.deepEqual(sorted(await shownPids(page)), sorted(await livePids(r.sup)));
      await page.close();
    } finally {
      await r.close();
    }
  });

  test('"Clear cache" of one model, in place: the mlp session is released, no pid changes', async () => {
    // The default ONNX worker, which says what it holds: one task loads mlp on one worker.
    const r = await rig({ recycleEveryTasks: 0, worker: DEFAULT_WORKER_MODULE });
    try {
      const x = { type: 'float32', dims: [1, 512], data: new Float32Array(512) };
      await r.sup.run({ model: 'mlp', inputs: { x } });
      const holder = (await r.sup.stats()).workers.find((w) => w.sessions?.includes('mlp'))!.pid;
      const page = await openPage(browser.context, r.front.url);
      await signIn(page);
      await page.waitForFunction(() => document.querySelectorAll('#workers tbody tr').length === 2);
      const before = await shownPids(page);
      await page.locator('#clear-model').selectOption('mlp');
      await page.locator('#clear-light').check();
      await page.locator('#clear-cache').click();
      await page.locator('#confirm-ok').click();
      await page.locator('#action-status[data-state=done]').waitFor({ timeout: 30_000 });
      const status = await page.locator('#action-status').innerText();
      assert.match(status, new RegExp(`Released mlp in place on 1 worker: ${holder}\\.`));
      assert.match(status, /RAM \d+\.\d -> \d+\.\d MiB \(freed -?\d+\.\d MiB\)/);
      assert.equal(r.recycles.length, 0, 'nothing was recycled');
      assert.deepEqual(sorted(await livePids(r.sup)), sorted(before));
      assert.ok((await r.sup.stats()).workers.every((w) => !w.sessions?.includes('mlp')));
      await page.close();
    } finally {
      await r.close();
    }
  });

  test('"Clear history" empties the history view', async () => {
    const r = await rig({ recycleEveryTasks: 0 });
    try {
      for (let i = 0; i < 5; i++) await r.sup.run({ op: 'echo', value: i });
      const page = await openPage(browser.context, r.front.url);
      await signIn(page);
      await page.locator('#main').waitFor({ state: 'visible' });
      await waitForRows(page, 5);
      await page.locator('#clear-history').click();
      await page.locator('#confirm-ok').click();
      await page.locator('#action-status[data-state=done]').waitFor({ timeout: 30_000 });
      assert.match(await page.locator('#action-status').innerText(), /Removed \d+ history records/);
      await page.locator('#history-empty').waitFor({ state: 'visible' });
      assert.equal(await page.locator('#history tbody tr').count(), 0);
      await page.close();
    } finally {
      await r.close();
    }
  });

  test('no console errors on any page above; CSP blocks an injected inline script', async () => {
    assert.deepEqual(problems, []);
    const r = await rig({ workers: 1 });
    try {
      const page = await browser.context.newPage();
      await page.goto(r.front.url);
      const outcome = await page.evaluate(
        () =>
          new Promise<{ ran: boolean; directive: string }>((resolve) => {
            document.addEventListener('securitypolicyviolation', (e) =>
              resolve({
                ran: (window as unknown as { injected?: boolean }).injected === true,
                directive: e.violatedDirective,
              }),
            );
            const script = document.createElement('script');
            script.textContent = 'window.injected = true';
            document.body.append(script);
          }),
      );
      assert.deepEqual(outcome, { ran: false, directive: 'script-src-elem' });
      await page.close();
    } finally {
      await r.close();
    }
  });

  test('screenshot: a leaking worker under an RSS ceiling draws a sawtooth', async () => {
    const r = await rig({ recycleEveryTasks: 0, recycle: { rssMiB: 140 } });
    try {
      const page = await openPage(browser.context, r.front.url);
      await signIn(page);
      await page.locator('#main').waitFor({ state: 'visible' });
      const until = Date.now() + 14_000;
      while (Date.now() < until) {
        await Promise.all([r.sup.run({ op: 'leak', mib: 6 }), r.sup.run({ op: 'leak', mib: 6 })]);
        await new Promise((resolve) => setTimeout(resolve, 120));
      }
      await waitFor(() => r.recycles.filter((e) => e.reason === 'rss').length >= 2, 'rss recycles');
      await new Promise((resolve) => setTimeout(resolve, 1200));
      await page.locator('#history-refresh').click();
      await waitForRows(page, 1);
      await marksMatch(page, r.recycles);
      assert.equal(problems.length, 0, problems.join('\n'));
      const dir = process.env.CONSOLE_SCREENSHOT_DIR ?? scratchDir('console-shot-');
      mkdirSync(dir, { recursive: true });
      await page.screenshot({ path: join(dir, 'console.png'), fullPage: true });
      await page.locator('#timeline').screenshot({ path: join(dir, 'console-timeline.png') });
      await page.close();
    } finally {
      await r.close();
    }
  });
});

async function waitForRows(page: Page, n: number): Promise<void> {
  const deadline = Date.now() + 10_000;
  for (;;) {
    await page.locator('#history-refresh').click();
    await new Promise((resolve) => setTimeout(resolve, 200));
    if ((await page.locator('#history tbody tr').count()) >= n) return;
    if (Date.now() > deadline) throw new Error(`the history view never showed ${n} rows`);
  }
}

async function waitFor(check: () => boolean, what: string, timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
}

/** One mark per recycle: a replacement may finish (and be announced) a moment after its task. */
async function marksMatch(page: Page, recycles: Recycle[]): Promise<void> {
  const deadline = Date.now() + 5000;
  for (;;) {
    const marks = await page.locator('#timeline .recycle-mark').count();
    if (marks === recycles.length) return;
    if (Date.now() > deadline) assert.equal(marks, recycles.length, 'one timeline mark per recycle');
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}
