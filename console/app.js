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
  fillModels(hello.info.models ?? []);
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

/** "Clear cache" of one model: the configured ones, "every model" (all workers) first. */
function fillModels(models) {
  const select = $('clear-model');
  const chosen = select.value;
  while (select.options.length > 1) select.remove(1);
  for (const name of models) select.add(new Option(name, name));
  if (models.includes(chosen)) select.value = chosen;
  $('clear-light').disabled = select.value === '';
}

$('clear-model').addEventListener('change', () => {
  $('clear-light').disabled = $('clear-model').value === '';
  if ($('clear-light').disabled) $('clear-light').checked = false;
});

$('clear-cache').addEventListener('click', () => {
  const model = $('clear-model').value;
  if (model === '') {
    return actions.run(
      'clear-cache',
      {},
      {
        label: 'Clear cache',
        question: 'Clear the cache: replace every worker, one at a time?',
        expected: workers.pids().length,
      },
    );
  }
  const light = $('clear-light').checked;
  // A worker that cannot say what it holds counts as holding it (as the supervisor decides).
  const holders = (state.snapshot?.workers ?? []).filter(
    (w) => w.state !== 'exited' && (!w.sessions || w.sessions.includes(model)),
  ).length;
  return actions.run('clear-cache', light ? { model, mode: 'light' } : { model }, {
    label: `Clear ${model} cache`,
    question: light
      ? `Release the ${model} session in place on the workers holding it (no restart)?`
      : `Clear the ${model} cache: replace the workers holding its session, one at a time?`,
    expected: holders,
    light,
  });
});

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
