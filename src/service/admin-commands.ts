import { ErrorCode, SupervisorError, describeValue } from '../protocol/errors.js';
import type { AdminCommand } from '../protocol/messages.js';
import type { RecycleReason } from '../core/recycle-policy.js';
import type { HistoryService } from '../history/service.js';
import type { SupervisorEvents, SupervisorEventMap } from '../events.js';
import type { RecentTasks } from './recent-tasks.js';
import { planCacheClear, type ClearCacheRequest, type WorkerSessions } from '../core/cache-clear.js';
import type { InPlaceRelease } from '../pool/session-release.js';
import {
  formatAdminCleanup,
  summarizeAdminCleanup,
  summarizeInPlace,
  type AdminCleanup,
} from './admin-cleanup.js';

/** What an admin command may use of the supervisor. */
export interface AdminParts {
  /** The supervisor's own stats snapshot. */
  stats(): Promise<unknown>;
  recycle(reason: RecycleReason, onlyPid?: number): Promise<number[]>;
  events: SupervisorEvents;
  /** Where the one `admin cleanup` line goes. */
  logCleanup(fields: Record<string, unknown>, message: string): void;
  workerPids(): Promise<number[]>;
  /** The models the config serves (what clear-cache { model } knows besides what workers hold). */
  models: readonly string[];
  /** The slots' workers, each with the models whose session it holds (undefined: it cannot tell). */
  workerSessions(): Promise<WorkerSessions[]>;
  /** The worker serving `slot` releases `model`'s session in place (undefined: gone meanwhile). */
  releaseSession(slot: number, model: string): Promise<InPlaceRelease | undefined>;
  recent: RecentTasks;
  historySize: number;
  history: HistoryService | undefined;
  shutdown(): void;
  /** Refuses commands that change the pool once the supervisor is not running. */
  assertRunning(): void;
}

/**
 * One admin command: the argument keys it takes, its arguments checked first (E_BAD_REQUEST), then
 * run. A key it does not take is refused too: a typo (`{ worker: 123 }` for `{ pid: 123 }`) must not
 * turn a one-worker recycle into a recycle of every worker.
 */
interface AdminEntry<A> {
  keys: readonly string[];
  validate(args: Record<string, unknown>): A;
  run(parts: AdminParts, args: A): Promise<unknown> | unknown;
}

const none = (): undefined => undefined;

function entry<A>(
  keys: readonly string[],
  validate: (args: Record<string, unknown>) => A,
  run: AdminEntry<A>['run'],
): AdminEntry<A> {
  return { keys, validate, run };
}

function pidArg(pid: unknown): number | undefined {
  if (pid !== undefined && (typeof pid !== 'number' || !Number.isInteger(pid))) {
    throw badRequest(`args.pid ${describeValue(pid)} is not one of this supervisor's workers`);
  }
  return pid;
}

/** `recycle`: every worker, or the one with `args.pid`. */
const recycleWorkers = entry(
  ['pid'],
  (args) => pidArg(args.pid),
  async (parts, pid) => {
    parts.assertRunning();
    if (pid !== undefined && !(await parts.workerPids()).includes(pid)) {
      throw badRequest(`args.pid ${JSON.stringify(pid)} is not one of this supervisor's workers`);
    }
    return replaceMeasured(parts, command(pid), pid);
  },
);

/**
 * `clear-cache`: like `recycle` without `args.model`. With it, only the workers holding that model's
 * session are recycled, or with `mode: 'light'` each releases it in place and collects (no kill).
 */
const clearCache = entry(
  ['pid', 'model', 'mode'],
  (args): ClearCacheRequest => {
    const { model, mode } = args;
    if (model !== undefined && (typeof model !== 'string' || model.length === 0))
      throw badRequest(`args.model must be a non-empty string, got ${describeValue(model)}`);
    if (mode !== undefined && mode !== 'recycle' && mode !== 'light')
      throw badRequest(`args.mode must be "recycle" or "light", got ${describeValue(mode)}`);
    if (mode === 'light' && model === undefined)
      throw badRequest('args.mode "light" releases one model\'s session in place: it needs args.model');
    return { pid: pidArg(args.pid), model, mode: mode ?? 'recycle' };
  },
  async (parts, request: ClearCacheRequest) => {
    parts.assertRunning();
    const { pid, model } = request;
    if (model === undefined) return recycleWorkers.run(parts, pid);
    const workers = await parts.workerSessions();
    if (pid !== undefined && !workers.some((w) => w.pid === pid)) {
      throw badRequest(`args.pid ${JSON.stringify(pid)} is not one of this supervisor's workers`);
    }
    const plan = planCacheClear(request, parts.models, workers);
    if (plan.kind === 'unknown-model') {
      throw new SupervisorError(
        ErrorCode.MODEL_NOT_FOUND,
        `unknown model "${model}"; this supervisor serves ${parts.models.join(', ') || 'no models'}`,
      );
    }
    const what = `clear-cache ${model}${plan.kind === 'light' ? ' (light)' : ''}`;
    const fields = { model, mode: plan.kind };
    if (plan.kind === 'light') return releaseInPlace(parts, what, model, plan.targets);
    // Threads share one pid: recycling it once replaces them all.
    const pids = [...new Set(plan.targets.map((t) => t.pid))];
    return { ...(await replaceMeasured(parts, what, pids, fields)), ...fields };
  },
);

/** Each target releases `model`'s session in place, one at a time; answered and logged once. */
async function releaseInPlace(
  parts: AdminParts,
  what: string,
  model: string,
  targets: ReadonlyArray<{ slot: number }>,
): Promise<AdminCleanup & { model: string; mode: 'light' }> {
  const releases: InPlaceRelease[] = [];
  for (const { slot } of targets) {
    const release = await parts.releaseSession(slot, model);
    if (release) releases.push(release);
  }
  const summary = { ...summarizeInPlace(releases), model, mode: 'light' as const };
  parts.logCleanup({ command: what, ...summary }, 'admin cleanup');
  return summary;
}

const command = (pid: number | undefined): string => (pid === undefined ? 'recycle all' : `recycle ${pid}`);

/**
 * Recycles and answers in the seed's terms: the pids replaced, RAM and GPU before -> after and freed
 * over them and per worker (from their recycle events), logged once as `admin cleanup`.
 */
async function replaceMeasured(
  parts: AdminParts,
  what: string,
  /** One pid, a list of them (one at a time, in order), or every worker. */
  which?: number | readonly number[],
  logged: Record<string, unknown> = {},
): Promise<AdminCleanup> {
  const seen: Array<SupervisorEventMap['recycle']> = [];
  const off = parts.events.on('recycle', (event) => seen.push(event));
  const recycled: number[] = [];
  try {
    if (typeof which === 'object') {
      for (const pid of which) recycled.push(...(await parts.recycle('admin', pid)));
    } else recycled.push(...(await parts.recycle('admin', which)));
  } finally {
    off();
  }
  const summary = summarizeAdminCleanup(seen.filter((e) => recycled.includes(e.oldPid)));
  // A worker replaced by a recycle of its own meanwhile is gone all the same; it has no admin figures.
  summary.recycled = recycled;
  parts.logCleanup({ command: what, ...logged, ...summary }, 'admin cleanup');
  return summary;
}

export { formatAdminCleanup };

/** The admin commands, by name: one table, so each is checked and run the same way from every front. */
export const ADMIN_TABLE: { [C in AdminCommand]: AdminEntry<never> | AdminEntry<unknown> } = {
  stats: entry([], none, (parts) => parts.stats()),
  history: entry(
    ['last'],
    (args) => lastArg(args.last),
    (parts, last: number | undefined) => {
      // Newest first, from the store when it can be read, else from the in-memory ring.
      const stored = parts.history?.recentTasks(last ?? parts.historySize);
      return { tasks: stored ?? parts.recent.list(last).reverse() };
    },
  ),
  report: entry(
    ['svg'],
    (args) => args.svg === true,
    (parts, svg: boolean) => {
      const service = parts.history;
      if (!service) throw badRequest('report needs the history store: set history.path (--history FILE)');
      return storeCall(() => service.report({ svg }));
    },
  ),
  shutdown: entry([], none, (parts) => {
    parts.shutdown();
    return { shuttingDown: true };
  }),
  recycle: recycleWorkers,
  'clear-cache': clearCache,
  'clear-history': entry([], none, async (parts) => {
    parts.assertRunning();
    const ringRemoved = parts.recent.clear();
    const service = parts.history;
    const removed = service ? storeCall(() => service.clear()) : ringRemoved;
    return { removed, ...(await replaceMeasured(parts, 'clear-history')) };
  }),
};

export async function runAdmin(
  parts: AdminParts,
  command: AdminCommand,
  args: Record<string, unknown>,
): Promise<unknown> {
  const command_ = ADMIN_TABLE[command] as AdminEntry<unknown>;
  const unknown = Object.keys(args).filter((key) => !command_.keys.includes(key));
  if (unknown.length > 0) {
    const takes = command_.keys.length > 0 ? `it takes ${command_.keys.join(', ')}` : 'it takes none';
    throw badRequest(
      `unknown args for ${command}: ${unknown.map((key) => describeValue(key)).join(', ')}; ${takes}`,
    );
  }
  return command_.run(parts, command_.validate(args));
}

function badRequest(message: string): SupervisorError {
  return new SupervisorError(ErrorCode.BAD_REQUEST, message);
}

/** A history database failure is the store's, not the caller's: reported as E_TASK_FAILED. */
function storeCall<T>(call: () => T): T {
  try {
    return call();
  } catch (error) {
    throw new SupervisorError(ErrorCode.TASK_FAILED, `history store: ${(error as Error).message}`, {
      cause: error,
    });
  }
}

/** The most rows one history answer carries: one query blocks the supervisor while it reads them. */
const MAX_HISTORY_ROWS = 10_000;

function lastArg(last: unknown): number | undefined {
  if (last === undefined) return undefined;
  if (typeof last !== 'number' || !Number.isInteger(last) || last < 1 || last > MAX_HISTORY_ROWS) {
    throw badRequest(
      `args.last must be an integer from 1 to ${MAX_HISTORY_ROWS}, got ${describeValue(last)}`,
    );
  }
  return last;
}
