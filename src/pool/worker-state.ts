/**
 * A worker's life as one explicit state machine. Every change of state goes through `transition`,
 * which refuses the moves this table does not list: a bug shows up as an error at the point it
 * happens, not as a task sent to a dying worker.
 *
 * `draining`: the worker is due to be replaced (recycle of any reason). It may finish the task it is
 * running and its cleanup, but there is no way back to `ready` or `busy`: it never gets another task.
 */
export type WorkerState = 'starting' | 'ready' | 'busy' | 'cleaning' | 'draining' | 'stopping' | 'exited';

const ALLOWED: Record<WorkerState, readonly WorkerState[]> = {
  starting: ['ready', 'stopping', 'exited'],
  ready: ['busy', 'draining', 'stopping', 'exited'],
  busy: ['cleaning', 'ready', 'draining', 'stopping', 'exited'],
  // cleaning -> busy: a task sent ahead (pipelineDepth) while the worker cleans up after its last one.
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
