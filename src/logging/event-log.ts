import type { SupervisorEvents } from '../events.js';
import type { Logger } from './logger.js';

/**
 * Turns supervisor events into log lines: one event per line, worker pid and task id on each,
 * memory in MiB. Per-task events are subscribed only when their level is enabled, so a quiet
 * logger costs nothing on the hot path.
 */
export function subscribeLog(events: SupervisorEvents, log: Logger): void {
  events.on('worker-ready', (e) => log.info(e, 'worker ready'));
  events.on('worker-start-failed', (e) => log.error(e, 'worker failed to start'));
  events.on('worker-exit', (e) =>
    e.expected ? log.debug(e, 'worker exited') : log.warn(e, 'worker exited unexpectedly'),
  );
  events.on('recycle', (e) => log.info(e, 'recycle'));
  events.on('limit', (e) => log.warn(e, 'limit'));
  events.on('degraded', (e) =>
    log.error(e, 'workers keep failing to start: refusing tasks until one stays up'),
  );
  if (log.isLevelEnabled('info')) events.on('cleanup', (e) => log.info(e, 'cleanup'));
  if (log.isLevelEnabled('debug')) {
    events.on('transition', (e) => log.debug(e, 'worker transition'));
    events.on('task', (e) => log.debug({ ...e, taskId: e.id, id: undefined }, 'task'));
  }
}
