/**
 * Was a worker's death the kernel's OOM killer? The kernel sends a plain SIGKILL, which says nothing
 * by itself; the cgroup's `memory.events` counts its kills. A SIGKILL the supervisor did not send,
 * with `oom_kill` grown since the reading taken before, is named as the OOM killer's. Pure.
 */
export interface DeathFacts {
  signal: string | null;
  /** The supervisor ended this worker itself (a kill or a stop it sent). */
  sentByUs: boolean;
  /** `oom_kill` before (when the worker took its task) and now; undefined where unreadable. */
  oomKillsBefore: number | undefined;
  oomKillsNow: number | undefined;
}

export function killedByKernelOom(facts: DeathFacts): boolean {
  const { signal, sentByUs, oomKillsBefore: before, oomKillsNow: now } = facts;
  return signal === 'SIGKILL' && !sentByUs && before !== undefined && now !== undefined && now > before;
}
