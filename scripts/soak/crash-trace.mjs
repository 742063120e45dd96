// Traces an E_WORKER_CRASHED answer to the SIGKILL behind it. The supervisor names the worker and the
// task ("worker 123 exited while running task t9 (killed by SIGKILL)"), so the soak can accept a crash
// only for the task that was running in a worker it killed itself, and call any other crash a violation.
const KILLED_WHILE_RUNNING = /^worker (\d+) exited while running task (.+) \(killed by SIGKILL\)$/;

/**
 * Who killed the worker that ran task `id` (a key of `killed`'s values: 'kill-rate', 'kill-storm',
 * 'sigkill-worker'), or undefined when the message does not name a worker the soak killed while it ran
 * this task.
 */
export function killerOf(message, id, killed) {
  const match = KILLED_WHILE_RUNNING.exec(message ?? '');
  if (!match || match[2] !== id) return undefined;
  return killed.get(Number(match[1]));
}
