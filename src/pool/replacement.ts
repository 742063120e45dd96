import { setTimeout as sleep } from 'node:timers/promises';
import { ErrorCode } from '../protocol/errors.js';
import type { RecycleReason } from '../policy/recycle-policy.js';
import type { WorkerHandle } from './worker-handle.js';
import type { PoolContext } from './pool-context.js';
import { recycleEvent } from './recycle-report.js';

/**
 * How a worker leaves, measured: the old one is stopped, its slot refilled (or emptied, when the pool
 * shrinks), and one recycle event tells what that freed. Which workers leave, and when, is the
 * Recycler's business; this is the procedure itself.
 */

/** The pool's side of a replacement: its slots, spares, idle list and spawning. */
export interface ReplacementContext extends PoolContext {
  removeIdle(handle: WorkerHandle): void;
  /** Empties a slot for good (the pool shrinks). */
  vacate(slot: number): void;
  /** A warm spare for the slot (same GPU), if one is ready. */
  takeWarm(slot: number): WorkerHandle | undefined;
  /** Makes a started worker the one serving `slot`. */
  install(handle: WorkerHandle, slot: number): WorkerHandle;
  /** The slot's crash-loop back-off before its next start (ms). */
  backoffMs(slot: number): number;
  /** The slot's pre-spawned replacement, else a fresh worker; undefined once the pool closes. */
  successor(slot: number): Promise<WorkerHandle | undefined>;
}

/** Stops `old` (if it still runs) and fills its slot with a fresh worker. */
export async function replaceWorker(
  ctx: ReplacementContext,
  old: WorkerHandle,
  reason: RecycleReason,
  detail: string,
): Promise<void> {
  ctx.removeIdle(old);
  old.drain();
  const started = performance.now();
  const rssBeforeMiB = old.state === 'exited' ? old.lastRssMiB : ((await old.rssMiB()) ?? old.lastRssMiB);
  const gpuBefore = await ctx.gpu().beforeStop(old);
  // A warm spare takes the slot before the old worker is even stopped: no task waits for anything.
  let fresh = ctx.closing() ? undefined : ctx.takeWarm(old.slot);
  const handedOver = fresh !== undefined;
  if (fresh) ctx.offer(ctx.install(fresh, old.slot));
  const message = `worker recycled (${reason})`;
  await old.stop({ reason, error: { code: ErrorCode.WORKER_CRASHED, message } }, ctx.options.killTimeoutMs);
  // Without a spare, wait for the driver to take the old worker's GPU memory back before starting its
  // replacement, so a device-level figure is not mixed with the new worker's CUDA context.
  const reclaim = await ctx.gpu().reclaimed(old, gpuBefore);
  if (ctx.closing()) return;
  if (!fresh) {
    // After a crash loop's failed starts, wait before starting again.
    const backoffMs = ctx.backoffMs(old.slot);
    if (backoffMs > 0) await sleep(backoffMs);
    if (ctx.closing()) return;
    fresh = await ctx.successor(old.slot);
    if (!fresh) return;
  }
  const rssAfterMiB = await fresh.rssMiB();
  const event = recycleEvent(old, fresh, {
    reason,
    detail,
    rssBeforeMiB,
    rssAfterMiB,
    started,
    handedOver,
  });
  Object.assign(event, await ctx.gpu().recycleFigures(fresh, gpuBefore, reclaim));
  ctx.tally.recycles++;
  if (fresh.memoryScope === 'worker' && event.rssFreedMiB !== undefined)
    ctx.tally.freedMiB += Math.max(0, event.rssFreedMiB);
  ctx.events.emit('recycle', event);
  if (!handedOver) ctx.offer(fresh);
}

/** Shrinks the pool: an idle worker above minWorkers exits and its slot stays empty. */
export async function retireWorker(
  ctx: ReplacementContext,
  handle: WorkerHandle,
  detail: string,
): Promise<void> {
  ctx.removeIdle(handle);
  ctx.vacate(handle.slot);
  handle.drain();
  const started = performance.now();
  const rssBeforeMiB = (await handle.rssMiB()) ?? handle.lastRssMiB;
  const message = 'worker retired (idle)';
  await handle.stop(
    { reason: 'idle', error: { code: ErrorCode.WORKER_CRASHED, message } },
    ctx.options.killTimeoutMs,
  );
  const event = recycleEvent(handle, undefined, {
    reason: 'idle',
    detail,
    rssBeforeMiB,
    rssAfterMiB: undefined,
    started,
    handedOver: false,
  });
  if (event.rssFreedMiB !== undefined) ctx.tally.freedMiB += event.rssFreedMiB;
  ctx.events.emit('recycle', event);
}
