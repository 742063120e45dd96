/**
 * Where a worker's start went, in ms. The worker measures its own part on its own clock (origin: its
 * process start); the parent measures the fork call and the whole start, fork to ready received.
 */

/** How a session's optimized-model cache served it: see README "Session cache". */
export type SessionCacheOutcome = 'off' | 'miss' | 'hit' | 'rebuilt' | 'bypass';

/** One session the worker module created before ready (workerOptions.preload). */
export interface SessionStart {
  model: string;
  ms: number;
  cache: SessionCacheOutcome;
}

/** The worker's own measure of its start (the ready message carries it). */
export interface WorkerStartPhases {
  /** Node's own start: the process's time origin to the first line of the worker runtime (process only). */
  bootMs?: number;
  /** The runtime's imports: its first line to listening for init (process only). */
  runtimeMs?: number;
  /** Listening to the init message in hand (the message in flight, its config deserialized). */
  initMs?: number;
  /** The worker module's import. */
  moduleMs?: number;
  /** The module's `setup`, all of it: `bindingMs` and `sessions` are parts of it. */
  setupMs?: number;
  /** The native binding's load (onnxruntime-node), as the module reports it; part of setup. */
  bindingMs?: number;
  /** Sessions created during setup, in the order they finished; part of setup. */
  sessions?: SessionStart[];
  /**
   * CPU time the worker process used from its start to ready, all its threads (process only): what a
   * start takes from the other workers on a busy host, less sensitive to load than the wall-clock phases.
   */
  cpuMs?: number;
  /** The module's own named steps of setup (a CUDA context's creation, a weight upload); part of setup. */
  steps?: StartStep[];
}

export interface StartStep {
  name: string;
  ms: number;
}

/** A whole start as the pool reports it (worker-ready event, stats, history). */
export interface StartPhases extends WorkerStartPhases {
  /** The parent's measure: fork (or thread start) to the ready message handled. */
  totalMs: number;
  /** The parent's fork call itself (spawning the process up to its exec), less its overlap with boot. */
  spawnMs: number;
  /**
   * What neither clock saw: the ready message's trip back, the time between the process's exec and
   * its time origin, and the parent's own bookkeeping (total minus the other top-level phases).
   */
  readyMs: number;
}

const round = (ms: number): number => Math.floor(ms * 100) / 100;

/** The top-level phases, in order; they add up to totalMs (bindingMs and sessions are inside setupMs). */
export const TOP_LEVEL_PHASES = ['spawnMs', 'bootMs', 'runtimeMs', 'initMs', 'moduleMs', 'setupMs'] as const;

/**
 * Joins the worker's phases with the parent's measures. Figures are rounded down to 0.01 ms, so their
 * sum never exceeds what was measured. The fork call returns once the child has exec'd; on a busy host
 * the parent may resume later, while the child already boots: that overlap is counted once, as boot
 * (spawnMs is cut to what the worker's own phases leave). readyMs is the remainder, never negative.
 */
export function startPhasesOf(
  worker: WorkerStartPhases | undefined,
  spawnMs: number,
  totalMs: number,
): StartPhases {
  const phases: StartPhases = { totalMs: round(totalMs), spawnMs: 0, readyMs: 0 };
  let workerSum = 0;
  for (const key of TOP_LEVEL_PHASES) {
    const value = key === 'spawnMs' ? undefined : worker?.[key];
    if (typeof value === 'number' && Number.isFinite(value)) {
      phases[key] = round(Math.max(0, value));
      workerSum += phases[key];
    }
  }
  phases.spawnMs = round(Math.max(0, Math.min(spawnMs, phases.totalMs - workerSum)));
  if (typeof worker?.bindingMs === 'number') phases.bindingMs = round(Math.max(0, worker.bindingMs));
  if (worker?.sessions)
    phases.sessions = worker.sessions.map((s) => ({ ...s, ms: round(Math.max(0, s.ms)) }));
  if (worker?.steps) phases.steps = worker.steps.map((s) => ({ ...s, ms: round(Math.max(0, s.ms)) }));
  if (typeof worker?.cpuMs === 'number') phases.cpuMs = round(Math.max(0, worker.cpuMs));
  phases.readyMs = round(Math.max(0, phases.totalMs - workerSum - phases.spawnMs));
  return phases;
}
