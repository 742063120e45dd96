/**
 * Task error codes <-> BullMQ job failures. BullMQ stores only an Error's message (`failedReason`), so
 * the code travels as the message's first word: "E_TASK_FAILED: boom".
 */
import { ErrorCode, SupervisorError, isErrorCode, type ErrorShape } from '../protocol/errors.js';

/**
 * What the consumer does with a failed task:
 * - retry: uses one of the job's `attempts` (with its backoff). A crash or timeout may not recur on
 *   another worker or host; E_WORKERS_UNAVAILABLE is this host's fault, and if every host has it the
 *   job should still end, so it spends attempts rather than bouncing forever.
 * - hand-back: the job returns to the queue without spending an attempt. This host would not run it
 *   (shutting down, queue full, not started): the task itself never ran, so it is not its failure.
 * - fail: UnrecoverableError, no retry. The same payload would fail the same way anywhere (bad input,
 *   unknown model, the handler threw), or someone decided it must not run (cancelled).
 */
export type FailureAction = 'retry' | 'hand-back' | 'fail';

const ACTIONS: Record<ErrorCode, FailureAction> = {
  [ErrorCode.WORKER_CRASHED]: 'retry',
  [ErrorCode.TIMEOUT]: 'retry',
  [ErrorCode.WORKERS_UNAVAILABLE]: 'retry',
  [ErrorCode.DUPLICATE_ID]: 'retry',
  [ErrorCode.SHUTTING_DOWN]: 'hand-back',
  [ErrorCode.QUEUE_FULL]: 'hand-back',
  [ErrorCode.NOT_RUNNING]: 'hand-back',
  [ErrorCode.BAD_REQUEST]: 'fail',
  [ErrorCode.MODEL_NOT_FOUND]: 'fail',
  [ErrorCode.TASK_FAILED]: 'fail',
  [ErrorCode.CANCELLED]: 'fail',
  [ErrorCode.UNAUTHORIZED]: 'fail',
  // Over a hard memory limit: the same input balloons the same way on any worker of any host.
  [ErrorCode.OUT_OF_MEMORY]: 'fail',
};

export function failureAction(code: string): FailureAction {
  return isErrorCode(code) ? ACTIONS[code] : 'fail';
}

export function failureMessage(error: ErrorShape): string {
  return `${error.code}: ${error.message}`;
}

/** A job's failedReason -> the SupervisorError a producer rejects with. */
export function errorFromFailedReason(reason: string | undefined): SupervisorError {
  const match = /^(E_[A-Z_]+): ([\s\S]*)$/.exec(reason ?? '');
  if (match?.[1] && isErrorCode(match[1])) return new SupervisorError(match[1], match[2] ?? '');
  // BullMQ's own failures (a job stalled too often, a lock lost) carry no code of ours.
  return new SupervisorError(ErrorCode.TASK_FAILED, reason || 'job failed');
}
