// SIGKILLs from outside the supervisor, the way a busy host's OOM killer or a chaos tool sends them: the
// victim is any live worker process in the process table (starting ones included, which admin `stats`
// would not offer), and the kills are not paced by the pool's recovery. Every pid killed is recorded,
// so an E_WORKER_CRASHED answer can be traced to a kill the soak sent.
import { readFileSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { childrenOf, isAlive } from './daemon.mjs';

/**
 * The worker processes the supervisor forked (its only other children would be probes, not workers): the
 * fork entry (worker/process-entry.js, which loads worker/runtime.js; runtime.js itself in older builds).
 */
const WORKER_ENTRY = /[/\\]worker[/\\](process-entry|runtime)\.js\b/;

function isWorkerProcess(pid) {
  try {
    return WORKER_ENTRY.test(readFileSync(`/proc/${pid}/cmdline`, 'utf8'));
  } catch {
    return false;
  }
}

/** Live worker processes of the supervisor `pid`, read from /proc. */
export function liveWorkerProcesses(pid) {
  return childrenOf(pid).filter((child) => isWorkerProcess(child) && isAlive(child));
}

export class Killer {
  /** pid -> who killed it ('kill-rate', 'kill-storm', 'sigkill-worker'), for every SIGKILL the soak sent. */
  killed = new Map();
  /** Kills counted by who sent them. */
  sent = {};
  /** Moments a kill found no live worker to hit. */
  noTarget = {};

  constructor(daemon, random) {
    this.daemon = daemon;
    this.random = random;
  }

  /** Records a SIGKILL the soak sent some other way (the paced sigkill-worker fault). */
  record(pid, by) {
    this.killed.set(pid, by);
    this.sent[by] = (this.sent[by] ?? 0) + 1;
  }

  /** Kills one random live worker process; returns its pid, or undefined when there was none. */
  killOne(by) {
    const live = liveWorkerProcesses(this.daemon.pid);
    if (live.length === 0) {
      this.noTarget[by] = (this.noTarget[by] ?? 0) + 1;
      return undefined;
    }
    const pid = this.random.pick(live);
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      this.noTarget[by] = (this.noTarget[by] ?? 0) + 1;
      return undefined;
    }
    this.record(pid, by);
    return pid;
  }

  /**
   * Kills at `perSecond` on average (exponential gaps: an OOM killer is no metronome) until `stop()`
   * resolves the returned run; never waits for the pool to refill between kills.
   */
  atRate(perSecond, by = 'kill-rate') {
    let stopped = false;
    const done = (async () => {
      while (!stopped && this.daemon.alive) {
        await sleep(-Math.log(1 - this.random.next()) * (1000 / perSecond));
        if (!stopped && this.daemon.alive) this.killOne(by);
      }
    })();
    return {
      stop: async () => {
        stopped = true;
        await done;
      },
    };
  }

  /** Kills one live worker every `everyMs` for `forMs`, unpaced; resolves with the kills sent. */
  async storm(forMs, everyMs, by = 'kill-storm') {
    const end = performance.now() + forMs;
    let kills = 0;
    while (performance.now() < end && this.daemon.alive) {
      if (this.killOne(by) !== undefined) kills++;
      await sleep(everyMs);
    }
    return kills;
  }
}
