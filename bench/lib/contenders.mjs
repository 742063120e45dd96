// One factory per tool a user might pick instead, all with 2 workers and the same echo work.
import { fork, spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { Piscina } from 'piscina';
import Tinypool from 'tinypool';
import workerpool from 'workerpool';
import { Supervisor, SupervisorClient } from 'gpu-supervisor';

const here = (path) => fileURLToPath(new URL(`../${path}`, import.meta.url));
export const OURS_ECHO = here('workers/ours-echo.mjs');

/** Raw child_process.fork: N children, requests pipelined with ids, least-loaded dispatch. */
export async function rawFork({ workers = 2, serialization = 'json' } = {}) {
  const children = Array.from({ length: workers }, () =>
    fork(here('workers/raw-echo.mjs'), [], { serialization, stdio: ['ignore', 'ignore', 'inherit', 'ipc'] }),
  );
  const pending = new Map();
  const load = new Array(workers).fill(0);
  children.forEach((child, w) =>
    child.on('message', (m) => {
      load[w]--;
      const resolve = pending.get(m.id);
      pending.delete(m.id);
      resolve(m.payload);
    }),
  );
  await Promise.all(children.map((c) => new Promise((r) => c.once('spawn', r))));
  let id = 0;
  return {
    call(payload) {
      let w = 0;
      for (let k = 1; k < workers; k++) if (load[k] < load[w]) w = k;
      load[w]++;
      const message = { id: ++id, payload };
      return new Promise((resolve) => {
        pending.set(message.id, resolve);
        children[w].send(message);
      });
    },
    close: async () => {
      await Promise.all(children.map((c) => new Promise((r) => (c.once('exit', r), c.kill()))));
    },
  };
}

export async function piscina({ workers = 2, transfer = false } = {}) {
  const pool = new Piscina({
    filename: here(transfer ? 'workers/echo-move.mjs' : 'workers/echo-default.mjs'),
    minThreads: workers,
    maxThreads: workers,
    concurrentTasksPerWorker: 1,
  });
  return {
    call: (payload) =>
      pool.run(payload, transfer && payload?.buffer ? { transferList: [payload.buffer] } : undefined),
    close: () => pool.destroy(),
  };
}

export async function tinypool({ workers = 2, serialization } = {}) {
  const pool = new Tinypool({
    runtime: 'child_process',
    filename: here('workers/echo-default.mjs'),
    minThreads: workers,
    maxThreads: workers,
    ...(serialization ? { serialization } : {}),
  });
  return { call: (payload) => pool.run(payload), close: () => pool.destroy() };
}

export async function workerpoolProcess({ workers = 2, serialization } = {}) {
  const pool = workerpool.pool(here('workers/workerpool-echo.mjs'), {
    workerType: 'process',
    minWorkers: workers,
    maxWorkers: workers,
    ...(serialization ? { forkOpts: { serialization } } : {}),
  });
  return { call: (payload) => pool.exec('echo', [payload]), close: () => pool.terminate(true) };
}

/** gpu-supervisor in the caller's process (library mode). `options` are Supervisor options. */
export async function oursLibrary(options = {}) {
  const supervisor = new Supervisor({ worker: OURS_ECHO, workers: 2, logLevel: 'silent', ...options });
  await supervisor.start();
  return {
    supervisor,
    call: (payload) => supervisor.run(payload),
    close: () => supervisor.shutdown(),
  };
}

/** gpu-supervisor as a daemon forked by a client: two IPC hops each way. */
export async function oursDaemon({ args = [], workers = 2 } = {}) {
  const client = await SupervisorClient.fork({
    worker: OURS_ECHO,
    workers,
    logLevel: 'silent',
    stdio: 'ignore',
    args,
  });
  return { client, call: (payload) => client.run(payload), close: () => client.close() };
}

/** A standalone daemon and a client on its local socket (binary frames: tensors as raw bytes). */
export async function oursSocket({ workers = 2 } = {}) {
  const dir = mkdtempSync(join(tmpdir(), 'gpu-sup-bench-'));
  const path = join(dir, 'sup.sock');
  const daemon = spawn(
    process.execPath,
    [here('../dist/supervisor.js'), '--socket', path, '--worker', OURS_ECHO, '--workers', String(workers)],
    { stdio: 'ignore', env: { ...process.env, LOG_LEVEL: 'silent', GPU_SUPERVISOR_HISTORY: 'off' } },
  );
  let client;
  for (let tries = 0; !client; tries++) {
    try {
      client = await SupervisorClient.connect(path);
    } catch (error) {
      if (tries > 200 || daemon.exitCode !== null) throw error;
      await sleep(50);
    }
  }
  return {
    call: (payload) => client.run(payload),
    close: async () => {
      await client.close();
      daemon.kill('SIGTERM');
      if (daemon.exitCode === null) await once(daemon, 'exit');
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
