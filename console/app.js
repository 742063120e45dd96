import { Actions } from './actions.js';
import { getJson, login, logout } from './api.js';
import { renderHeader } from './header.js';
import { loadHistory } from './history.js';
import { LogTail } from './log-tail.js';
import { Timeline } from './timeline.js';
import { renderTotals } from './totals.js';
import { WorkersTable } from './workers-table.js';

// The console: signs in (or explains how to set a token), then follows GET /events.

const $ = (id) => document.getElementById(id);

const state = { access: 'none', info: undefined, snapshot: undefined, source: undefined };

const canAct = () => state.access === 'admin';
const workers = new WorkersTable($('workers').tBodies[0], {
  canAct,
  onRecycle: (pid) =>
    actions.run(
      'recycle',
      { pid },
      { label: `Recycle ${pid}`, question: `Recycle worker ${pid}?`, expected: 1 },
    ),
});
const timeline = new Timeline($('timeline'), $('mark-tip'));
const logTail = new LogTail($('log'));
const actions = new Actions({
  dialog: $('confirm'),
  dialogText: $('confirm-text'),
  status: $('action-status'),
  onDone: () => refreshHistory(),
});

function refreshHistory() {
  loadHistory($('history').tBodies[0], $('history-empty'), $('report')).catch((error) => {
    $('report').textContent = `history: ${error.message}`;
  });
}

function connection(text, live) {
  $('conn').textContent = text;
  $('conn').classList.toggle('live', live);
}

function applySnapshot(snapshot) {
  state.snapshot = snapshot;
  renderHeader($('header'), state.info, snapshot);
  workers.render(snapshot.workers, state.info);
  renderTotals($('totals'), snapshot);
}

function onHello(hello) {
  state.info = hello.info;
  state.access = hello.access;
  for (const sample of hello.timeline) timeline.addSample(sample);
  for (const mark of hello.marks) timeline.addMark(mark);
  for (const line of hello.log) logTail.add(line.t, line.msg, line.fields);
  applySnapshot(hello.snapshot);
  timeline.draw();
  for (const button of document.querySelectorAll('.act')) button.hidden = !canAct();
  $('sign-in').hidden = canAct();
}

function onStats(snapshot) {
  applySnapshot(snapshot);
  timeline.addSample({
    t: snapshot.t,
    workers: snapshot.workers
      .filter((w) => w.state !== 'exited')
      .map((w) => ({ slot: w.slot, pid: w.pid, rssMiB: w.rssMiB ?? null, gpuMiB: w.gpuMiB })),
  });
  timeline.draw();
}

function onUpdate({ events }) {
  let marks = false;
  for (const e of events) {
    if (e.type === 'recycle') {
      if (e.slot !== null) workers.replaced(e.slot, e.newPid);
      timeline.addMark({
        t: e.t,
        slot: e.slot,
        reason: e.reason,
        oldPid: e.oldPid,
        newPid: e.newPid,
        freedMiB: e.rssFreedMiB,
        gpuFreedMiB: e.gpuFreedMiB,
      });
      marks = true;
      actions.recycled(e);
    }
    if (e.type === 'cleanup' || e.type === 'recycle') {
      logTail.add(e.t, e.type, e);
    }
  }
  if (marks) timeline.draw();
}

function follow() {
  state.source?.close();
  const source = new EventSource('/events');
  state.source = source;
  source.addEventListener('hello', (m) => {
    connection('live', true);
    onHello(JSON.parse(m.data));
  });
  source.addEventListener('stats', (m) => onStats(JSON.parse(m.data)));
  source.addEventListener('update', (m) => onUpdate(JSON.parse(m.data)));
  source.addEventListener('error', () => {
    connection('reconnecting…', false);
    // A refused stream (the session expired) is not retried by the browser: sign in again.
    if (source.readyState === EventSource.CLOSED) void start();
  });
}

function showGate(session) {
  $('gate').hidden = false;
  $('main').hidden = true;
  $('no-token').hidden = session.tokenConfigured;
  $('login').hidden = !session.tokenConfigured;
  connection(session.tokenConfigured ? 'signed out' : 'no admin token', false);
  if (session.tokenConfigured) $('token').focus();
}

async function start() {
  const session = await getJson('/console/api/session');
  state.access = session.access;
  if (session.access === 'none') return showGate(session);
  $('gate').hidden = true;
  $('main').hidden = false;
  follow();
  refreshHistory();
}

$('login').addEventListener('submit', async (event) => {
  event.preventDefault();
  $('login-error').textContent = '';
  try {
    await login($('token').value);
    $('token').value = '';
    await start();
  } catch (error) {
    $('login-error').textContent = error.status === 401 ? 'Wrong token.' : error.message;
  }
});

$('sign-in').addEventListener('click', () => {
  state.source?.close();
  showGate({ tokenConfigured: true });
});

$('logout').addEventListener('click', async () => {
  await logout();
  state.source?.close();
  await start();
});

$('clear-cache').addEventListener('click', () =>
  actions.run(
    'clear-cache',
    {},
    {
      label: 'Clear cache',
      question: 'Clear the cache: replace every worker, one at a time?',
      expected: workers.pids().length,
    },
  ),
);

$('clear-history').addEventListener('click', () =>
  actions.run(
    'clear-history',
    {},
    {
      label: 'Clear history',
      question: 'Clear the task history and replace every worker?',
      expected: workers.pids().length,
    },
  ),
);

$('history-refresh').addEventListener('click', refreshHistory);

void start();
