// The gpu-supervisor CLI as an operator runs it: `node dist/cli/main.js ...` as a real process against a
// daemon started by the CLI's own `start`, with the default ONNX worker and the shipped mlp model.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SupervisorClient, type SupervisorStats } from 'gpu-supervisor';
import { SupervisorProcess } from './fixtures/supervisor-process.js';
import { CLI_ENTRY, runCli, type CliResult } from './helpers.js';

const TOKEN = 'cli-test-token-98765';

describe('gpu-supervisor CLI', () => {
  let dir: string;
  let socket: string;
  let daemon: SupervisorProcess;
  let input: string;
  const authed = { GPU_SUPERVISOR_ADMIN_TOKEN: TOKEN };
  const x = Array.from({ length: 512 }, (_, i) => Math.sin(i / 7));

  const run = (args: string[], env: NodeJS.ProcessEnv = authed): Promise<CliResult> =>
    runCli([...args, '--socket', socket], env);
  const json = async <T>(args: string[]): Promise<T> => {
    const result = await run([...args, '--json']);
    assert.equal(result.code, 0, result.stderr);
    return JSON.parse(result.stdout) as T;
  };

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'gpu-sup-cli-'));
    socket = join(dir, 'sup.sock');
    input = join(dir, 'input.json');
    writeFileSync(input, JSON.stringify({ inputs: { x: { type: 'float32', dims: [1, 512], data: x } } }));
    daemon = SupervisorProcess.daemon(
      [
        'start',
        '--socket',
        socket,
        '--workers',
        '1',
        '--recycle-every',
        '0',
        '--history',
        join(dir, 'history.db'),
      ],
      { env: authed, entry: CLI_ENTRY },
    );
    await daemon.waitForLog('socket listening', 60_000);
  });
  after(async () => {
    const { code } = await daemon.stop();
    rmSync(dir, { recursive: true, force: true });
    assert.equal(code, 0, 'the daemon started by `gpu-supervisor start` exits 0 on SIGTERM');
  });

  test('start runs the supervisor in the foreground (this daemon is it)', () => {
    assert.equal(daemon.logsWith('supervisor ready')[0]?.supervisorPid, daemon.child.pid);
  });

  test('stats: tables for humans, JSON for scripts', async () => {
    const human = await run(['stats']);
    assert.equal(human.code, 0, human.stderr);
    assert.match(human.stdout, /^SUPERVISOR\s+RSS/m);
    assert.match(human.stdout, /^WORKER\s+SLOT\s+STATE\s+HOLDS\s+TASKS/m);
    assert.match(human.stdout, /GPUs: none measured|^GPU\s+NAME/m);
    const stats = await json<SupervisorStats>(['stats']);
    assert.equal(stats.supervisor.pid, daemon.child.pid);
    assert.equal(stats.workers.length, 1);
    assert.equal(stats.workers[0]!.inFlight, 0, 'an idle worker holds no task');
    assert.ok(human.stdout.includes(String(stats.workers[0]!.pid)));
    // The worker's last start, fork to ready (issue 16), in the worker's row.
    const start = stats.workers[0]!.start;
    assert.ok(start && start.totalMs > 0, 'stats carry the last start');
    const row = human.stdout.split('\n').find((l) => l.startsWith(String(stats.workers[0]!.pid)));
    assert.match(human.stdout, /^WORKER\s.*\sSTART$/m);
    assert.ok(row?.trimEnd().endsWith(`${Math.round(start.totalMs)} ms`), row);
  });

  test('submit runs the model and prints its outputs; --json gives the same numbers as the client', async () => {
    const human = await run(['submit', '--model', 'mlp', '--input', input]);
    assert.equal(human.code, 0, human.stderr);
    assert.match(human.stdout, /^y {2}float32 \[1, 512\] {2}-?\d/m);
    const answer = await json<{ outputs: { y: { dims: number[]; data: number[] } }; workerPid: number }>([
      'submit',
      '--model',
      'mlp',
      '--input',
      input,
    ]);
    assert.deepEqual(answer.outputs.y.dims, [1, 512]);
    const client = await SupervisorClient.connect(socket);
    try {
      const direct = (await client.run({
        model: 'mlp',
        inputs: { x: { type: 'float32', dims: [1, 512], data: Float32Array.from(x) } },
      })) as { outputs: { y: { data: Float32Array } } };
      assert.deepEqual(answer.outputs.y.data, Array.from(direct.outputs.y.data));
    } finally {
      await client.close();
    }
    const missing = await run(['submit', '--model', 'nope', '--input', input]);
    assert.equal(missing.code, 1);
    assert.match(missing.stderr, /E_MODEL_NOT_FOUND/);
    const usage = await run(['submit', '--model', 'mlp']);
    assert.equal(usage.code, 2);
  });

  test('history [--last N]', async () => {
    type Row = { model: string; ok: boolean; code?: string };
    const last = await json<{ tasks: Row[] }>(['history', '--last', '1']);
    assert.equal(last.tasks.length, 1);
    // The newest task is the failed submit of the previous test.
    assert.deepEqual(
      [last.tasks[0]!.model, last.tasks[0]!.ok, last.tasks[0]!.code],
      ['nope', false, 'E_MODEL_NOT_FOUND'],
    );
    const all = await json<{ tasks: unknown[] }>(['history']);
    assert.ok(all.tasks.length >= 3);
    const human = await run(['history', '--last', '2']);
    assert.equal(human.code, 0, human.stderr);
    assert.match(human.stdout, /^AT\s+ID\s+MODEL/m);
    assert.equal(human.stdout.trim().split('\n').length, 3);
    assert.equal((await run(['history', '--last', '0'])).code, 2);
  });

  test('recycle, recycle --worker PID, clear-cache', async () => {
    const before = (await json<SupervisorStats>(['stats'])).workers[0]!.pid;
    const recycled = await json<{ recycled: number[] }>(['recycle']);
    assert.deepEqual(recycled.recycled, [before]);
    const next = (await json<SupervisorStats>(['stats'])).workers[0]!.pid;
    assert.notEqual(next, before);
    const one = await run(['recycle', '--worker', String(next)]);
    assert.equal(one.code, 0, one.stderr);
    const [line, freed] = one.stdout.trim().split('\n');
    assert.equal(line, `recycled workers ${next}`);
    // The seed's one-line form of what the recycle freed (issue 15).
    assert.match(freed ?? '', /^RAM: \d+\.\dMB -> \d+\.\dMB \(freed ~-?\d+\.\dMB\)$/);
    const unknown = await run(['recycle', '--worker', '1']);
    assert.equal(unknown.code, 1);
    assert.match(unknown.stderr, /^gpu-supervisor: E_BAD_REQUEST: /);
    assert.equal((await run(['recycle', '--worker', 'abc'])).code, 2);
    // Past 2^53 a pid loses digits, past 1e308 it is Infinity (sent as null): a usage error, short.
    for (const pid of ['9007199254740993', '9'.repeat(400)]) {
      const huge = await run(['recycle', '--worker', pid]);
      assert.equal(huge.code, 2, huge.stderr);
      assert.match(huge.stderr, /--worker must be a positive integer/);
      assert.ok(huge.stderr.length < 200, huge.stderr);
    }
    const cache = await json<{ recycled: number[] }>(['clear-cache']);
    assert.equal(cache.recycled.length, 1);
  });

  test('clear-history', async () => {
    await run(['submit', '--model', 'mlp', '--input', input]);
    const cleared = await json<{ removed: number; recycled: number[] }>(['clear-history']);
    assert.ok(cleared.removed >= 1);
    const after = await run(['history']);
    assert.equal(after.stdout.trim(), 'no tasks recorded');
  });

  test('report: text for humans, JSON for scripts, the memory timeline as SVG', async () => {
    await run(['submit', '--model', 'mlp', '--input', input]);
    const human = await run(['report']);
    assert.equal(human.code, 0, human.stderr);
    assert.ok(human.stdout.trim().length > 0);
    const report = await json<{ tasks: { total: number }; workers: unknown[] }>(['report']);
    assert.ok(report.tasks.total >= 1, JSON.stringify(report.tasks));
    assert.ok(Array.isArray(report.workers));
    const svg = join(dir, 'timeline.svg');
    const drawn = await run(['report', '--svg', svg]);
    assert.equal(drawn.code, 0, drawn.stderr);
    assert.match(readFileSync(svg, 'utf8'), /^<svg[\s\S]*<\/svg>\s*$/);
  });

  test('clear-cache --model NAME [--mode light]: the session released in place, or the holder recycled', async () => {
    await run(['submit', '--model', 'mlp', '--input', input]);
    const pid = (await json<SupervisorStats>(['stats'])).workers[0]!.pid;
    const light = await run(['clear-cache', '--model', 'mlp', '--mode', 'light']);
    assert.equal(light.code, 0, light.stderr);
    const [said, freed] = light.stdout.trim().split('\n');
    assert.equal(said, `released mlp in place on workers ${pid}`);
    assert.match(freed ?? '', /^RAM: \d+\.\dMB -> \d+\.\dMB \(freed ~-?\d+\.\dMB\)$/);
    const kept = (await json<SupervisorStats>(['stats'])).workers[0]!;
    assert.equal(kept.pid, pid, 'no restart');
    assert.deepEqual(kept.sessions, []);
    // Nobody holds mlp now: nothing to recycle.
    const none = await run(['clear-cache', '--model', 'mlp']);
    assert.equal(none.stdout.split('\n')[0], 'no worker recycled');
    await run(['submit', '--model', 'mlp', '--input', input]);
    const recycled = await json<{ recycled: number[]; model: string }>(['clear-cache', '--model', 'mlp']);
    assert.deepEqual([recycled.recycled, recycled.model], [[pid], 'mlp']);
    const unknown = await run(['clear-cache', '--model', 'no-such-model']);
    assert.equal(unknown.code, 1);
    assert.match(unknown.stderr, /^gpu-supervisor: E_MODEL_NOT_FOUND: unknown model "no-such-model"/);
    assert.equal((await run(['clear-cache', '--mode', 'light'])).code, 2, '--mode light needs --model');
    assert.equal((await run(['clear-cache', '--model', 'mlp', '--mode', 'hard'])).code, 2);
  });

  test('the token comes from the environment or --token-file, never a flag', async () => {
    const none = await run(['stats'], {});
    assert.equal(none.code, 1);
    assert.match(none.stderr, /E_UNAUTHORIZED/);
    const wrong = await run(['stats'], { GPU_SUPERVISOR_ADMIN_TOKEN: 'not-the-token' });
    assert.equal(wrong.code, 1);
    assert.match(wrong.stderr, /E_UNAUTHORIZED/);
    const file = join(dir, 'token');
    writeFileSync(file, `${TOKEN}\n`, { mode: 0o600 });
    const fromFile = await run(['stats', '--token-file', file], {});
    assert.equal(fromFile.code, 0, fromFile.stderr);
    assert.equal((await run(['stats', '--token', TOKEN], {})).code, 2);
  });

  test('not running: one line on stderr, exit code 3', async () => {
    const result = await runCli(['stats', '--socket', join(dir, 'nobody.sock')]);
    assert.equal(result.code, 3);
    assert.equal(result.stdout, '');
    assert.equal(result.stderr.trim().split('\n').length, 1);
    assert.match(result.stderr, /no supervisor is listening on .*nobody\.sock/);
  });

  test('usage errors exit 2', async () => {
    assert.equal((await runCli(['frobnicate'])).code, 2);
    assert.equal((await runCli([])).code, 2);
    const help = await runCli(['--help']);
    assert.equal(help.code, 0);
    assert.match(help.stdout, /exit codes: 0 ok, 1 command failed, 2 usage, 3 supervisor not running/);
  });
});
