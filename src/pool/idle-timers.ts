import { MAX_TIMER_MS } from '../config/schema.js';
import type { WorkerHandle } from './worker-handle.js';

/**
 * The timers of idle workers: `idleReleaseMs` (release cached sessions in place, once per idle
 * stretch) and the idle policy (max-age, idleTimeoutMs), whose next check time the caller computes.
 * Every timer is unref'd (a timer must never keep the supervisor alive) and cleared when the worker
 * gets a task or leaves.
 */
export class IdleTimers {
  private readonly release = new Map<WorkerHandle, NodeJS.Timeout>();
  private readonly policy = new Map<WorkerHandle, NodeJS.Timeout>();

  constructor(
    private readonly idleReleaseMs: number,
    private readonly onRelease: (handle: WorkerHandle) => void,
    private readonly onPolicyCheck: (handle: WorkerHandle) => void,
  ) {}

  /** Arms both timers for a worker that just became idle; `policyInMs` undefined = no idle rule applies. */
  arm(handle: WorkerHandle, policyInMs: number | undefined): void {
    if (this.idleReleaseMs > 0 && !handle.idleReleased && !this.release.has(handle)) {
      this.release.set(handle, this.timer(this.release, handle, this.idleReleaseMs, this.onRelease));
    }
    this.armPolicy(handle, policyInMs);
  }

  armPolicy(handle: WorkerHandle, inMs: number | undefined): void {
    clearTimeout(this.policy.get(handle));
    this.policy.delete(handle);
    if (inMs !== undefined)
      this.policy.set(handle, this.timer(this.policy, handle, inMs, this.onPolicyCheck));
  }

  disarm(handle: WorkerHandle): void {
    clearTimeout(this.release.get(handle));
    clearTimeout(this.policy.get(handle));
    this.release.delete(handle);
    this.policy.delete(handle);
  }

  clear(): void {
    for (const handle of [...this.release.keys(), ...this.policy.keys()]) this.disarm(handle);
  }

  private timer(
    owner: Map<WorkerHandle, NodeJS.Timeout>,
    handle: WorkerHandle,
    ms: number,
    fire: (handle: WorkerHandle) => void,
  ): NodeJS.Timeout {
    const timer = setTimeout(
      () => {
        owner.delete(handle);
        fire(handle);
      },
      Math.min(ms, MAX_TIMER_MS),
    );
    timer.unref();
    return timer;
  }
}
