/**
 * Which workers an admin `clear-cache` touches, decided once from what each worker said it holds.
 * Pure: the admin command hands in the pool's view and carries out the plan (recycle them, or have
 * each release the session in place with `mode: 'light'`).
 */

export type ClearCacheMode = 'recycle' | 'light';

export interface ClearCacheRequest {
  /** One model's cache; absent: every worker (whatever it holds). */
  model?: string | undefined;
  /** Only this worker. */
  pid?: number | undefined;
  mode: ClearCacheMode;
}

export interface WorkerSessions {
  pid: number;
  /** Its pool slot: what tells threads apart (they share the supervisor's pid). */
  slot: number;
  /** The models whose session it holds; undefined when its module cannot tell (it may hold any). */
  sessions?: readonly string[] | undefined;
}

export type ClearCachePlan =
  | { kind: 'unknown-model'; model: string }
  | { kind: ClearCacheMode; targets: Array<{ pid: number; slot: number }> };

/**
 * A model is known if the config serves it or a worker holds its session (a custom module may load
 * models of its own); an unknown one is refused rather than answered with nothing done. A worker
 * that cannot tell what it holds is touched: a cache clear must not leave a session behind.
 */
export function planCacheClear(
  request: ClearCacheRequest,
  configModels: readonly string[],
  workers: readonly WorkerSessions[],
): ClearCachePlan {
  const { model, pid, mode } = request;
  const chosen = pid === undefined ? workers : workers.filter((w) => w.pid === pid);
  const targets = (list: readonly WorkerSessions[]): Array<{ pid: number; slot: number }> =>
    list.map(({ pid, slot }) => ({ pid, slot }));
  if (model === undefined) return { kind: mode, targets: targets(chosen) };
  const held = workers.some((w) => w.sessions?.includes(model));
  if (!held && !configModels.includes(model)) return { kind: 'unknown-model', model };
  const holders = chosen.filter((w) => w.sessions === undefined || w.sessions.includes(model));
  return { kind: mode, targets: targets(holders) };
}
