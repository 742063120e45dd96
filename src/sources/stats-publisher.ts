import { hostname } from 'node:os';
import type { RedisClient } from 'bullmq';
import type { Logger } from '../logging/logger.js';
import { hostKey, hostStatsOf, publishHostStats, type HostStats } from '../queue/cluster-stats.js';
import type { Supervisor } from '../service/facade.js';

/** Writes this host's stats to Redis every interval, with a TTL, and removes them on stop. */
export class StatsPublisher {
  private readonly key: string;
  private readonly identity: { host: string; pid: number; queue: string };
  private timer: NodeJS.Timeout | undefined;
  /** While Redis is down a write waits for the reconnect; do not stack more behind it. */
  private writing = false;

  constructor(
    private readonly client: Promise<RedisClient>,
    private readonly supervisor: Supervisor,
    private readonly jobs: () => HostStats['jobs'],
    private readonly options: { queue: string; prefix?: string; intervalMs: number; ttlMs: number },
    private readonly log: Logger,
  ) {
    this.identity = { host: hostname(), pid: process.pid, queue: options.queue };
    this.key = hostKey(options.queue, this.identity.host, process.pid, options.prefix);
  }

  start(): void {
    void this.publish();
    this.timer = setInterval(() => void this.publish(), this.options.intervalMs);
    this.timer.unref();
  }

  private async publish(): Promise<void> {
    if (this.writing) return;
    this.writing = true;
    try {
      const row = hostStatsOf(await this.supervisor.stats(), this.identity, this.jobs());
      await publishHostStats(await this.client, this.key, row, this.options.ttlMs);
    } catch (error) {
      this.log.debug({ err: error }, 'could not publish host stats');
    } finally {
      this.writing = false;
    }
  }

  /** Stops publishing and deletes this host's key (best effort: the TTL removes it anyway). */
  async stop(): Promise<void> {
    clearInterval(this.timer);
    try {
      const client = await this.client;
      if (client.status === 'ready') await client.del(this.key);
    } catch (error) {
      this.log.debug({ err: error }, 'could not remove host stats');
    }
  }
}
