// Watches the pool through admin stats: how long after each fault it is back to full size, and every
// worker pid it ever saw (so the end check can prove none outlived the supervisor).
import { setTimeout as sleep } from 'node:timers/promises';

const SERVING = new Set(['ready', 'busy', 'cleaning']);

export class Monitor {
  seenPids = new Set();
  #pending = [];
  #polling = false;
  #seq = 0;

  constructor(daemon, workers, { pollMs = 50, giveUpMs = 30_000 } = {}) {
    this.daemon = daemon;
    this.workers = workers;
    this.pollMs = pollMs;
    this.giveUpMs = giveUpMs;
  }

  async stats() {
    const stats = await this.daemon.stats(`soak-stats-${++this.#seq}`);
    for (const w of stats?.workers ?? []) this.seenPids.add(w.pid);
    return stats;
  }

  /** A live worker to hit, or undefined. */
  async pickWorker(random) {
    const stats = await this.stats();
    const live = (stats?.workers ?? []).filter((w) => SERVING.has(w.state) && w.threadId === undefined);
    return live.length > 0 ? random.pick(live).pid : undefined;
  }

  /**
   * Resolves with the ms from `since` until a stats reading shows `workers` serving workers, none of
   * them `victim`; Infinity if that never happens within `giveUpMs` (by default the monitor's).
   */
  recovered(since, victim, giveUpMs = this.giveUpMs) {
    return new Promise((resolve) => {
      this.#pending.push({ since, victim, giveUpMs, resolve });
      if (!this.#polling) void this.#poll();
    });
  }

  async #poll() {
    this.#polling = true;
    while (this.#pending.length > 0 && this.daemon.alive) {
      const stats = await this.stats();
      const now = performance.now();
      const workers = stats?.workers ?? [];
      const full = workers.length === this.workers && workers.every((w) => SERVING.has(w.state));
      this.#pending = this.#pending.filter((p) => {
        if (full && !workers.some((w) => w.pid === p.victim)) {
          p.resolve(now - p.since);
          return false;
        }
        if (now - p.since > p.giveUpMs) {
          p.resolve(Infinity);
          return false;
        }
        return true;
      });
      if (this.#pending.length > 0) await sleep(this.pollMs);
    }
    for (const p of this.#pending.splice(0)) p.resolve(Infinity);
    this.#polling = false;
  }
}
