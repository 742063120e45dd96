import type { DrainCause } from './life.js';
import { tasksAhead } from './prespawn.js';
import {
  decideAfterTask,
  decideWhenIdle,
  type RecyclePolicyOptions,
  type RecycleReason,
} from './recycle-policy.js';

/**
 * Every verdict on a worker, from one function of complete facts: keep it (and how many more tasks it
 * may take now), drain it (take no more, replace it once it holds nothing), or retire it (idle above
 * minWorkers: it leaves and nothing replaces it). The scheduler asks at every moment that can change
 * the answer, and carries out what it is told; nothing else decides.
 */
export interface WorkerFacts {
  /** Tasks sent to this worker process so far: what `recycleEveryTasks` caps. */
  sent: number;
  /** Its own N (recycleEveryTasks plus its jitter draw); 0 = never. */
  recycleAfter: number;
  /** Tasks it holds now (sent, unanswered) and cleanup reports still to come. */
  held: number;
  cleaning: number;
  /** RSS after its last cleanup, its GPU memory (process attribution only), its leak rate. */
  rssMiB: number | undefined;
  gpuMiB: number | undefined;
  leakMiBPerTask: number | undefined;
  /** Growth per task between its last two cleanup readings: known long before the leak rate. */
  lastStepMiBPerTask: number | undefined;
  /** False for a thread: its memory figures are the whole process's, so rss/leak/gpu do not apply. */
  ownMemory: boolean;
  ageMs: number;
  /** Since it last held nothing (0 while busy). */
  idleMs: number;
  averageTaskMs: number | undefined;
}

export interface PoolFacts {
  /** Live workers serving slots, this one included, and the floor the pool shrinks to. */
  liveWorkers: number;
  minWorkers: number;
  /** The last worker start, fork to ready (ms): how early a pre-spawned successor must begin. */
  lastStartMs: number;
}

export interface VerdictOptions {
  policy: RecyclePolicyOptions;
  pipelineDepth: number;
  idleTimeoutMs: number;
  /** Start the successor of a worker due by count before it is due (recycle.prespawn, no spares). */
  prespawn: boolean;
}

/**
 * `dispatch`: looking for room for a task; `cleaned`: its cleanup figures arrived; `idle`: an idle
 * worker's timer fired (the idle timeout applies only then).
 */
export type Moment = 'dispatch' | 'cleaned' | 'idle';

export type Verdict =
  | {
      kind: 'keep';
      /** Tasks it may be sent now (0: none, e.g. a verdict on its last task is due first). */
      room: number;
      /** Start its successor now (pre-spawn: it becomes due by count within a cold start). */
      prespawn: boolean;
    }
  | { kind: 'drain'; cause: DrainCause; preventive: boolean }
  | { kind: 'retire'; detail: string };

/** Reasons that wait for a free recycle.maxConcurrent turn; a crossed ceiling or a death never waits. */
const PREVENTIVE: ReadonlySet<RecycleReason> = new Set(['every-n', 'leak', 'max-age', 'admin']);

export function isPreventive(reason: RecycleReason): boolean {
  return PREVENTIVE.has(reason);
}

export function decide(
  worker: WorkerFacts,
  pool: PoolFacts,
  moment: Moment,
  options: VerdictOptions,
): Verdict {
  const { policy } = options;
  const memory = worker.ownMemory;
  const after = decideAfterTask(
    {
      tasksDone: worker.sent,
      recycleAfterTasks: worker.recycleAfter,
      rssMiB: memory ? worker.rssMiB : undefined,
      gpuMiB: memory ? worker.gpuMiB : undefined,
      ageMs: worker.ageMs,
      leakMiBPerTask: memory ? worker.leakMiBPerTask : undefined,
    },
    policy,
  );
  if (after.recycle) return drain(after.reason, after.detail);
  if (moment === 'idle' && worker.held === 0) {
    const idle = decideWhenIdle(
      { ageMs: worker.ageMs, idleMs: worker.idleMs, poolSize: pool.liveWorkers, minWorkers: pool.minWorkers },
      { idleTimeoutMs: options.idleTimeoutMs, maxAgeMs: policy.maxAgeMs ?? 0 },
    );
    if (idle.recycle && idle.reason === 'idle') return { kind: 'retire', detail: idle.detail };
    if (idle.recycle) return drain(idle.reason, idle.detail);
  }
  return { kind: 'keep', room: room(worker, options), prespawn: prespawnNow(worker, pool, options) };
}

function drain(reason: RecycleReason, detail: string): Verdict {
  return { kind: 'drain', cause: { reason, detail }, preventive: isPreventive(reason) };
}

/**
 * How many more tasks it may take now: up to pipelineDepth held, never past its N (the cap counts
 * tasks sent), and none ahead while near its RSS ceiling, where each task waits for the verdict on
 * the one before.
 */
function room(worker: WorkerFacts, options: VerdictOptions): number {
  const { pipelineDepth, policy } = options;
  let free = pipelineDepth - worker.held;
  if (policy.recycleEveryTasks > 0 && worker.recycleAfter > 0)
    free = Math.min(free, worker.recycleAfter - worker.sent);
  if (nearCeiling(worker, options)) free = worker.held > 0 || worker.cleaning > 0 ? 0 : Math.min(free, 1);
  return Math.max(0, free);
}

/**
 * Close enough to its RSS ceiling that the tasks it may hold could cross it: within 5% of the
 * ceiling, or (pipelineDepth + 1) tasks' worth of its measured growth (the leak rate, or the last
 * step between two readings while the rate is not known yet).
 */
export function nearCeiling(worker: WorkerFacts, options: VerdictOptions): boolean {
  const ceiling = options.policy.rssMiB ?? 0;
  if (ceiling <= 0 || !worker.ownMemory || worker.rssMiB === undefined) return false;
  // The last step stands in only until the rate is known: one step after a trim (a big drop, then the
  // arenas growing back) would otherwise hold pipelining back long after the rate says otherwise.
  const perTask = Math.max(0, worker.leakMiBPerTask ?? worker.lastStepMiBPerTask ?? 0);
  const growth = (options.pipelineDepth + 1) * perTask;
  return worker.rssMiB + Math.max(0.05 * ceiling, growth) >= ceiling;
}

function prespawnNow(worker: WorkerFacts, pool: PoolFacts, options: VerdictOptions): boolean {
  if (!options.prespawn || options.policy.recycleEveryTasks <= 0 || worker.recycleAfter <= 0) return false;
  const ahead = tasksAhead(pool.lastStartMs, {
    averageTaskMs: worker.averageTaskMs,
    recycleAfterTasks: worker.recycleAfter,
  });
  // The task about to be sent counts: its successor is wanted by the time the N-th goes out.
  return worker.sent + 1 + ahead >= worker.recycleAfter;
}
