// One function per fault kind. Each injects its fault and says whether the supervisor answered as it
// must: the expected error code, an answer at all, and (for faults that end a worker) the pool full again.
import { connect } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { fnv1a } from '../../test/fixtures/soak-worker.mjs';
import { killerOf } from './crash-trace.mjs';

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
    ctx.killer.record(pid, kind);
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

/** Sends a hash task; resolves with what is wrong with its answer ('' if ok), and its code. */
async function hashTask(ctx, id, text, killed) {
  const task = { op: 'hash', n: -1, text, sleepMs: 2 };
  const answer = await ctx.daemon.request({ type: 'task', id, payload: task });
  const code = answer === undefined ? 'no answer' : answer.ok ? 'ok' : answer.error.code;
  if (answer?.ok)
    return { code, wrong: answer.value?.hash === fnv1a(`${task.n}:${task.text}`) ? '' : 'wrong value' };
  // A crash is one of the storm's documented answers only for a task running in a worker the soak killed.
  if (killed && code === 'E_WORKER_CRASHED' && killerOf(answer.error.message, id, ctx.killer.killed))
    return { code, wrong: '' };
  return { code, wrong: `${code}: ${answer?.error?.message ?? 'supervisor gone'}` };
}

/**
 * A storm of external SIGKILLs: a live worker (starting ones included) killed every `everyMs` for
 * `forMs`, not waiting for the pool to refill, with the config's minUptimeMs left at the product's
 * default, while tasks of its own keep two per worker in flight (so the storm meets traffic however far
 * behind the normal tasks the fault lane runs). Each of those is ok with the right value, or
 * E_WORKER_CRASHED for the task running in a killed worker: never E_WORKERS_UNAVAILABLE. Then the pool
 * must be full again within the storm's recovery limit and every worker must serve: one probe task per
 * worker, each ok. (That it raised no `degraded` is checked at the end with the log lines.)
 */
async function killStorm(ctx, kind) {
  const { forMs, everyMs, recoveryLimitMs } = ctx.storm;
  const ids = [];
  const codes = {};
  const wrong = [];
  let storming = true;
  const traffic = Array.from({ length: 2 * ctx.monitor.workers }, async () => {
    while (storming && ctx.daemon.alive) {
      const id = nextId(`${kind}-task`);
      ids.push(id);
      const answer = await hashTask(ctx, id, `in the storm ${id}`, true);
      codes[answer.code] = (codes[answer.code] ?? 0) + 1;
      if (answer.wrong) wrong.push(`${id}: ${answer.wrong}`);
    }
  });
  const kills = await ctx.killer.storm(forMs, everyMs, kind);
  storming = false;
  await Promise.all(traffic);
  const at = performance.now();
  const recoveryMs = await ctx.monitor.recovered(at, undefined, recoveryLimitMs + 1000);
  const probeIds = Array.from({ length: ctx.monitor.workers }, () => nextId(`${kind}-probe`));
  ids.push(...probeIds);
  const probes = await Promise.all(probeIds.map((id) => hashTask(ctx, id, `after the storm ${id}`, false)));
  probes.forEach((p, i) => p.wrong && wrong.push(`${probeIds[i]} (after the storm): ${p.wrong}`));
  return {
    kind,
    ok: kills > 0 && wrong.length === 0,
    code: wrong.length === 0 ? 'ok' : 'wrong answers',
    detail: kills === 0 ? 'no worker to kill' : wrong.slice(0, 5).join('; ') || undefined,
    kills,
    codes,
    ids,
    at,
    recoveryMs,
    recoveryLimitMs,
  };
}

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
  if (!ctx.socketPath) return { kind, ok: false, code: 'no socket front' };
  const { encodeFrame, FrameDecoder } = ctx.frameCodec;
  const socket = connect(ctx.socketPath);
  let connectError;
  socket.on('error', (error) => (connectError ??= error));
  await new Promise((resolve) => socket.once('connect', resolve).once('error', resolve));
  if (connectError) return { kind, ok: false, code: 'no connection', detail: connectError.message };
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
  'kill-storm': killStorm,
};
