import type { AfterTaskCleanup, WorkerHandle } from './worker-handle.js';
import type { GpuAccounting } from './gpu-accounting.js';
import { measuredCleanup, type CleanupEvent, type CleanupMode } from './cleanup-meter.js';
import type { PoolContext } from './pool-context.js';
import type { Recycler } from './recycler.js';

/** The after-task work's side of recycling: a request made while the task ran, the policy's verdict. */
export interface AfterTaskContext extends PoolContext {
  readonly recycler: Pick<Recycler, 'requested' | 'due' | 'request' | 'replace'>;
}

/**
 * What happens to a worker once its answer is out, off the answer's path: cleanup and its memory
 * figures, the RecyclePolicy's verdict, then either a recycle or back to work. Also the in-place
 * session release of a worker idle for idleReleaseMs, which is the same cleanup without a task.
 */
export class AfterTask {
  constructor(private readonly ctx: AfterTaskContext) {}

  /** The cleanup the worker runs right after its answer, before it reports (undefined: none). */
  get inWorker(): AfterTaskCleanup | undefined {
    const { cleanup } = this.ctx.options;
    return cleanup.afterTask
      ? { force: cleanup.force, measure: cleanup.measure, timeoutMs: cleanup.timeoutMs }
      : undefined;
  }

  async run(handle: WorkerHandle, taskId: string): Promise<void> {
    if (!handle.alive) return; // died or was killed: its exit handler replaces it
    const { ctx } = this;
    const gpuBefore = ctx.gpu().readingDuringTask(handle);
    const measured = await this.cleanUp(handle, taskId);
    const runsAtCleanup = handle.runs;
    if (!handle.alive) return;
    if (measured && handle.memoryScope === 'worker') handle.leak.add(measured.rssAfterMiB);
    const requested = ctx.recycler.requested(handle);
    const decision = requested
      ? { recycle: true as const, reason: requested.reason, detail: requested.detail }
      : ctx.recycler.due(handle);
    if (decision.recycle) {
      // The recycle line carries the GPU figures of this worker's exit.
      if (measured) ctx.events.emit('cleanup', measured);
      await ctx.recycler.replace(handle, decision.reason, decision.detail);
      return;
    }
    handle.release();
    ctx.offer(handle);
    if (measured && ctx.gpu().meter && handle.backend === 'process') {
      void this.gpuAfterCleanup(handle, measured, gpuBefore, runsAtCleanup);
    } else if (measured) ctx.events.emit('cleanup', measured);
  }

  /** idleReleaseMs: release an idle worker's cached sessions in place (memory back without a restart). */
  async releaseSessions(handle: WorkerHandle): Promise<void> {
    handle.reserve();
    const measured = await this.cleanUp(handle, undefined, 'idle');
    if (!handle.alive) return;
    handle.idleReleased = true;
    if (measured) this.ctx.events.emit('cleanup', measured);
    if (!handle.draining) handle.release();
    this.ctx.offer(handle);
  }

  private async gpuAfterCleanup(
    handle: WorkerHandle,
    measured: CleanupEvent,
    before: ReturnType<GpuAccounting['readingDuringTask']>,
    runsAtCleanup: number,
  ): Promise<void> {
    const { ctx } = this;
    const gpuMiB = ctx.options.policy.gpuMiB ?? 0;
    const decision = await ctx.gpu().afterCleanup(handle, measured, before, runsAtCleanup, gpuMiB);
    ctx.events.emit('cleanup', measured);
    if (decision.recycle) ctx.recycler.request(handle, decision.reason, decision.detail);
  }

  private cleanUp(
    handle: WorkerHandle,
    taskId: string | undefined,
    mode: CleanupMode = this.ctx.options.cleanup.force ? 'force' : 'light',
  ): Promise<CleanupEvent | undefined> {
    const { cleanup } = this.ctx.options;
    if (!cleanup.afterTask && mode !== 'idle') return Promise.resolve(undefined);
    return measuredCleanup(handle, taskId, mode, cleanup).then((measured) => {
      if (measured && handle.memoryScope === 'worker')
        this.ctx.tally.freedMiB += Math.max(0, measured.freedMiB);
      return measured;
    });
  }
}
