/** gpu-supervisor's library face. */
export {
  Supervisor,
  DEFAULT_WORKER_MODULE,
  type RunOptions,
  type SupervisorStats,
  type SupervisorState,
} from './service/facade.js';
export type { TaskOutcome } from './service/facade.js';
export {
  SupervisorClient,
  type ForkOptions,
  type ConnectOptions,
  type ClientRunOptions,
  type TaskAnswer,
  type ClearCacheAnswer,
} from './client/client.js';
export { defaultSocketPath } from './transport/socket-path.js';
export type { HelloMessage, SocketReadyMessage } from './transport/socket-protocol.js';
export { SupervisorError, ErrorCode, type ErrorShape } from './protocol/errors.js';
export type * from './protocol/messages.js';
export { loadConfig, DEFAULT_CONFIG_PATH } from './config/load.js';
export { ConfigError } from './config/errors.js';
export { DEFAULTS as CONFIG_DEFAULTS } from './config/defaults.js';
export type { SupervisorConfig, SupervisorOptions, ModelConfig } from './config/schema.js';
export type { SupervisorEventMap, SupervisorEvents } from './events.js';
export type { RecycleReason } from './core/recycle-policy.js';
export type { WorkerContext, WorkerModule, CleanupOptions } from './worker/types.js';
export {
  createMetrics,
  METRIC_PREFIX,
  type SupervisorMetrics,
  type MetricsOptions,
} from './metrics/registry.js';
export { startHttpFront, type HttpFront, type HttpFrontOptions } from './metrics/http-server.js';
export {
  HistoryService,
  resolveHistoryPath,
  buildReport,
  computeReport,
  reportText,
  timelineSvg,
  type HistoryReport,
} from './history/index.js';
export {
  QueueClient,
  submitToQueue,
  type QueueClientOptions,
  type QueueRunOptions,
} from './queue/queue-client.js';
export { readClusterStats, formatClusterStats, type HostStats } from './queue/cluster-stats.js';
