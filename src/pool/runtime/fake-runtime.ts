import { ErrorCode } from '../../protocol/errors.js';
import type { ErrorShape } from '../../protocol/errors.js';
import type { FromWorker, ToWorker } from '../../protocol/worker-messages.js';
import type { RuntimeExit, WorkerRuntime } from './types.js';

type Run = Extract<ToWorker, { kind: 'run' }>;

const SKIPPED: ErrorShape = { code: ErrorCode.CANCELLED, message: 'abandoned before it started' };

/**
 * A worker that runs nowhere: a puppet with the message contract of a real worker process (tasks in
 * the order sent, a cleanup report after each answer when asked, skips honoured before a task starts,
 * an exit after which nothing more is said). A test decides when it becomes ready, how each task
 * ends and when it dies, so the scheduler can be driven through any interleaving without processes.
 * Messages reach the pool on a later microtask, as IPC would.
 */
export class FakeRuntime implements WorkerRuntime {
  static nextPid = 900_000;
  readonly backend = 'process' as const;
  readonly memoryScope = 'worker' as const;
  readonly threadId = undefined;
  readonly pid = FakeRuntime.nextPid++;
  /** Its RSS (MiB): grows by what each finished task leaks, reported by each cleanup. */
  rssMiB_ = 50;
  /** Tasks run since its last cleanup (cleanup.everyTasks > 1 leaves some without one). */
  private ranSinceCleanup = 0;
  /** Tasks received and not finished, oldest first: the head is the one it runs. */
  readonly inbox: Run[] = [];
  /** Every task it started, in order (a skipped one is never started). */
  readonly started: string[] = [];
  /** The RSS it reported in its last cleanup. */
  lastReportedRssMiB: number | undefined;
  /** Tasks started after a cleanup had reported RSS above `ceilingMiB` (must stay empty). */
  readonly startedOverCeiling: string[] = [];
  ceilingMiB = 0;
  /** The ceiling the pool told it (init's rssCeilingMiB): past it, it declines what it holds. */
  private declineOverMiB = 0;
  state: 'starting' | 'ready' | 'exited' = 'starting';
  exit: RuntimeExit | undefined;
  private readonly skipped = new Set<string>();
  private readonly messageListeners: Array<(message: FromWorker) => void> = [];
  private readonly exitListeners: Array<(exit: RuntimeExit) => void> = [];

  send(message: ToWorker): void {
    if (this.state === 'exited') return;
    if (message.kind === 'batch') for (const run of message.runs) this.receive(run);
    else this.receive(message);
  }

  private receive(message: Exclude<ToWorker, { kind: 'batch' }>): void {
    switch (message.kind) {
      case 'init':
        this.declineOverMiB = message.rssCeilingMiB ?? 0;
        return;
      case 'run':
        this.inbox.push(message);
        if (this.inbox.length === 1) this.begin();
        return;
      case 'skip':
        if (this.inbox.slice(1).some((r) => r.taskId === message.taskId)) this.skipped.add(message.taskId);
        return;
      case 'cleanup':
        return this.tell({ kind: 'cleaned', ms: 0, rssBeforeMiB: this.rssMiB_, rssAfterMiB: this.rssMiB_ });
      case 'release':
        return this.tell({ kind: 'released', id: message.id, model: message.model, ms: 0 });
      case 'stop':
        return;
    }
  }

  /** The head task starts (a skipped one is answered at once, as a real worker does). */
  private begin(): void {
    for (;;) {
      const head = this.inbox[0];
      if (!head) return;
      const over = this.lastReportedRssMiB;
      if (this.declineOverMiB > 0 && over !== undefined && over > this.declineOverMiB) {
        this.inbox.shift();
        this.tell({ kind: 'declined', taskId: head.taskId, rssMiB: over });
        continue;
      }
      if (!this.skipped.delete(head.taskId)) {
        this.started.push(head.taskId);
        const last = this.lastReportedRssMiB;
        if (this.ceilingMiB > 0 && last !== undefined && last > this.ceilingMiB)
          this.startedOverCeiling.push(head.taskId);
        return;
      }
      this.inbox.shift();
      this.tell({ kind: 'result', taskId: head.taskId, ok: false, error: SKIPPED });
      // As the real worker: a skipped task's cleanup still measures when tasks before it ran.
      if (head.cleanup) this.cleanUp(head.cleanup.measure, this.rssMiB_);
    }
  }

  // ---- the test's side ------------------------------------------------------------------------

  becomeReady(): void {
    if (this.state !== 'starting') return;
    this.state = 'ready';
    this.tell({ kind: 'ready', setupMs: 0 });
  }

  failSetup(message: string): void {
    if (this.state !== 'starting') return;
    this.tell({ kind: 'setup-failed', error: { code: ErrorCode.TASK_FAILED, message } });
    this.die(1, null);
  }

  /** The task it runs ends: answered with `value` or `error`, leaking `leakMiB`; then its next starts. */
  finish(answer: { value: unknown } | { error: ErrorShape }, leakMiB = 0): boolean {
    const head = this.inbox.shift();
    if (!head || this.state !== 'ready') return false;
    this.tell(
      'error' in answer
        ? { kind: 'result', taskId: head.taskId, ok: false, error: answer.error }
        : { kind: 'result', taskId: head.taskId, ok: true, value: answer.value },
    );
    this.rssMiB_ += leakMiB;
    this.ranSinceCleanup++;
    if (head.cleanup) this.cleanUp(head.cleanup.measure, this.rssMiB_);
    this.begin();
    return true;
  }

  private cleanUp(measure: boolean, beforeMiB: number): void {
    const ran = this.ranSinceCleanup;
    this.ranSinceCleanup = 0;
    if (!measure || ran === 0) return this.tell({ kind: 'cleaned', ms: 0 });
    this.lastReportedRssMiB = this.rssMiB_;
    this.tell({ kind: 'cleaned', ms: 0, rssBeforeMiB: beforeMiB, rssAfterMiB: this.rssMiB_, tasks: ran });
  }

  /** It dies (a crash: a code; a kill: a signal). Nothing it says reaches the pool afterwards. */
  die(code: number | null, signal: NodeJS.Signals | null): void {
    if (this.state === 'exited') return;
    this.state = 'exited';
    this.exit = { code, signal };
    const exit = this.exit;
    queueMicrotask(() => {
      for (const listener of [...this.exitListeners]) listener(exit);
    });
  }

  private tell(message: FromWorker): void {
    queueMicrotask(() => {
      if (this.state === 'exited' && message.kind !== 'setup-failed') return;
      for (const listener of [...this.messageListeners]) listener(message);
    });
  }

  // ---- WorkerRuntime --------------------------------------------------------------------------

  onMessage(listener: (message: FromWorker) => void): void {
    this.messageListeners.push(listener);
  }

  offMessage(listener: (message: FromWorker) => void): void {
    const index = this.messageListeners.indexOf(listener);
    if (index >= 0) this.messageListeners.splice(index, 1);
  }

  onExit(listener: (exit: RuntimeExit) => void): void {
    this.exitListeners.push(listener);
  }

  offExit(listener: (exit: RuntimeExit) => void): void {
    const index = this.exitListeners.indexOf(listener);
    if (index >= 0) this.exitListeners.splice(index, 1);
  }

  end(how: 'term' | 'kill'): void {
    this.die(null, how === 'kill' ? 'SIGKILL' : 'SIGTERM');
  }

  rssMiB(): Promise<number | undefined> {
    return Promise.resolve(this.state === 'exited' ? undefined : this.rssMiB_);
  }
}

/** Every fake worker a pool started, for a test to drive: `start` is the pool's runtime starter. */
export class FakeWorkers {
  readonly all: FakeRuntime[] = [];

  readonly start = (): Promise<WorkerRuntime> => {
    const runtime = new FakeRuntime();
    this.all.push(runtime);
    return Promise.resolve(runtime);
  };

  /** Workers still starting (waiting for the test to say how their start ends). */
  get starting(): FakeRuntime[] {
    return this.all.filter((r) => r.state === 'starting');
  }

  get ready(): FakeRuntime[] {
    return this.all.filter((r) => r.state === 'ready');
  }
}
