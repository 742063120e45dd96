import { duration, el, mib } from './format.js';

const FRESH_MS = 3000;

/**
 * One row per slot. A row whose pid changed (its worker was replaced) is highlighted for a few
 * seconds; a recycle event changes the pid at once, before the next snapshot.
 */
export class WorkersTable {
  constructor(tbody, { onRecycle, canAct }) {
    this.tbody = tbody;
    this.onRecycle = onRecycle;
    this.canAct = canAct;
    this.rows = new Map();
    this.recycleEvery = 0;
  }

  render(workers, info) {
    this.recycleEvery = info.recycleEveryTasks;
    const seen = new Set();
    for (const w of [...workers].sort((a, b) => a.slot - b.slot)) {
      if (w.state === 'exited') continue;
      seen.add(w.slot);
      this.update(w);
    }
    for (const [slot, row] of this.rows) {
      if (!seen.has(slot)) {
        row.tr.remove();
        this.rows.delete(slot);
      }
    }
  }

  /** A recycle replaced `oldPid` in `slot`: show the new pid now. */
  replaced(slot, newPid) {
    const row = this.rows.get(slot);
    if (!row || newPid === undefined || row.pid === newPid) return;
    this.update({ ...row.worker, pid: newPid, state: 'starting', tasksDone: 0, inFlight: 0, uptimeMs: 0 });
  }

  update(w) {
    let row = this.rows.get(w.slot);
    if (!row) {
      const cells = Array.from({ length: 9 }, () => el('td'));
      const button = el('button', { class: 'recycle act', type: 'button' }, 'Recycle');
      button.addEventListener('click', () => this.onRecycle(row.pid));
      const tr = el('tr', { 'data-slot': w.slot }, ...cells, el('td', {}, button));
      row = { tr, cells, button, pid: undefined, worker: w };
      this.rows.set(w.slot, row);
      const after = [...this.rows.entries()].filter(([slot]) => slot > w.slot).sort((a, b) => a[0] - b[0])[0];
      this.tbody.insertBefore(tr, after ? after[1].tr : null);
    }
    if (row.pid !== undefined && row.pid !== w.pid) this.highlight(row);
    row.pid = w.pid;
    row.worker = w;
    row.tr.dataset.pid = String(w.pid);
    row.button.disabled = !this.canAct();
    const every = this.recycleEvery > 0 ? String(this.recycleEvery) : '∞';
    const values = [
      w.slot,
      w.threadId === undefined ? w.pid : `${w.pid}/t${w.threadId}`,
      w.state,
      `${w.tasksDone} / ${every}`,
      w.inFlight,
      mib(w.rssMiB),
      mib(w.gpuMiB),
      duration(w.uptimeMs),
      w.leakMiBPerTask === null || w.leakMiBPerTask === undefined ? '–' : w.leakMiBPerTask.toFixed(2),
    ];
    values.forEach((value, i) => {
      const text = String(value);
      if (row.cells[i].textContent !== text) row.cells[i].textContent = text;
    });
    row.cells[1].className = 'pid';
  }

  highlight(row) {
    row.tr.classList.add('fresh');
    clearTimeout(row.freshTimer);
    row.freshTimer = setTimeout(() => row.tr.classList.remove('fresh'), FRESH_MS);
  }

  pids() {
    return [...this.rows.values()].map((row) => row.pid);
  }
}
