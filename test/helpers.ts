import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { InferenceSession } from 'onnxruntime-node';
import { SupervisorError, type Supervisor, type SupervisorEventMap } from 'gpu-supervisor';

import { SupervisorProcess } from './fixtures/supervisor-process.js';

export { SUPERVISOR_ENTRY, SupervisorProcess, type LogLine } from './fixtures/supervisor-process.js';

export const ROOT = fileURLToPath(new URL('..', import.meta.url));
export const ECHO_WORKER = fileURLToPath(new URL('./fixtures/echo-worker.mjs', import.meta.url));

const scratchDirs: string[] = [];
const removeScratch = (): void => {
  for (const dir of scratchDirs.splice(0)) rmSync(dir, { recursive: true, force: true });
};
// At exit, and when the runner ends the file's process (a file over its timeout gets SIGTERM, which
// would otherwise skip the exit handlers).
process.once('exit', removeScratch);
for (const signal of ['SIGTERM', 'SIGINT'] as const) {
  process.once(signal, () => {
    removeScratch();
    process.exit(128 + (signal === 'SIGTERM' ? 15 : 2));
  });
}

/**
 * A fresh temp directory that is removed when this test file is done, passed or failed (every test
 * file runs in a process of its own), so a run leaves nothing in the temp dir behind it.
 */
export function scratchDir(prefix: string): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  scratchDirs.push(dir);
  return dir;
}

/**
 * `node dist/supervisor.js` as a daemon serving HTTP on a port of its own, with the echo worker and
 * neither socket nor history. With `setupDelayMs` every worker's setup takes that long: the window
 * in which the pool is still starting. Resolves once HTTP listens (before the workers are ready).
 */
export async function httpDaemon(setupDelayMs = 0): Promise<{ daemon: SupervisorProcess; port: number }> {
  const args = ['--http-port', '0', '--worker', ECHO_WORKER, '--socket', 'off', '--history', 'off'];
  if (setupDelayMs > 0) {
    const config = join(scratchDir('gpu-sup-slow-start-'), 'config.json');
    writeFileSync(config, JSON.stringify({ workerOptions: { setupDelayMs } }));
    args.unshift('--config', config);
  }
  const daemon = SupervisorProcess.daemon(args, { cwd: ROOT });
  const port = (await daemon.waitForLog('http listening', 30_000)).port as number;
  return { daemon, port };
}

/**
 * The error-code checks of the suite. `expectCode`: `promise` must reject with a SupervisorError carrying exactly
 * `code` (and a message matching `message`, when given); a value or another error fails the test.
 */
export async function expectCode(
  promise: Promise<unknown>,
  code: string,
  message?: RegExp,
): Promise<SupervisorError> {
  const error = await promise.then(
    (value) => assert.fail(`expected ${code}, got value ${JSON.stringify(value)}`),
    (e: unknown) => e,
  );
  assert.ok(error instanceof SupervisorError, `expected ${code}, got ${String(error)}`);
  assert.equal(error.code, code, error.message);
  if (message) assert.match(error.message, message);
  return error;
}

/**
 * The same check for an answer that carries its error as data (a TaskOutcome, an IPC or socket
 * `result`/`admin-result`, an HTTP error body): it must not be ok and must carry exactly `code` (and a
 * message matching `message`, when given). Returns the error.
 */
export function expectFailure(
  answer: unknown,
  code: string,
  message?: RegExp,
): { code: string; message: string } {
  const shown = JSON.stringify(answer)?.slice(0, 300);
  assert.ok(answer !== null && typeof answer === 'object', `expected ${code}, got ${shown}`);
  const { ok, error } = answer as { ok?: unknown; error?: { code?: unknown; message?: unknown } };
  assert.notEqual(ok, true, `expected ${code}, got ${shown}`);
  assert.ok(error && typeof error.code === 'string', `expected ${code}, got ${shown}`);
  assert.equal(error.code, code, String(error.message));
  if (message) assert.match(String(error.message), message);
  return error as { code: string; message: string };
}

/**
 * For a `.catch` where exactly one refusal is expected (polling until a slot frees up, say): the
 * rejection becomes `undefined` when it carries `code`, and any other error still fails the test.
 */
export function unlessCode(code: string): (error: unknown) => undefined {
  return (error) => {
    if (error instanceof SupervisorError && error.code === code) return undefined;
    throw error;
  };
}

/**
 * The live (not zombie) processes whose parent is `ppid`, read from the process table (/proc), so a
 * check sees every child the supervisor forked, whatever events it did or did not emit about them.
 */
export function childPids(ppid: number = process.pid): number[] {
  const children: number[] = [];
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const stat = readFileSync(`/proc/${name}/stat`, 'utf8');
      // Fields after the command name (which may hold spaces and parentheses): state, ppid, ...
      const [state, parent] = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      if (Number(parent) === ppid && state !== 'Z') children.push(Number(name));
    } catch {
      // exited while we read the table
    }
  }
  return children;
}

/** Running, not merely a zombie waiting for its new parent to reap it. */
export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch {
    return false;
  }
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z';
  } catch {
    return true; // no /proc (not Linux): kill(0) is all we know
  }
}

/** Every `event` the supervisor emits from now on, in order (the array fills as they come). */
export function collectEvents<E extends keyof SupervisorEventMap>(
  sup: Supervisor,
  event: E,
): SupervisorEventMap[E][] {
  const seen: SupervisorEventMap[E][] = [];
  sup.events.on(event, (e) => seen.push(e));
  return seen;
}

export async function waitUntil(
  check: () => boolean | Promise<boolean>,
  what: string,
  timeoutMs = 10_000,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting until ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

export const sileroInputs = (samples = 512, form: 'typed' | 'json' = 'typed') => {
  const audio = new Float32Array(samples).map((_, i) => 0.5 * Math.sin((2 * Math.PI * 220 * i) / 16000));
  const state = new Float32Array(2 * 64);
  if (form === 'json') {
    return {
      input: { type: 'float32', dims: [1, samples], data: Array.from(audio) },
      sr: { type: 'int64', dims: [], data: [16000] },
      h: { type: 'float32', dims: [2, 1, 64], data: Array.from(state) },
      c: { type: 'float32', dims: [2, 1, 64], data: Array.from(state) },
    };
  }
  return {
    input: { type: 'float32', dims: [1, samples], data: audio },
    sr: { type: 'int64', dims: [], data: new BigInt64Array([16000n]) },
    h: { type: 'float32', dims: [2, 1, 64], data: state },
    c: { type: 'float32', dims: [2, 1, 64], data: new Float32Array(state) },
  };
};

/**
 * What silero-vad gives for sileroInputs(samples) in an in-process onnxruntime-node session: the
 * numbers a worker must give back. onnxruntime-node is imported on the first call, not with these
 * helpers, so test files that never ask do not load the native binding.
 */
export async function sileroReference(samples: number): Promise<InferenceSession.ReturnType> {
  const { InferenceSession, Tensor } = await import('onnxruntime-node');
  const direct = await InferenceSession.create(`${ROOT}models/silero_vad.onnx`, { intraOpNumThreads: 1 });
  try {
    const feeds = Object.fromEntries(
      Object.entries(sileroInputs(samples)).map(([k, v]) => [
        k,
        new Tensor(v.type as 'float32', v.data as Float32Array, v.dims),
      ]),
    );
    return await direct.run(feeds);
  } finally {
    await direct.release();
  }
}

/**
 * One task running (op hang) and one queued behind it on a one-worker pool, both cancelled through
 * their AbortSignals 100 ms later: each is answered E_CANCELLED.
 */
export async function cancelRunningAndQueued(sup: Pick<Supervisor, 'run'>): Promise<void> {
  const running = new AbortController();
  const queued = new AbortController();
  const a = sup.run({ op: 'hang' }, { signal: running.signal });
  const b = sup.run({ op: 'echo', value: 'never' }, { signal: queued.signal });
  setTimeout(() => {
    queued.abort();
    running.abort();
  }, 100);
  await expectCode(a, 'E_CANCELLED');
  await expectCode(b, 'E_CANCELLED');
}

export const CLI_ENTRY = fileURLToPath(new URL('../dist/cli/main.js', import.meta.url));

export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

/**
 * Runs the `gpu-supervisor` CLI as a user would, with none of this machine's GPU_SUPERVISOR_* token,
 * Redis or queue settings leaking in (a test passes what it means in `env`).
 */
export function runCli(args: string[], env: NodeJS.ProcessEnv = {}): Promise<CliResult> {
  const clean = {
    ...process.env,
    GPU_SUPERVISOR_ADMIN_TOKEN: '',
    GPU_SUPERVISOR_REDIS_URL: '',
    GPU_SUPERVISOR_QUEUE: '',
  };
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      [CLI_ENTRY, ...args],
      { env: { ...clean, ...env }, timeout: 60_000 },
      (error, stdout, stderr) => {
        const code = error ? ((error as { code?: unknown }).code as number) : 0;
        resolve({ code: typeof code === 'number' ? code : -1, stdout, stderr });
      },
    );
  });
}
