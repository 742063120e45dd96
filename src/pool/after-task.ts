import type { AfterTaskCleanup, WorkerHandle } from './worker-handle.js';
import type { GpuAccounting } from './gpu-accounting.js';
import { measuredCleanup, type CleanupEvent, type CleanupMode } from './cleanup-meter.js';
import type { PoolContext } from './pool-context.js';
import type { Recycler } from './recycler.js';

/** The after-task work's side of recycling: a request made while the task ran, the policy's verdict. */
export interface AfterTaskContext extends PoolContext {
  readonly recycler: Pick<Recycler, 'requested' | 'due' | 'request'>;
}

/**
 * What happens to a worker once its answer is out, off the answer's path: cleanup and its memory
 * figures, the RecyclePolicy's verdict, then either a recycle or back to work. Also the in-place
 * session release of a worker idle for idleReleaseMs, which is the same cleanup without a task.
 */
export class AfterTask {
  /** The cleanup the worker runs right after its answer, unasked (undefined: none); fixed per pool. */
  readonly inWorker: AfterTaskCleanup | undefined;

  constructor(private readonly ctx: AfterTaskContext) {
    const { cleanup } = ctx.options;
    this.inWorker = cleanup.afterTask
      ? { force: cleanup.force, measure: cleanup.measure, timeoutMs: cleanup.timeoutMs }
      : undefined;
  }

  async run(handle: WorkerHandle, taskId: string): Promise<void> {
    if (!handle.alive) return; // died or was killed: its exit handler replaces it
    const { ctx } = this;
    const gpuBefore = ctx.gpu().readingDuringTask(handle);
    if (ctx.recycler.requested(handle) || ctx.recycler.due(handle).recycle || this.nearCeiling(handle)) {
      // Its last task, or one that may take it over its RSS ceiling: decide on this task's figures
      // before it gets another. Its cleanup figures count; a recycle line carries its exit's figures.
      const measured = await this.cleanUp(handle, taskId);
      const runsAtCleanup = runsUpTo(handle);
      if (measured && handle.memoryScope === 'worker') handle.leak.add(measured.rssAfterMiB);
      if (!handle.alive) return;
      const requested = ctx.recycler.requested(handle);
      const decision = requested
        ? { recycle: true as const, reason: requested.reason, detail: requested.detail }
        : ctx.recycler.due(handle);
      if (decision.recycle) {
        if (measured) ctx.events.emit('cleanup', measured);
        // It drains; the offer that finds it holding nothing (this one, or that of the last task sent
        // ahead) hands it to the recycler.
        ctx.recycler.request(handle, decision.reason, decision.detail);
        handle.release();
        ctx.offer(handle);
        return;
      }
      handle.release();
      ctx.offer(handle);
      if (measured && ctx.gpu().meter && handle.backend === 'process') {
        void this.gpuAfterCleanup(handle, measured, gpuBefore, runsAtCleanup);
      } else if (measured) ctx.events.emit('cleanup', measured);
      return;
    }
    // Back to work at once: the worker runs its cleanup before it reads its next task (it handles its
    // messages in order), so waiting for the report would only leave it idle for a round trip. The
    // figures arrive a moment later, with the verdict they feed (rss, leak, gpu): a worker found over
    // a ceiling then goes at once if idle, or right after the task it has meanwhile started.
    const cleaning = this.cleanUp(handle, taskId);
    const runsAtCleanup = runsUpTo(handle);
    handle.release();
    ctx.offer(handle);
    const measured = await cleaning;
    if (!measured) return;
    if (handle.memoryScope === 'worker') handle.leak.add(measured.rssAfterMiB);
    if (ctx.gpu().meter && handle.backend === 'process') {
      await this.gpuAfterCleanup(handle, measured, gpuBefore, runsAtCleanup);
    } else ctx.events.emit('cleanup', measured);
    if (!handle.alive || ctx.recycler.requested(handle)) return;
    const verdict = ctx.recycler.due(handle);
    if (verdict.recycle) ctx.recycler.request(handle, verdict.reason, verdict.detail);
  }

  /**
   * Close enough to its RSS ceiling that the tasks it may hold could cross it: within 5% of the
   * ceiling, or (pipelineDepth + 1) tasks' worth of its measured growth. Far from it, a verdict a few
   * tasks late costs nothing; near it, each task waits for the verdict on the one before.
   */
  nearCeiling(handle: WorkerHandle): boolean {
    const { policy, pipelineDepth } = this.ctx.options;
    const ceiling = policy.rssMiB ?? 0;
    const rss = handle.lastRssMiB;
    if (ceiling <= 0 || rss === undefined || handle.memoryScope !== 'worker') return false;
    const growth = (pipelineDepth + 1) * Math.max(0, handle.leak.miBPerTask ?? 0);
    return rss + Math.max(0.05 * ceiling, growth) >= ceiling;
  }

  /** idleReleaseMs: release an idle worker's cached sessions in place (memory back without a restart). */
  async releaseSessions(handle: WorkerHandle): Promise<void> {
    handle.reserve();
    const measured = await this.cleanUp(handle, undefined, 'idle');
    if (!handle.alive) return;
    handle.idleReleased = true;
    if (measured) this.ctx.events.emit('cleanup', measured);
    handle.release();
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

/**
 * The worker's task count up to the task being cleaned up after: tasks sent ahead start right after
 * this cleanup, so a GPU reading taken after it is not this cleanup's alone once one of them was sent.
 */
function runsUpTo(handle: WorkerHandle): number {
  return handle.runs - Math.max(0, handle.load - 1);
}
