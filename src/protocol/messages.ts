import type { ErrorShape } from './errors.js';

/**
 * The IPC contract between a client and the supervisor. These shapes are public: external checks
 * rely on every name here. Extend, never rename.
 */

export type AdminCommand =
  | 'stats'
  | 'recycle'
  | 'clear-cache'
  | 'clear-history'
  | 'shutdown'
  // Extensions: recent task records ({ last?: number } -> { tasks }), and the savings report
  // ({ svg?: boolean } -> { report, text, svg? }).
  | 'history'
  | 'report';
export const ADMIN_COMMANDS: readonly AdminCommand[] = [
  'stats',
  'recycle',
  'clear-cache',
  'clear-history',
  'shutdown',
  'history',
  'report',
];

/**
 * `clear-cache` arguments, all optional. Without `model`: every worker (or `pid`) is recycled. With
 * `model`: only the workers holding that model's session; `mode: 'light'` has each release it in
 * place and collect instead of a recycle (no kill). A model neither configured nor held by any worker
 * is E_MODEL_NOT_FOUND.
 */
export interface ClearCacheArgs {
  pid?: number;
  model?: string;
  mode?: 'recycle' | 'light';
}

// client -> supervisor
export interface TaskMessage {
  type: 'task';
  id: string;
  payload: unknown;
  timeoutMs?: number;
  priority?: number;
}
export interface AdminMessage {
  type: 'admin';
  id: string;
  command: AdminCommand;
  args?: Record<string, unknown>;
}
export interface CancelMessage {
  type: 'cancel';
  id: string;
}
export type ClientMessage = TaskMessage | AdminMessage | CancelMessage;

// supervisor -> client
export interface ReadyMessage {
  type: 'ready';
  pid: number;
  workers: number;
}
export interface TaskSuccess {
  type: 'result';
  id: string;
  ok: true;
  value: unknown;
  workerPid: number;
  ms: number;
  /** Present when `retries` ran the task more than once. */
  attempts?: number;
}
export interface TaskFailure {
  type: 'result';
  id: string;
  ok: false;
  error: ErrorShape;
  attempts?: number;
}
export type ResultMessage = TaskSuccess | TaskFailure;
export type AdminResultMessage =
  | { type: 'admin-result'; id: string; ok: true; value: unknown }
  | { type: 'admin-result'; id: string; ok: false; error: ErrorShape };
/** Sent when a message could not be parsed far enough to know its id. */
export interface ProtocolErrorMessage {
  type: 'error';
  error: ErrorShape;
}
export type SupervisorMessage = ReadyMessage | ResultMessage | AdminResultMessage | ProtocolErrorMessage;
