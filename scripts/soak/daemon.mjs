// The supervisor under test, forked the way a user's app forks it, with every answer counted by id:
// the soak's "exactly one answer per id" is checked here, not trusted to the client library.
import { fork } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { createInterface } from 'node:readline';

export class Daemon {
  /** id -> number of answers seen (a second one is a duplicate). */
  answerCounts = new Map();
  /** `{ type: 'error' }` messages: answers to messages too broken to carry an id. */
  protocolErrors = 0;
  /** Log lines by msg at warn level and above (the supervisor logs at warn during the soak). */
  logCounts = new Map();
  /** msg -> when (performance.now()) each such line arrived, to place it against the faults. */
  logTimes = new Map();
  stderrBytes = 0;
  exitInfo = undefined;
  #waiters = new Map();

  /**
   * `answerDeadlineMs`: how long `request` waits for an answer before it gives up (resolving undefined)
   * and the driver moves on, so a task never answered is reported lost instead of hanging the soak.
   */
  constructor(entry, args, { answerDeadlineMs = 60_000 } = {}) {
    this.answerDeadlineMs = answerDeadlineMs;
    this.child = fork(entry, args, { serialization: 'advanced', stdio: ['ignore', 'pipe', 'pipe', 'ipc'] });
    this.exited = new Promise((resolve) =>
      this.child.once('exit', (code, signal) => {
        this.exitInfo = { code, signal };
        for (const resolveWaiter of this.#waiters.values()) resolveWaiter(undefined);
        this.#waiters.clear();
        resolve(this.exitInfo);
      }),
    );
    this.readyMessage = new Promise((resolve, reject) => {
      this.child.on('message', (m) => {
        if (m.type === 'ready') resolve(m);
        else if (m.type === 'error') this.protocolErrors++;
        else if (m.type === 'result' || m.type === 'admin-result') this.#answer(m);
      });
      this.child.once('exit', (code) => reject(new Error(`supervisor exited before ready (code ${code})`)));
    });
    createInterface({ input: this.child.stdout }).on('line', (line) => {
      try {
        const { msg } = JSON.parse(line);
        this.logCounts.set(msg, (this.logCounts.get(msg) ?? 0) + 1);
        if (!this.logTimes.has(msg)) this.logTimes.set(msg, []);
        this.logTimes.get(msg).push(performance.now());
      } catch {
        // not a log line
      }
    });
    // Workers inherit the supervisor's stderr: V8's heap-limit reports land here.
    this.child.stderr.on('data', (chunk) => (this.stderrBytes += chunk.length));
  }

  get pid() {
    return this.child.pid;
  }

  get alive() {
    return this.exitInfo === undefined;
  }

  #answer(message) {
    this.answerCounts.set(message.id, (this.answerCounts.get(message.id) ?? 0) + 1);
    const waiter = this.#waiters.get(message.id);
    if (waiter) {
      this.#waiters.delete(message.id);
      waiter(message);
    }
  }

  /**
   * Sends a message with an id; resolves with its first answer, or undefined if the supervisor died or
   * no answer came within answerDeadlineMs (a later one is still counted in answerCounts).
   */
  request(message) {
    return new Promise((resolve) => {
      if (!this.alive) return resolve(undefined);
      const timer = setTimeout(() => {
        this.#waiters.delete(message.id);
        resolve(undefined);
      }, this.answerDeadlineMs);
      this.#waiters.set(message.id, (answer) => {
        clearTimeout(timer);
        resolve(answer);
      });
      this.send(message);
    });
  }

  send(message) {
    if (this.alive && this.child.connected) this.child.send(message);
  }

  async stats(id) {
    const answer = await this.request({ type: 'admin', id, command: 'stats' });
    return answer?.ok ? answer.value : undefined;
  }

  async shutdown(timeoutMs = 30_000) {
    if (this.alive) this.send({ type: 'admin', id: 'soak-shutdown', command: 'shutdown' });
    const timer = setTimeout(() => this.child.kill('SIGKILL'), timeoutMs);
    const exit = await this.exited;
    clearTimeout(timer);
    return exit;
  }
}

/** Pids whose parent is `pid` (Linux /proc). */
export function childrenOf(pid) {
  const out = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      if (ppid === pid) out.push(Number(entry));
    } catch {
      // gone meanwhile
    }
  }
  return out;
}

/** Running, not merely a zombie. */
export function isAlive(pid) {
  try {
    process.kill(pid, 0);
  } catch {
    return false;
  }
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat[stat.lastIndexOf(')') + 2] !== 'Z';
  } catch {
    return false;
  }
}
