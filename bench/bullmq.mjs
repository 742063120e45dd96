#!/usr/bin/env node
// BullMQ bench: jobs/s through a BullMQ queue against the direct library path (same echo workers), the
// per-job overhead that implies, and throughput from 1 to 3 supervisor processes on one queue with an
// I/O-bound task (a sleep), so the host's cores do not cap it. Needs redis-server on PATH, or REDIS_URL.
// Usage: node bench/bullmq.mjs [--jobs 2000] [--scale-jobs 600] [--sleep-ms 25]
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { Supervisor } from '../dist/index.js';
import { startBullmqSource } from '../dist/sources/bullmq-source.js';
import { QueueClient } from '../dist/index.js';
import { createLogger } from '../dist/logging/logger.js';

const { values } = parseArgs({
  options: {
    jobs: { type: 'string', default: '2000' },
    'scale-jobs': { type: 'string', default: '600' },
    'sleep-ms': { type: 'string', default: '25' },
  },
});
const JOBS = Number(values.jobs);
const SCALE_JOBS = Number(values['scale-jobs']);
const SLEEP_MS = Number(values['sleep-ms']);
const ECHO = fileURLToPath(new URL('../test/fixtures/echo-worker.mjs', import.meta.url));
const ENTRY = fileURLToPath(new URL('../dist/supervisor.js', import.meta.url));
const IN_FLIGHT = 64;
const log = createLogger('warn');

async function freePort() {
  const server = createServer().listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address();
  await new Promise((r) => server.close(r));
  return port;
}

function ping(port) {
  return new Promise((resolve) => {
    const socket = connect(port, '127.0.0.1', () => socket.write('PING\r\n'));
    socket.on('data', (d) => (socket.end(), resolve(d.toString().startsWith('+PONG'))));
    socket.on('error', () => resolve(false));
  });
}

async function startRedis() {
  if (process.env.REDIS_URL) return { url: process.env.REDIS_URL, stop: async () => undefined };
  const port = await freePort();
  const dir = mkdtempSync(join(tmpdir(), 'gs-bench-redis-'));
  const child = spawn(
    'redis-server',
    ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir],
    { stdio: 'ignore' },
  );
  while (!(await ping(port))) await new Promise((r) => setTimeout(r, 50));
  return {
    url: `redis://127.0.0.1:${port}`,
    stop: async () => {
      child.kill('SIGTERM');
      await once(child, 'exit');
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** Runs `count` calls of `run` with at most `inFlight` at once; returns jobs/s. */
async function throughput(count, inFlight, run) {
  let next = 0;
  const started = performance.now();
  await Promise.all(
    Array.from({ length: inFlight }, async () => {
      while (next < count) await run(next++);
    }),
  );
  return count / ((performance.now() - started) / 1000);
}

async function latencyMs(count, run) {
  const started = performance.now();
  for (let i = 0; i < count; i++) await run(i);
  return (performance.now() - started) / count;
}

const fmt = (n, d = 0) => n.toFixed(d);

async function overhead(redis) {
  const supervisor = new Supervisor({
    worker: ECHO,
    workers: 2,
    cleanup: { gpu: false },
    logLevel: 'warn',
    recycleEveryTasks: 0,
  });
  await supervisor.start();
  const queue = `bench-overhead-${process.pid}`;
  const source = { type: 'bullmq', connection: redis.url, queue };
  const front = await startBullmqSource({
    supervisor,
    config: { ...supervisor.config, source },
    log,
    forked: false,
  });
  const client = await QueueClient.connect({ connection: redis.url, queue });
  const payload = (i) => ({ op: 'echo', value: i });
  try {
    await throughput(200, IN_FLIGHT, (i) => supervisor.run(payload(i))); // warm-up
    await throughput(200, IN_FLIGHT, (i) => client.run(payload(i)));
    const direct = await throughput(JOBS, IN_FLIGHT, (i) => supervisor.run(payload(i)));
    const viaQueue = await throughput(JOBS, IN_FLIGHT, (i) => client.run(payload(i)));
    const directLat = await latencyMs(300, (i) => supervisor.run(payload(i)));
    const queueLat = await latencyMs(300, (i) => client.run(payload(i)));
    console.log(
      `echo, 2 workers, ${JOBS} jobs, ${IN_FLIGHT} in flight (producer, consumer and Redis on this host):`,
    );
    console.log(
      `  direct supervisor.run   ${fmt(direct)} jobs/s   one at a time ${fmt(directLat, 2)} ms/job`,
    );
    console.log(
      `  through BullMQ          ${fmt(viaQueue)} jobs/s   one at a time ${fmt(queueLat, 2)} ms/job`,
    );
    console.log(
      `  BullMQ overhead per job: ${fmt(1000 / viaQueue - 1000 / direct, 2)} ms at throughput, ${fmt(queueLat - directLat, 2)} ms latency`,
    );
  } finally {
    await client.queue.obliterate({ force: true }).catch(() => undefined);
    await client.close();
    await front.close();
    await supervisor.shutdown();
  }
}

async function startHost(redis, queue) {
  const child = spawn(
    process.execPath,
    [
      ENTRY,
      '--redis',
      redis.url,
      '--queue',
      queue,
      '--worker',
      ECHO,
      '--workers',
      '2',
      '--socket',
      'off',
      '--history',
      'off',
      '--recycle-every',
      '0',
    ],
    { stdio: ['ignore', 'pipe', 'inherit'] },
  );
  const lines = createInterface({ input: child.stdout });
  await new Promise((resolve, reject) => {
    lines.on('line', (line) => line.includes('"bullmq source started"') && resolve());
    child.once('exit', (code) => reject(new Error(`supervisor exited with ${code}`)));
  });
  return child;
}

async function scaling(redis) {
  console.log(
    `\nI/O-bound task (sleep ${SLEEP_MS} ms), 2 workers per supervisor, ${SCALE_JOBS} jobs, all queued at once:`,
  );
  let one;
  for (const hosts of [1, 2, 3]) {
    const queue = `bench-scale-${hosts}-${process.pid}`;
    const children = await Promise.all(Array.from({ length: hosts }, () => startHost(redis, queue)));
    const client = await QueueClient.connect({ connection: redis.url, queue });
    try {
      const rate = await throughput(SCALE_JOBS, SCALE_JOBS, () => client.run({ op: 'sleep', ms: SLEEP_MS }));
      one ??= rate;
      const ideal = (hosts * 2 * 1000) / SLEEP_MS;
      console.log(
        `  ${hosts} supervisor(s): ${fmt(rate)} jobs/s  (${fmt(rate / one, 2)}x of one; ideal ${fmt(ideal)} jobs/s)`,
      );
    } finally {
      await client.queue.obliterate({ force: true }).catch(() => undefined);
      await client.close();
      await Promise.all(children.map((c) => (c.kill('SIGTERM'), once(c, 'exit'))));
    }
  }
}

const redis = await startRedis();
try {
  await overhead(redis);
  await scaling(redis);
} finally {
  await redis.stop();
}
