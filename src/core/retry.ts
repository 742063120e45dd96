/**
 * What becomes of a task whose worker ended it: answered, requeued (its worker died before it started
 * it: as good as new, not an attempt), or retried (`retries`: its worker died under it). Never a retry
 * after the handler itself failed, a timeout, or a death the task caused for certain (its own input
 * exhausted the heap): those would fail the same way again.
 */
export interface EndedTask {
  ok: boolean;
  error?: { code: string };
  unsent?: true;
  requeue?: true;
  retryable?: false;
}

export type RetryVerdict = 'answer' | 'requeue' | 'retry';

const CRASHED = 'E_WORKER_CRASHED';

export function retryVerdict(outcome: EndedTask, attempts: number, retries: number): RetryVerdict {
  if (outcome.ok || outcome.unsent) return 'answer';
  if (outcome.requeue) return 'requeue';
  const crashed = outcome.error?.code === CRASHED && outcome.retryable !== false;
  return crashed && attempts <= retries ? 'retry' : 'answer';
}
