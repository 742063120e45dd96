import { EventEmitter } from 'node:events';
import type { RecycleReason } from './core/recycle-policy.js';
import type { Attribution } from './probes/gpu-attribution.js';
import type { WorkerState } from './core/life.js';
import type { LimitKind } from './core/hard-limits.js';
import type { StartPhases } from './protocol/start-phases.js';
import type { PrespawnDeferral } from './core/prespawn.js';

/**
 * What the supervisor and its pool tell the world. Logs (and later history and metrics) subscribe to
 * these instead of being called from the hot path.
 */
export interface SupervisorEventMap {
  'worker-ready': {
    pid: number;
    slot: number;
    startMs: number;
    rssMiB: number | undefined;
    /** Where the start went (ms): fork, Node's boot, imports, binding, each preloaded session, setup. */
    phases: StartPhases;
  };
  'worker-start-failed': { slot: number; message: string; attempt: number; retryInMs: number };
  'worker-exit': {
    pid: number;
    slot: number;
    code: number | null;
    signal: string | null;
    expected: boolean;
    /** Set when the signal alone would mislead: 'killed by the kernel OOM killer (SIGKILL)'. */
    detail?: string;
  };
  /** A worker went over a hard limit (limits.rssMiB, limits.gpuMiB) while it ran a task: it was killed. */
  limit: {
    taskId: string;
    pid: number;
    slot: number;
    limit: LimitKind;
    limitMiB: number;
    readingMiB: number;
  };
  transition: { pid: number; slot: number; from: WorkerState; to: WorkerState };
  cleanup: {
    /** The task it followed; absent for an idle release. */
    taskId: string | undefined;
    pid: number;
    mode: 'light' | 'force' | 'idle';
    rssBeforeMiB: number;
    rssAfterMiB: number;
    freedMiB: number;
    ms: number;
    /** Tasks this cleanup covers: run since the worker's previous cleanup (cleanup.everyTasks). */
    tasks?: number;
    /** GPU figures, when a GPU is measured: the last reading before cleanup and one started after it. */
    gpuBeforeMiB?: number;
    gpuAfterMiB?: number;
    gpuFreedMiB?: number;
    attribution?: Attribution;
    /** 'process' for the thread backend: RSS is the whole supervisor's, not the worker's own. */
    memoryScope?: 'worker' | 'process';
    threadId?: number;
  };
  recycle: {
    reason: RecycleReason;
    detail: string;
    oldPid: number;
    newPid: number | undefined;
    tasksDone: number;
    rssBeforeMiB: number | undefined;
    rssAfterMiB: number | undefined;
    rssFreedMiB: number | undefined;
    ms: number;
    /** The old worker's GPU usage before the kill, what its exit gave back, and the new one's baseline. */
    gpuBeforeMiB?: number;
    gpuFreedMiB?: number;
    gpuReclaimMs?: number;
    gpuReclaimed?: boolean;
    gpuBaselineMiB?: number;
    attribution?: Attribution;
    memoryScope?: 'worker' | 'process';
    /** The GPU the old worker was pinned to (`gpus`); absent when it saw every GPU. */
    gpuIndex?: number;
    /** The slot went to a warm spare (spareWorkers). */
    spare?: true;
    /**
     * 'early': the successor was pre-spawned while the old worker still ran. 'deferred': a start
     * ahead of the recycle (the pre-spawn, or the refill of the spare that took over) waited until the
     * old worker was gone and the driver had its memory back, for `prespawnReason`.
     */
    prespawn?: 'early' | 'deferred';
    prespawnReason?: PrespawnDeferral;
    oldThreadId?: number;
    newThreadId?: number;
  };
  /** A worker released one model's session in place (admin clear-cache { model, mode: 'light' }). */
  release: {
    pid: number;
    model: string;
    /** Whether it held that session (absent when its module cannot tell). */
    held?: boolean;
    ms: number;
    /** Its RSS around the release and collection, as the worker read it (when cleanup.measure). */
    rssBeforeMiB?: number;
    rssAfterMiB?: number;
    /** Its GPU memory read before and after, when both readings are of the same kind. */
    gpuBeforeMiB?: number;
    gpuAfterMiB?: number;
    /** Whose GPU memory those are: the worker's own, or its whole device's. */
    attribution?: Attribution;
    /** The GPU the worker is pinned to (`gpus`); absent when it sees every GPU. */
    gpuIndex?: number;
    memoryScope: 'worker' | 'process';
  };
  'gpu-unavailable': { kind: string; message: string };
  degraded: { failedStarts: number; lastError: string };
  task: {
    id: string;
    ok: boolean;
    code: string | undefined;
    workerPid: number | undefined;
    model: string | undefined;
    queueMs: number;
    runMs: number | undefined;
  };
}

export type SupervisorEventName = keyof SupervisorEventMap;

/** A finished task as the in-memory ring and the history store keep it: the `task` event, and when. */
export type TaskRecord = SupervisorEventMap['task'] & {
  /** Epoch ms when the answer went out. */
  at: number;
};

/**
 * A typed face over EventEmitter: listeners get the exact payload of their event. `emit` and
 * `listenerCount` are the emitter's own functions, bound, not wrappers: every task emits, and a
 * wrapper would be one more call on each task's way.
 */
export class SupervisorEvents {
  private readonly emitter = new EventEmitter();
  /** Tells the listeners of `event`, if any (no listener: nothing happens). */
  readonly emit: <E extends SupervisorEventName>(event: E, payload: SupervisorEventMap[E]) => void;
  /** How many listen to `event`: a payload costly to build is built only when someone listens. */
  readonly listenerCount: (event: SupervisorEventName) => number;

  constructor() {
    // Many subscribers (log, history, metrics, tests) may listen; none is a leak.
    this.emitter.setMaxListeners(0);
    this.emit = this.emitter.emit.bind(this.emitter);
    this.listenerCount = this.emitter.listenerCount.bind(this.emitter);
  }

  on<E extends SupervisorEventName>(
    event: E,
    listener: (payload: SupervisorEventMap[E]) => void,
  ): () => void {
    this.emitter.on(event, listener);
    return () => this.emitter.off(event, listener);
  }

  once<E extends SupervisorEventName>(event: E, listener: (payload: SupervisorEventMap[E]) => void): void {
    this.emitter.once(event, listener);
  }

  listening(event: SupervisorEventName): boolean {
    return this.emitter.listenerCount(event) > 0;
  }
}
