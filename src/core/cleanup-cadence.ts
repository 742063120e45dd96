/**
 * cleanup.everyTasks: the light cleanup runs after every N-th task a worker is sent, not after each.
 * Counted by send order, so tasks sent ahead (pipelining) count the same as tasks sent one by one:
 * the worker runs them in the order sent, and the N-th one carries the cleanup.
 */

/** Does the task sent now, the `sentSinceCleanup`-th since the last one that carried a cleanup, carry one? */
export function cleansUpAfter(sentSinceCleanup: number, everyTasks: number): boolean {
  return sentSinceCleanup >= Math.max(1, everyTasks);
}
