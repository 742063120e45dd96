/**
 * The program every worker process runs: loads the worker module, answers tasks one at a time in
 * the order they came (the pool may send some ahead),
 * cleans up when the pool asks, and exits when its supervisor goes away (a worker must never outlive
 * it: an orphan would hold its GPU memory forever).
 */
import { bindToParent } from './parent-death.js';
import type { FromWorker, ToWorker } from '../protocol/worker-messages.js';
import { ErrorCode } from '../protocol/errors.js';
import { cleanUp, initWorker, releaseSession, runTask, tasksSinceLastCleanup, type Gc } from './core.js';

// A task blocked in native code (ORT's run) keeps this event loop from seeing the supervisor go away.
bindToParent();

const SKIPPED = { code: ErrorCode.CANCELLED, message: 'abandoned before it started' };

// The pool forks workers with --expose-gc.
const runGc = (globalThis as { gc?: Gc }).gc;

/** A cleanup that finds RSS over the ceiling: from now on this worker declines what it holds. */
function judged(cleaned: Extract<FromWorker, { kind: 'cleaned' }>): Extract<FromWorker, { kind: 'cleaned' }> {
  if (rssCeilingMiB > 0 && (cleaned.rssAfterMiB ?? 0) > rssCeilingMiB) overCeilingMiB = cleaned.rssAfterMiB;
  return cleaned;
}

function send(message: FromWorker): void {
  // A closed channel means the supervisor is gone; the 'disconnect' handler exits.
  if (process.connected) process.send?.(message);
}

/** A task's result; one that cannot be serialized (a function in it) is still an answer: the task failed. */
function sendResult(result: Extract<FromWorker, { kind: 'result' }>): void {
  try {
    send(result);
  } catch (error) {
    const message = `the worker module's result cannot be sent: ${(error as Error).message}`;
    send({
      kind: 'result',
      taskId: result.taskId,
      ok: false,
      error: { code: ErrorCode.TASK_FAILED, message },
    });
  }
}

async function init(message: Extract<ToWorker, { kind: 'init' }>): Promise<void> {
  const answer = await initWorker(message, { pid: process.pid });
  send(answer);
  if (answer.kind === 'setup-failed') {
    process.exitCode = 1;
    process.disconnect?.();
  }
}

async function stop(): Promise<void> {
  await cleanUp(true, runGc).catch(() => undefined);
  process.disconnect?.();
  process.exit(0);
}

/** Tasks received and not started yet, and those of them the pool has since abandoned. */
const queued = new Set<string>();
const skipped = new Set<string>();
/** Tasks that arrived while the worker was busy with another message (sent ahead by the pool). */
const behind = new Set<string>();
/** Messages received and not yet handled. */
let unhandled = 0;
/** recycle.rssMiB (0: none), and the RSS of the cleanup that found this worker over it. */
let rssCeilingMiB = 0;
let overCeilingMiB: number | undefined;

async function handle(message: Exclude<ToWorker, { kind: 'skip' }>): Promise<void> {
  switch (message.kind) {
    case 'init':
      rssCeilingMiB = message.rssCeilingMiB ?? 0;
      return init(message);
    case 'run': {
      // The inbox runs as microtasks, ahead of I/O: a skip for a task sent ahead may still sit unread
      // in the channel, behind the task before it. One turn of the event loop reads it.
      if (behind.delete(message.taskId)) await new Promise((resolve) => setImmediate(resolve));
      queued.delete(message.taskId);
      if (skipped.delete(message.taskId)) {
        // Abandoned while it waited behind another task: answered without running. Its cleanup still
        // runs when tasks before it left garbage (cleanup.everyTasks > 1), else there is nothing to clean.
        send({ kind: 'result', taskId: message.taskId, ok: false, error: SKIPPED });
        const { cleanup } = message;
        if (!cleanup) return;
        if (tasksSinceLastCleanup() === 0) send({ kind: 'cleaned', ms: 0 });
        else send(judged(await cleanUp(cleanup.force, runGc, cleanup.measure)));
        return;
      }
      if (overCeilingMiB !== undefined) {
        // Over the ceiling: the pool replaces this worker; a task sent ahead must not run here first.
        return send({ kind: 'declined', taskId: message.taskId, rssMiB: overCeilingMiB });
      }
      sendResult(await runTask(message.taskId, message.payload));
      // The answer is out; clean up now rather than wait for the pool to ask.
      const { cleanup } = message;
      if (!cleanup) return;
      send(judged(await cleanUp(cleanup.force, runGc, cleanup.measure)));
      return;
    }
    case 'cleanup':
      return void send(await cleanUp(message.force, runGc, message.measure));
    case 'release':
      return void send(await releaseSession(message, runGc));
    case 'stop':
      return stop();
  }
}

// One message at a time, in order: a task never starts while the previous one's cleanup still runs.
// A skip is the exception: it must overtake the task it names, so it is noted as it arrives.
let inbox = Promise.resolve();
process.on('message', (message: ToWorker) => {
  if (message.kind === 'batch') {
    for (const run of message.runs) receive(run);
    return;
  }
  receive(message);
});

function receive(message: Exclude<ToWorker, { kind: 'batch' }>): void {
  if (message.kind === 'skip') {
    if (queued.has(message.taskId)) skipped.add(message.taskId);
    return;
  }
  if (message.kind === 'run') {
    queued.add(message.taskId);
    if (unhandled > 0) behind.add(message.taskId);
  }
  unhandled++;
  inbox = inbox
    .then(() => handle(message))
    .catch(() => undefined)
    .finally(() => unhandled--);
}

// The supervisor died or closed the channel: leave now, so the driver reclaims our memory.
process.on('disconnect', () => process.exit(process.exitCode ?? 0));
// SIGTERM from the pool: same as a stop message (graceful, already cleaned up by the OS on exit).
process.on('SIGTERM', () => process.exit(0));
// A supervisor started from a terminal forwards Ctrl-C itself; workers must not die first.
process.on('SIGINT', () => undefined);
