import { getJson } from './api.js';
import { el } from './format.js';

/** The last tasks, and the savings report with its memory timeline when the history store is open. */
export async function loadHistory(tbody, empty, report) {
  const { tasks } = await getJson('/console/api/history');
  tbody.replaceChildren(
    ...tasks.map((t) =>
      el(
        'tr',
        {},
        el('td', {}, t.at ? new Date(t.at).toLocaleTimeString([], { hour12: false }) : ''),
        el('td', {}, t.id),
        el('td', {}, t.model ?? ''),
        el('td', {}, t.workerPid ?? ''),
        el('td', { class: t.ok ? 'good' : 'bad' }, t.ok ? 'ok' : (t.code ?? 'failed')),
        el('td', {}, t.queueMs ?? ''),
        el('td', {}, t.runMs ?? ''),
      ),
    ),
  );
  empty.hidden = tasks.length > 0;
  const saved = await getJson('/console/api/report');
  if (!saved.available) {
    report.replaceChildren(el('p', {}, `No savings report: ${saved.reason}`));
    return;
  }
  report.replaceChildren(
    el('h3', {}, 'Savings report'),
    el('pre', {}, saved.text),
    el('img', {
      src: `/console/api/report.svg?at=${Date.now()}`,
      alt: 'memory timeline from the history store',
    }),
  );
}
