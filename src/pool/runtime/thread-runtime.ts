import { fileURLToPath } from 'node:url';
import type { Worker } from 'node:worker_threads';
import { Piscina } from 'piscina';
import { ErrorCode } from '../../protocol/errors.js';
import { toMiB } from '../../probes/process-memory.js';
import type { FromWorker, ToWorker } from '../../protocol/worker-messages.js';
import type { RuntimeExit, RuntimeStartOptions, WorkerRuntime } from './types.js';

const THREAD_ENTRY = fileURLToPath(new URL('../../worker/thread-entry.js', import.meta.url));

/**
 * A worker in a worker thread of the supervisor's process: one piscina per pool slot with one thread.
 * One piscina per slot (rather than one shared piscina) keeps a thread a worker like a process is:
 * its own handle, state machine, task count and recycle decision, so the policy code is the same for
 * both backends; and terminating it (piscina's destroy) ends exactly that thread, never a neighbour.
 * piscina would replace a thread that dies by itself; that replacement has no worker module loaded,
 * so the first exit ends this runtime and the pool starts a proper successor.
 */
export class ThreadRuntime implements WorkerRuntime {
  readonly backend = 'thread' as const;
  readonly memoryScope = 'process' as const;
  readonly pid = process.pid;
  readonly threadId: number;
  private readonly listeners = new Set<(message: FromWorker) => void>();
  private readonly exitListeners = new Set<(exit: RuntimeExit) => void>();
  private exit: RuntimeExit | undefined;
  private stopping = false;
  private destroyed = false;

  private constructor(
    private readonly piscina: Piscina,
    thread: Worker,
  ) {
    this.threadId = thread.threadId;
    // piscina re-emits errors of an idle thread; without a listener they would crash the supervisor.
    piscina.on('error', () => undefined);
    thread.once('exit', (code: number) => {
      this.exit = { code, signal: null };
      this.destroy();
      for (const listener of [...this.exitListeners]) listener(this.exit);
    });
  }

  static async start(options: RuntimeStartOptions): Promise<ThreadRuntime> {
    const piscina = new Piscina({
      filename: THREAD_ENTRY,
      minThreads: 1,
      maxThreads: 1,
      idleTimeout: Number.POSITIVE_INFINITY,
      concurrentTasksPerWorker: 1,
      // 'sync' parks an idle thread in Atomics.wait, which would freeze the module's own timers.
      atomics: 'disabled',
      execArgv: [...options.execArgv],
      name: 'default',
    });
    const thread = piscina.threads[0];
    if (!thread) {
      await piscina.destroy();
      throw new Error('piscina did not start a thread');
    }
    return new ThreadRuntime(piscina, thread);
  }

  send(message: ToWorker): void {
    // A thread holds one task at a time (nothing is sent ahead), so there is never one to skip.
    if (this.exit || this.destroyed || message.kind === 'skip') return;
    if (message.kind === 'stop') this.stopping = true;
    this.piscina.run(message).then(
      (answer: FromWorker | undefined) => {
        if (message.kind === 'stop') this.destroy();
        else if (answer && !this.exit) {
          for (const listener of [...this.listeners]) listener(answer);
          // A piscina call has one answer: the cleanup that follows a task is a call of its own.
          if (message.kind === 'run' && message.cleanup) this.send({ kind: 'cleanup', ...message.cleanup });
        }
      },
      (error: unknown) => {
        // The thread ended under the call (killed, exited): the exit listener answers for the task.
        if (message.kind === 'stop') this.destroy();
        else if (message.kind === 'run' && (error as Error).name === 'DataCloneError') {
          // piscina rejects a payload it cannot clone before posting it: the thread never saw it.
          this.deliver({ kind: 'unsent', taskId: message.taskId, message: (error as Error).message });
        } else if (!this.exit && !this.destroyed && message.kind === 'run') {
          this.deliver({
            kind: 'result',
            taskId: message.taskId,
            ok: false,
            error: { code: ErrorCode.WORKER_CRASHED, message: (error as Error).message },
          });
        }
      },
    );
  }

  private deliver(message: FromWorker): void {
    for (const listener of [...this.listeners]) listener(message);
  }

  onMessage(listener: (message: FromWorker) => void): void {
    this.listeners.add(listener);
  }

  offMessage(listener: (message: FromWorker) => void): void {
    this.listeners.delete(listener);
  }

  onExit(listener: (exit: RuntimeExit) => void): void {
    this.exitListeners.add(listener);
  }

  offExit(listener: (exit: RuntimeExit) => void): void {
    this.exitListeners.delete(listener);
  }

  end(how: 'term' | 'kill'): void {
    // 'term' after a stop message waits for the stop (its forced cleanup); a kill cannot wait.
    if (how === 'term' && this.stopping) return;
    this.destroy();
  }

  private destroy(): void {
    if (this.destroyed) return;
    this.destroyed = true;
    // Terminates the thread (V8 stops even a busy JS loop; a native call finishes first).
    void this.piscina.destroy().catch(() => undefined);
  }

  /** The supervisor process's RSS: threads share it, so a delta is the process's, not one worker's. */
  rssMiB(): Promise<number | undefined> {
    return Promise.resolve(toMiB(process.memoryUsage.rss()));
  }
}
