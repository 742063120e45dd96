/**
 * Pre-spawn timing: how many tasks before it is due a worker's replacement must start to be ready in
 * time: a cold start (as last measured) over this worker's average task time, capped at half its N.
 */
export function tasksAhead(
  lastStartMs: number,
  worker: { averageTaskMs: number | undefined; recycleAfterTasks: number },
): number {
  const taskMs = worker.averageTaskMs;
  if (taskMs === undefined || lastStartMs === 0) return 0;
  return Math.min(Math.ceil(lastStartMs / Math.max(taskMs, 0.1)), Math.floor(worker.recycleAfterTasks / 2));
}
