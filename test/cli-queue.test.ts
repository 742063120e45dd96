// The CLI's scale-out commands against a real redis-server and real daemons (`node dist/supervisor.js
// --redis URL --queue Q`, spawned as an operator would): `stats --cluster` and `submit --queue`.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import type { HostStats } from '../dist/queue/cluster-stats.js';
import { readClusterStats } from '../dist/queue/cluster-stats.js';
import { QueueClient } from '../dist/queue/queue-client.js';
import { SupervisorProcess } from './fixtures/supervisor-process.js';
import { ECHO_WORKER, runCli } from './helpers.js';
import { freePort, redisSkip, TestRedis } from './redis-helpers.js';

const queueName = (what: string): string => `cli-${what}-${randomUUID().slice(0, 8)}`;

describe('gpu-supervisor CLI over BullMQ', { skip: redisSkip }, () => {
  let redis: TestRedis;
  let dir: string;
  let input: string;
  const statsQueue = queueName('stats');
  const mlpQueue = queueName('mlp');
  const daemons: SupervisorProcess[] = [];
  let echoA: SupervisorProcess;
  let echoB: SupervisorProcess;
  const x = Array.from({ length: 512 }, (_, i) => Math.cos(i / 5));

  const daemon = (queue: string, extra: string[]): SupervisorProcess => {
    const args = ['--redis', redis.url, '--queue', queue, '--socket', 'off', '--history', 'off'];
    const d = SupervisorProcess.daemon([...args, ...extra]);
    daemons.push(d);
    return d;
  };

  before(async () => {
    redis = await TestRedis.start();
    dir = mkdtempSync(join(tmpdir(), 'gs-cli-queue-'));
    input = join(dir, 'input.json');
    writeFileSync(input, JSON.stringify({ inputs: { x: { type: 'float32', dims: [1, 512], data: x } } }));
    echoA = daemon(statsQueue, ['--worker', ECHO_WORKER, '--workers', '2']);
    echoB = daemon(statsQueue, ['--worker', ECHO_WORKER, '--workers', '1']);
    daemon(mlpQueue, ['--workers', '1', '--recycle-every', '0']); // the default ONNX worker
    await Promise.all(daemons.map((d) => d.waitForLog('bullmq source started', 60_000)));
  });

  after(async () => {
    const exits = await Promise.all(daemons.map((d) => d.stop()));
    await redis?.stop();
    rmSync(dir, { recursive: true, force: true });
    for (const [i, exit] of exits.entries())
      assert.deepEqual(exit, { code: 0, signal: null }, `daemon ${i}: ${daemons[i]!.stderr.join('')}`);
  });

  /** Both echo hosts published a row that counts their workers (the first may predate the pool). */
  async function bothHosts(): Promise<void> {
    const want = new Map([
      [echoA.child.pid, 2],
      [echoB.child.pid, 1],
    ]);
    const deadline = Date.now() + 30_000;
    for (;;) {
      const rows = await readClusterStats(redis.url, statsQueue);
      if (rows.length === 2 && rows.every((r) => want.get(r.pid) === r.workers.length)) return;
      if (Date.now() > deadline) throw new Error(`both hosts never listed: ${JSON.stringify(rows)}`);
      await new Promise((r) => setTimeout(r, 250)); // each read is a new connection: not too often
    }
  }

  test('stats --cluster: one table with both hosts, then the rows as JSON', async () => {
    await bothHosts();
    const human = await runCli(['stats', '--cluster', '--redis', redis.url, '--queue', statsQueue]);
    assert.equal(human.code, 0, human.stderr);
    const lines = human.stdout.trim().split('\n');
    assert.match(lines[0]!, /^host\s+pid\s+workers\s+busy/);
    for (const [d, workers] of [
      [echoA, 2],
      [echoB, 1],
    ] as const) {
      const row = new RegExp(`^${hostname()}\\s+${d.child.pid}\\s+${workers}\\s`);
      assert.ok(
        lines.some((l) => row.test(l)),
        `no row for ${d.child.pid}:\n${human.stdout}`,
      );
    }
    assert.match(lines.at(-1)!, /^total\s+2 hosts\s+3\s/);

    const json = await runCli(['stats', '--cluster', '--redis', redis.url, '--queue', statsQueue, '--json']);
    assert.equal(json.code, 0, json.stderr);
    const rows = JSON.parse(json.stdout) as HostStats[];
    assert.equal(rows.length, 2);
    const workers = Object.fromEntries(rows.map((r) => [r.pid, r.workers.length]));
    assert.deepEqual(workers, { [echoA.child.pid!]: 2, [echoB.child.pid!]: 1 });
    for (const r of rows) assert.equal(r.queue, statsQueue);
  });

  test('stats --cluster takes --redis and --queue from the env names the daemon reads; --prefix is honoured', async () => {
    await bothHosts();
    const env = { GPU_SUPERVISOR_REDIS_URL: redis.url, GPU_SUPERVISOR_QUEUE: statsQueue };
    const fromEnv = await runCli(['stats', '--cluster', '--json'], env);
    assert.equal(fromEnv.code, 0, fromEnv.stderr);
    const pids = (JSON.parse(fromEnv.stdout) as HostStats[]).map((r) => r.pid).sort();
    assert.deepEqual(pids, [echoA.child.pid, echoB.child.pid].sort());
    // The daemons use BullMQ's default prefix, so another prefix has nobody on it.
    const other = await runCli(['stats', '--cluster', '--prefix', 'elsewhere'], env);
    assert.equal(other.code, 0, other.stderr);
    assert.equal(other.stdout.trim(), 'no live hosts');
    assert.equal((await runCli(['stats', '--cluster'])).code, 2, 'no Redis named anywhere');
    assert.equal((await runCli(['stats', '--queue', statsQueue])).code, 2, '--queue without --cluster');
  });

  test('submit --queue runs the MLP on a host of that queue; --json matches a direct QueueClient run', async () => {
    const args = ['submit', '--queue', mlpQueue, '--redis', redis.url, '--model', 'mlp', '--input', input];
    const human = await runCli(args);
    assert.equal(human.code, 0, human.stderr);
    assert.match(human.stdout, /^y {2}float32 \[1, 512\] {2}-?\d/m);
    assert.match(human.stdout, new RegExp(`^\\(queue ${mlpQueue}, \\d+ ms round trip\\)$`, 'm'));

    const json = await runCli([...args, '--json']);
    assert.equal(json.code, 0, json.stderr);
    const answer = JSON.parse(json.stdout) as { outputs: { y: { dims: number[]; data: number[] } } };
    assert.deepEqual(answer.outputs.y.dims, [1, 512]);
    const client = await QueueClient.connect({ connection: redis.url, queue: mlpQueue });
    try {
      const direct = (await client.run({
        model: 'mlp',
        inputs: { x: { type: 'float32', dims: [1, 512], data: Float32Array.from(x) } },
      })) as { outputs: { y: { data: Float32Array } } };
      assert.ok(direct.outputs.y.data instanceof Float32Array);
      assert.deepEqual(answer.outputs.y.data, Array.from(direct.outputs.y.data));
    } finally {
      await client.close();
    }
  });

  test('submit --queue: a task error prints its code and exits 1; --redis may come from the env', async () => {
    const env = { GPU_SUPERVISOR_REDIS_URL: redis.url };
    const missing = await runCli(['submit', '--queue', mlpQueue, '--model', 'nope', '--input', input], env);
    assert.equal(missing.code, 1);
    assert.equal(missing.stdout, '');
    assert.match(missing.stderr, /^gpu-supervisor: E_MODEL_NOT_FOUND: /);
    assert.equal(
      (await runCli(['submit', '--redis', redis.url, '--model', 'mlp', '--input', input])).code,
      2,
    );
  });

  test('a Redis nobody answers on: one line on stderr and exit 3, without hanging', async () => {
    const nowhere = `redis://127.0.0.1:${await freePort()}`;
    for (const args of [
      ['stats', '--cluster', '--redis', nowhere, '--queue', statsQueue],
      ['submit', '--queue', mlpQueue, '--redis', nowhere, '--model', 'mlp', '--input', input],
    ]) {
      const result = await runCli(args);
      assert.equal(result.code, 3, result.stderr);
      assert.equal(result.stdout, '');
      assert.equal(result.stderr.trim().split('\n').length, 1, result.stderr);
      assert.match(result.stderr, new RegExp(`^gpu-supervisor: cannot reach Redis at ${nowhere}: `));
    }
  });
});
