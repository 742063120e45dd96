import type { RecycleReason } from './recycle-policy.js';

/**
 * A worker's life as one value: which state it is in and what it holds there. Every change goes
 * through `step`, which refuses what the table below does not list, so a bug shows up as an error at
 * the point it happens, not as a task sent to a dying worker.
 *
 * `held`: tasks sent and not yet answered (the one it runs, then those sent ahead, in order).
 * `cleaning`: cleanup reports still to come (the worker cleans up after each answer, unasked).
 * `draining`: due to be replaced (any reason). It finishes what it holds and its cleanups, and has no
 * way back to `ready` or `busy`: it never gets another task.
 */
export type WorkerState = 'starting' | 'ready' | 'busy' | 'cleaning' | 'draining' | 'stopping' | 'exited';

export interface DrainCause {
  reason: RecycleReason;
  detail: string;
}

export type Life =
  | { state: 'starting' }
  | { state: 'ready'; since: number }
  | { state: 'busy'; held: number; cleaning: number }
  | { state: 'cleaning'; cleaning: number }
  | { state: 'draining'; held: number; cleaning: number; cause: DrainCause }
  | { state: 'stopping' }
  | { state: 'exited'; last: WorkerState };

export type LifeEvent =
  | { kind: 'started'; at: number }
  | { kind: 'sent' }
  /** A task answered; `cleanup`: the worker now cleans up after it (a report will follow). */
  | { kind: 'answered'; cleanup: boolean; at: number }
  /** A task the worker never saw (its payload could not be sent): as if it had not been sent. */
  | { kind: 'unsent'; at: number }
  | { kind: 'cleanup-asked' }
  | { kind: 'cleaned'; at: number }
  | { kind: 'drain'; cause: DrainCause }
  | { kind: 'stop' }
  | { kind: 'exit' };

const ALLOWED: Record<WorkerState, readonly WorkerState[]> = {
  starting: ['ready', 'stopping', 'exited'],
  ready: ['busy', 'draining', 'stopping', 'exited'],
  busy: ['cleaning', 'ready', 'draining', 'stopping', 'exited'],
  // cleaning -> busy: a task sent ahead while the worker cleans up after its last one.
  cleaning: ['ready', 'busy', 'draining', 'stopping', 'exited'],
  draining: ['stopping', 'exited'],
  stopping: ['exited'],
  exited: [],
};

export class IllegalTransitionError extends Error {
  constructor(from: WorkerState, to: WorkerState) {
    super(`illegal worker transition ${from} -> ${to}`);
    this.name = 'IllegalTransitionError';
  }
}

export function canTransition(from: WorkerState, to: WorkerState): boolean {
  return ALLOWED[from].includes(to);
}

export function assertTransition(from: WorkerState, to: WorkerState): void {
  if (!canTransition(from, to)) throw new IllegalTransitionError(from, to);
}

/** Tasks the worker holds (sent, not answered). A busy worker may hold none: it runs a cleanup asked for. */
export function heldBy(life: Life): number {
  return life.state === 'busy' || life.state === 'draining' ? life.held : 0;
}

/** Cleanup reports still to come. */
export function cleaningOf(life: Life): number {
  return life.state === 'busy' || life.state === 'cleaning' || life.state === 'draining' ? life.cleaning : 0;
}

/** Can it be sent a task at all (the verdict decides whether it should)? */
export function acceptsTasks(life: Life): boolean {
  return life.state === 'ready' || life.state === 'busy' || life.state === 'cleaning';
}

/** Alive and not being ended. */
export function isAlive(life: Life): boolean {
  return life.state !== 'stopping' && life.state !== 'exited';
}

/** A draining worker that holds nothing and owes no cleanup: its replacement may take over now. */
export function isSpent(life: Life): boolean {
  return life.state === 'draining' && life.held === 0 && life.cleaning === 0;
}

/**
 * The next life of a worker after `event`. Pure: the caller carries out what follows (sends, kills,
 * the transition event when the state name changed).
 */
export function step(life: Life, event: LifeEvent): Life {
  const next = advance(life, event);
  if (next.state !== life.state) assertTransition(life.state, next.state);
  return next;
}

function settle(held: number, cleaning: number, at: number): Life {
  if (held > 0) return { state: 'busy', held, cleaning };
  if (cleaning > 0) return { state: 'cleaning', cleaning };
  return { state: 'ready', since: at };
}

function advance(life: Life, event: LifeEvent): Life {
  if (event.kind === 'exit') return life.state === 'exited' ? life : { state: 'exited', last: life.state };
  if (life.state === 'exited') return life;
  if (event.kind === 'stop') return { state: 'stopping' };
  if (life.state === 'stopping') return life;
  const held = heldBy(life);
  const cleaning = cleaningOf(life);
  switch (event.kind) {
    case 'started':
      if (life.state !== 'starting') throw new IllegalTransitionError(life.state, 'ready');
      return { state: 'ready', since: event.at };
    case 'drain':
      if (life.state === 'draining') return life;
      if (life.state === 'starting') throw new IllegalTransitionError('starting', 'draining');
      return { state: 'draining', held, cleaning, cause: event.cause };
    case 'sent':
      if (!acceptsTasks(life)) throw new IllegalTransitionError(life.state, 'busy');
      return { state: 'busy', held: held + 1, cleaning };
    case 'answered':
    case 'unsent': {
      const left = Math.max(0, held - 1);
      const owed = cleaning + (event.kind === 'answered' && event.cleanup ? 1 : 0);
      if (life.state === 'draining') return { ...life, held: left, cleaning: owed };
      return settle(left, owed, event.at);
    }
    case 'cleanup-asked':
      if (life.state === 'draining') return { ...life, cleaning: cleaning + 1 };
      // An idle worker asked to clean up (idle release) is busy with it; `ready` again once reported.
      if (life.state === 'ready') return { state: 'busy', held: 0, cleaning: 1 };
      return life.state === 'busy'
        ? { ...life, cleaning: cleaning + 1 }
        : { state: 'cleaning', cleaning: cleaning + 1 };
    case 'cleaned': {
      const owed = Math.max(0, cleaning - 1);
      if (life.state === 'draining') return { ...life, cleaning: owed };
      return settle(held, owed, event.at);
    }
  }
}
