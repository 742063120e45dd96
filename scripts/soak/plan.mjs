// The fault plan: which fault fires after which normal task, drawn from the seed. Rates are per normal
// task; every kind fires at least once, so a short CI run still meets each of them.
export const FAULT_RATES = {
  'sigkill-worker': 1 / 200,
  'sigstop-worker': 1 / 1000,
  'hang-task': 1 / 1000,
  'throw-task': 1 / 500,
  'exit-task': 1 / 1000,
  'heap-oom-task': 1 / 2500,
  'malformed-message': 1 / 500,
  'oversized-message': 1 / 1000,
  'admin-recycle': 1 / 2500,
  'admin-clear-cache': 1 / 4000,
  'socket-disconnect': 1 / 1000,
  'kill-storm': 1 / 10_000,
};

/**
 * Kinds planned only when asked for. None today: the kill storm joined the default mix once the pool
 * stopped counting kills from outside as failed starts (issue 13).
 */
export const OPT_IN = new Set();

/** Kinds whose fault ends a worker (or may): the pool must be full again within the recovery limit. */
export const ENDS_WORKER = new Set([
  'sigkill-worker',
  'sigstop-worker',
  'hang-task',
  'exit-task',
  'heap-oom-task',
  'admin-recycle',
  'admin-clear-cache',
  'kill-storm',
]);

/** Returns [{ at, kind }] sorted by `at` (the normal-task index after which the fault fires). */
export function faultPlan(random, tasks, kinds) {
  const plan = [];
  for (const kind of kinds) {
    const count = Math.max(1, Math.round(tasks * FAULT_RATES[kind]));
    for (let i = 0; i < count; i++)
      plan.push({ at: random.int(Math.floor(tasks * 0.02), Math.floor(tasks * 0.97)), kind });
  }
  return plan.sort((a, b) => a.at - b.at);
}
