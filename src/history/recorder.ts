import type { SupervisorEvents } from '../events.js';
import type { HistoryStore } from './store.js';

/**
 * Feeds the store from the supervisor's events. Each listener only builds a row and appends it to
 * the store's buffer: nothing here waits on the disk. Returns the unsubscribe.
 */
export function attachHistory(events: SupervisorEvents, store: HistoryStore): () => void {
  // Cleanup and recycle events carry no slot; worker-ready does, so remember it per pid. Kept past
  // worker-exit (a recycle event comes after the old worker's exit), bounded by dropping the oldest.
  const slots = new Map<number, number>();
  const offs = [
    events.on('worker-ready', (e) => {
      slots.set(e.pid, e.slot);
      if (slots.size > 4096) slots.delete(slots.keys().next().value!);
      store.addEvent({
        ...blank(),
        at: Date.now(),
        kind: 'start',
        pid: e.pid,
        slot: e.slot,
        rssAfterMiB: e.rssMiB,
        ms: e.startMs,
        phases: e.phases,
      });
    }),
    events.on('task', (e) =>
      store.addTask({
        id: e.id,
        model: e.model,
        workerPid: e.workerPid,
        ok: e.ok,
        code: e.code,
        queueMs: e.queueMs,
        runMs: e.runMs,
        at: Date.now(),
      }),
    ),
    events.on('cleanup', (e) =>
      store.addEvent({
        ...blank(),
        at: Date.now(),
        kind: 'cleanup',
        pid: e.pid,
        slot: slots.get(e.pid),
        mode: e.mode,
        rssBeforeMiB: e.rssBeforeMiB,
        rssAfterMiB: e.rssAfterMiB,
        rssFreedMiB: e.freedMiB,
        gpuBeforeMiB: e.gpuBeforeMiB,
        gpuAfterMiB: e.gpuAfterMiB,
        gpuFreedMiB: e.gpuFreedMiB,
        ms: e.ms,
      }),
    ),
    events.on('recycle', (e) =>
      store.addEvent({
        ...blank(),
        at: Date.now(),
        kind: 'recycle',
        pid: e.oldPid,
        newPid: e.newPid,
        slot: slots.get(e.oldPid) ?? (e.newPid === undefined ? undefined : slots.get(e.newPid)),
        reason: e.reason,
        detail: e.detail,
        rssBeforeMiB: e.rssBeforeMiB,
        rssAfterMiB: e.rssAfterMiB,
        rssFreedMiB: e.rssFreedMiB,
        gpuBeforeMiB: e.gpuBeforeMiB,
        gpuAfterMiB: e.gpuBaselineMiB,
        gpuFreedMiB: e.gpuFreedMiB,
        tasksDone: e.tasksDone,
        ms: e.ms,
      }),
    ),
  ];
  return () => {
    for (const off of offs) off();
    slots.clear();
  };
}

function blank() {
  return {
    newPid: undefined,
    slot: undefined,
    mode: undefined,
    reason: undefined,
    detail: undefined,
    rssBeforeMiB: undefined,
    rssAfterMiB: undefined,
    rssFreedMiB: undefined,
    gpuBeforeMiB: undefined,
    gpuAfterMiB: undefined,
    gpuFreedMiB: undefined,
    tasksDone: undefined,
    ms: undefined,
  };
}
