import type { WorkerState } from '../core/life.js';
import type { RecycleReason } from '../core/recycle-policy.js';

/**
 * One slot as the scheduler holds it at this moment: read-only, decided nothing (the model test checks
 * guarantee 7 on it: a ready successor never waits while its slot is short).
 */
export interface SlotView {
  slot: number;
  /** The worker in the slot (absent: the slot is empty), its state, and why it is due if it drains. */
  worker?: { pid: number; state: WorkerState; due?: RecycleReason };
  /** Its worker is being replaced: the hand-over is under way. */
  replacing: boolean;
  /** Its worker waits for a recycle.maxConcurrent turn (to start its successor, or to be replaced). */
  waitingTurn: boolean;
  /** Its pre-spawned successor: still starting, ready (its pid), or its start failed. */
  successor?: { state: 'starting' | 'ready' | 'failed'; pid?: number };
}
