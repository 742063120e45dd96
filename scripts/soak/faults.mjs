// One function per fault kind. Each injects its fault and says whether the supervisor answered as it
// must: the expected error code, an answer at all, and (for faults that end a worker) the pool full again.
import { connect } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { fnv1a } from '../../test/fixtures/soak-worker.mjs';

let seq = 0;
const nextId = (kind) => `${kind}-${++seq}`;

/** Sends a task and checks its answer's code (and message, if given). */
async function expectCode(ctx, kind, payload, code, { timeoutMs, message } = {}) {
  const id = nextId(kind);
  const msg = { type: 'task', id, payload, ...(timeoutMs ? { timeoutMs } : {}) };
  const answer = await ctx.daemon.request(msg);
  const got = answer === undefined ? 'no answer' : answer.ok ? 'ok' : answer.error.code;
  const ok = got === code && (!message || message.test(answer.error.message));
  return {
    kind,
    id,
    ok,
    code: got,
    detail: answer?.ok === false ? answer.error.message : undefined,
    at: performance.now(),
  };
}

async function withRecovery(ctx, result, victim) {
  result.recoveryMs = await ctx.monitor.recovered(result.at, victim);
  return result;
}

async function signalWorker(ctx, kind) {
  const pid = await ctx.monitor.pickWorker(ctx.random);
  if (pid === undefined) return { kind, ok: true, skipped: 'no live worker' };
  try {
    process.kill(pid, kind === 'sigkill-worker' ? 'SIGKILL' : 'SIGSTOP');
  } catch {
    return { kind, ok: true, skipped: 'the worker exited before the signal' };
  }
  if (kind === 'sigkill-worker') {
    return withRecovery(ctx, { kind, ok: true, at: performance.now(), pid }, pid);
  }
  // Stopped long enough to trip a short task deadline now and then (the worker is then killed).
  await sleep(ctx.random.int(200, 800));
  try {
    process.kill(pid, 'SIGCONT');
  } catch {
    // killed while stopped (a task on it timed out): SIGKILL works on stopped processes
  }
  return withRecovery(ctx, { kind, ok: true, at: performance.now(), pid });
}

const MALFORMED_WITH_ID = [
  (id) => ({ type: 'task', id }),
  (id) => ({ type: 'task', id, payload: {}, timeoutMs: -1 }),
  (id) => ({ type: 'task', id, payload: {}, priority: 0.5 }),
  (id) => ({ type: 'admin', id, command: 'reboot' }),
  (id) => ({ type: 'task', id, payload: { op: 'no-such-op' } }),
];
const MALFORMED_NO_ID = [
  () => ({ type: 'task' }),
  () => 'just a string',
  () => 42,
  () => ({ type: 'task', id: 'x'.repeat(300), payload: {} }),
  () => ({ type: 10n, id: 'bigint-type' }),
];

async function malformed(ctx, kind) {
  if (ctx.random.chance(0.5)) {
    const id = nextId(kind);
    const answer = await ctx.daemon.request(ctx.random.pick(MALFORMED_WITH_ID)(id));
    const code = answer === undefined ? 'no answer' : answer.ok ? 'ok' : answer.error.code;
    return { kind, id, ok: code === 'E_BAD_REQUEST', code };
  }
  ctx.daemon.send(ctx.random.pick(MALFORMED_NO_ID)());
  ctx.idlessSent++;
  return { kind, ok: true, code: 'error message' };
}

async function admin(ctx, kind, command) {
  const id = nextId(kind);
  const answer = await ctx.daemon.request({ type: 'admin', id, command });
  const result = {
    kind,
    id,
    ok: answer?.ok === true,
    code: answer?.ok ? 'ok' : (answer?.error.code ?? 'no answer'),
    at: performance.now(),
  };
  return withRecovery(ctx, result);
}

/** A socket client that sends tasks and hangs up mid-task, or mid-frame. */
async function socketDisconnect(ctx, kind) {
  if (!ctx.socketPath) return { kind, ok: true, skipped: 'no socket front' };
  const { encodeFrame, FrameDecoder } = ctx.frameCodec;
  const socket = connect(ctx.socketPath);
  socket.on('error', () => undefined);
  await new Promise((resolve) => socket.once('connect', resolve).once('error', resolve));
  const decoder = new FrameDecoder(64 * 1024 * 1024);
  const answers = [];
  socket.on('data', (chunk) => answers.push(...decoder.push(chunk)));
  const expected = new Map();
  for (const j of [0, 1, 2]) {
    const id = `sock-${++seq}`;
    const task = { op: 'hash', n: -1 - j, text: `socket ${id}`, sleepMs: 20 };
    expected.set(id, fnv1a(`${task.n}:${task.text}`));
    const frame = encodeFrame({ type: 'task', id, payload: task });
    // The last frame is cut short half the time: the server must drop it, not wait for the rest.
    socket.write(j === 2 && ctx.random.chance(0.5) ? frame.subarray(0, frame.length - 3) : frame);
  }
  await sleep(ctx.random.int(5, 40));
  socket.destroy();
  const results = answers.filter((a) => a.kind === 'message' && a.message.type === 'result');
  const wrong = results.filter((a) => a.message.ok && a.message.value.hash !== expected.get(a.message.id));
  return { kind, ok: wrong.length === 0, received: results.length, wrong: wrong.length };
}

export const FAULTS = {
  'sigkill-worker': (ctx, kind) => signalWorker(ctx, kind),
  'sigstop-worker': (ctx, kind) => signalWorker(ctx, kind),
  'hang-task': async (ctx, kind) =>
    withRecovery(ctx, await expectCode(ctx, kind, { op: 'hang' }, 'E_TIMEOUT', { timeoutMs: 300 })),
  'throw-task': (ctx, kind) =>
    expectCode(ctx, kind, { op: 'throw', message: 'chaos' }, 'E_TASK_FAILED', { message: /chaos/ }),
  'exit-task': async (ctx, kind) =>
    withRecovery(ctx, await expectCode(ctx, kind, { op: 'exit' }, 'E_WORKER_CRASHED')),
  'heap-oom-task': async (ctx, kind) => {
    const result = await expectCode(ctx, kind, { op: 'oom' }, 'E_WORKER_CRASHED');
    result.heapNamed = /heap limit|heap out of memory/i.test(result.detail ?? '');
    return withRecovery(ctx, result);
  },
  'malformed-message': malformed,
  'oversized-message': (ctx, kind) =>
    expectCode(
      ctx,
      kind,
      { op: 'hash', n: -1, text: '', blob: new Uint8Array(ctx.maxMessageBytes + 4096) },
      'E_BAD_REQUEST',
      {
        message: /maxMessageBytes/,
      },
    ),
  'admin-recycle': (ctx, kind) => admin(ctx, kind, 'recycle'),
  'admin-clear-cache': (ctx, kind) => admin(ctx, kind, 'clear-cache'),
  'socket-disconnect': socketDisconnect,
};
