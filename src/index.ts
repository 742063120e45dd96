/** gpu-supervisor's library face. */
export {
  Supervisor,
  DEFAULT_WORKER_MODULE,
  type RunOptions,
  type SupervisorStats,
} from './supervisor/supervisor.js';
export type { TaskOutcome } from './supervisor/task.js';
export {
  SupervisorClient,
  type ForkOptions,
  type ClientRunOptions,
  type TaskAnswer,
} from './client/client.js';
export { SupervisorError, ErrorCode, type ErrorShape } from './protocol/errors.js';
export type * from './protocol/messages.js';
export { loadConfig, DEFAULT_CONFIG_PATH } from './config/load.js';
export { ConfigError } from './config/errors.js';
export type { SupervisorConfig, SupervisorOptions, ModelConfig } from './config/schema.js';
export type { SupervisorEventMap, SupervisorEvents } from './events.js';
export type { RecycleReason } from './policy/recycle-policy.js';
export type { WorkerContext, WorkerModule, CleanupOptions } from './worker/types.js';
