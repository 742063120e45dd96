/** History: the SQLite store of tasks and memory events, its savings report and memory timeline. */
export { HistoryStore, type HistoryStoreOptions, type HistoryHealth, type TaskCount } from './store.js';
export type { HistoryLog } from './history-log.js';
export type { HistoryError } from './outage.js';
export { SCHEMA_VERSION, type TaskRow, type MemoryEventRow } from './schema.js';
export { attachHistory } from './recorder.js';
export {
  buildReport,
  computeReport,
  type HistoryReport,
  type WorkerReport,
  type SlotReport,
} from './report.js';
export { reportText } from './report-text.js';
export { timelineSvg, type TimelineOptions } from './timeline-svg.js';
export { HistoryService, resolveHistoryPath, type HistoryConfig } from './service.js';
export type { Distribution } from './stats.js';
