import { ErrorCode } from '../protocol/errors.js';
import type { RecycleReason } from '../core/recycle-policy.js';
import type { PrespawnDeferral } from '../core/prespawn.js';
import type { GpuAccounting } from './gpu-accounting.js';
import type { PoolConfig } from './pool-config.js';
import { POOL_CLOSED } from './worker-starts.js';
import { recycleEvent, type RecycleEvent } from './recycle-report.js';
import type { WorkerHandle } from './worker-handle.js';

/** What a hand-over needs of the scheduler: its spares and successors, starting, and installing. */
export interface HandOverParts {
  config: PoolConfig;
  gpu: GpuAccounting;
  closing(): boolean;
  /** A warm spare for the slot `old` leaves (its refill starts now or, over budget, once `old` is gone). */
  takeSpare(slot: number, old: WorkerHandle): WorkerHandle | undefined;
  takeSuccessor(slot: number): Promise<WorkerHandle | undefined> | undefined;
  /** The slot's pre-spawned successor if it is ready now (it takes the slot before `old` stops). */
  takeReadySuccessor(slot: number): WorkerHandle | undefined;
  /** Resolves once `old` has finished the tasks it holds (a successor took its slot early). */
  spent(old: WorkerHandle): Promise<void>;
  /** A fresh worker for the slot (with the crash-loop back-off); undefined once the pool closes. */
  start(slot: number): Promise<WorkerHandle | undefined>;
  /** The old worker is being stopped (its life changes). */
  stopping(handle: WorkerHandle): void;
  install(handle: WorkerHandle, slot: number): void;
  /** Why a start ahead of this recycle was held back until `old` is gone, if one was. */
  deferral(old: WorkerHandle): PrespawnDeferral | undefined;
  emit(event: RecycleEvent): void;
  /** Hand waiting tasks to workers (the successor is in place). */
  pump(): void;
}

/**
 * How a slot's worker leaves, measured: a warm spare takes the slot at once if one is ready, the old
 * worker is stopped, the driver is given time to reclaim its GPU memory, and the pre-spawned successor
 * or a fresh worker takes over. One recycle event says what that freed. Which worker leaves, and when,
 * is the scheduler's business; this is the procedure.
 */
export async function handOver(
  parts: HandOverParts,
  old: WorkerHandle,
  reason: RecycleReason,
  detail: string,
): Promise<void> {
  const { config, gpu } = parts;
  const slot = old.slot;
  const started = performance.now();
  // A warm spare, or a pre-spawned successor that is ready, takes the slot before the old worker is even
  // stopped: no task waits for anything. The old one finishes what it holds first (it takes no more).
  let fresh = parts.closing() ? undefined : parts.takeSpare(slot, old);
  const handedOver = fresh !== undefined;
  const readySuccessor = fresh || parts.closing() ? undefined : parts.takeReadySuccessor(slot);
  fresh ??= readySuccessor;
  if (fresh) {
    parts.install(fresh, slot);
    parts.pump();
  }
  await parts.spent(old);
  const rssBeforeMiB = old.state === 'exited' ? old.lastRssMiB : ((await old.rssMiB()) ?? old.lastRssMiB);
  const gpuBefore = await gpu.beforeStop(old);
  if (old.state !== 'exited') parts.stopping(old);
  const message = `worker recycled (${reason})`;
  await old.stop({ reason, error: { code: ErrorCode.WORKER_CRASHED, message } }, config.killTimeoutMs);
  // Without a spare, wait for the driver to take the old worker's GPU memory back before its successor
  // takes over, so a device-level figure is not mixed with the new worker's CUDA context.
  const reclaim = await gpu.reclaimed(old, gpuBefore);
  if (parts.closing()) return;
  let early = readySuccessor !== undefined;
  if (!fresh) {
    const pending = parts.takeSuccessor(slot);
    const successor = pending ? await pending : undefined;
    early = successor?.alive === true;
    fresh = successor?.alive ? successor : await parts.start(slot);
    if (!fresh) return;
    if (parts.closing()) {
      await fresh.stop(POOL_CLOSED, config.killTimeoutMs);
      return;
    }
    parts.install(fresh, slot);
  }
  const rssAfterMiB = await fresh.rssMiB();
  const event = recycleEvent(old, fresh, { reason, detail, rssBeforeMiB, rssAfterMiB, started, handedOver });
  Object.assign(event, await gpu.recycleFigures(fresh, gpuBefore, reclaim));
  const deferred = early ? undefined : parts.deferral(old);
  if (early) event.prespawn = 'early';
  else if (deferred) Object.assign(event, { prespawn: 'deferred', prespawnReason: deferred });
  parts.emit(event);
  if (!handedOver) parts.pump();
}

/** Shrinks the pool: an idle worker above minWorkers exits; nothing takes its slot. */
export async function retire(
  config: PoolConfig,
  handle: WorkerHandle,
  detail: string,
): Promise<RecycleEvent> {
  const started = performance.now();
  const rssBeforeMiB = (await handle.rssMiB()) ?? handle.lastRssMiB;
  const error = { code: ErrorCode.WORKER_CRASHED, message: 'worker retired (idle)' };
  await handle.stop({ reason: 'idle', error }, config.killTimeoutMs);
  return recycleEvent(handle, undefined, {
    reason: 'idle',
    detail,
    rssBeforeMiB,
    rssAfterMiB: undefined,
    started,
    handedOver: false,
  });
}
