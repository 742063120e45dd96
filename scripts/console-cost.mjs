// The admin console's cost: page weight, and the supervisor's CPU per second with 0, 1 and 10 open
// event streams (GET /events, what each open page holds). Usage: node scripts/console-cost.mjs [seconds]
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { request } from 'node:http';
import { gzipSync } from 'node:zlib';

const seconds = Number(process.argv[2] ?? 15);
const TOKEN = 'console-cost-token';
const port = 18000 + Math.floor(Math.random() * 1000);
const TICK = 100; // USER_HZ: /proc/<pid>/stat counts CPU in 1/100 s

const child = spawn(
  process.execPath,
  ['dist/supervisor.js', '--http-port', String(port), '--socket', 'off', '--history', 'off'],
  {
    env: { ...process.env, GPU_SUPERVISOR_ADMIN_TOKEN: TOKEN, GPU_SUPERVISOR_LOG_LEVEL: 'warn' },
    stdio: 'inherit',
  },
);

const get = (path) =>
  new Promise((resolve, reject) => {
    request({ host: '127.0.0.1', port, path, agent: false }, (res) => {
      const parts = [];
      res.on('data', (c) => parts.push(c));
      res.on('end', () => resolve(Buffer.concat(parts)));
    })
      .on('error', reject)
      .end();
  });

function cpuSeconds() {
  const fields = readFileSync(`/proc/${child.pid}/stat`, 'utf8').split(') ')[1].split(' ');
  return (Number(fields[11]) + Number(fields[12])) / TICK; // utime + stime
}

function openStream() {
  return new Promise((resolve) => {
    const req = request(
      {
        host: '127.0.0.1',
        port,
        path: '/events',
        headers: { authorization: `Bearer ${TOKEN}` },
        agent: false,
      },
      (res) => {
        res.on('data', () => undefined);
        resolve(() => req.destroy());
      },
    );
    req.end();
  });
}

async function measure(streams) {
  const closers = await Promise.all(Array.from({ length: streams }, openStream));
  await new Promise((r) => setTimeout(r, 2000));
  const start = cpuSeconds();
  await new Promise((r) => setTimeout(r, seconds * 1000));
  const used = cpuSeconds() - start;
  for (const close of closers) close();
  await new Promise((r) => setTimeout(r, 1500));
  return (used / seconds) * 1000;
}

for (let i = 0; ; i++) {
  try {
    await get('/healthz');
    break;
  } catch {
    if (i > 100) throw new Error('the supervisor did not start');
    await new Promise((r) => setTimeout(r, 100));
  }
}
await new Promise((r) => setTimeout(r, 2000));

const page = await get('/');
const paths = [...page.toString().matchAll(/(?:src|href)="(\/console\/[^"]+)"/g)].map((m) => m[1]);
const modules = [
  'app.js',
  'actions.js',
  'api.js',
  'format.js',
  'header.js',
  'history.js',
  'log-tail.js',
  'timeline.js',
  'totals.js',
  'workers-table.js',
];
const all = ['/', ...new Set([...paths, ...modules.map((m) => `/console/${m}`)])];
let raw = 0;
let gz = 0;
for (const path of all) {
  const body = await get(path);
  raw += body.length;
  gz += gzipSync(body).length;
}
console.log(
  `page weight: ${all.length} files, ${(raw / 1024).toFixed(1)} KB (${(gz / 1024).toFixed(1)} KB gzipped)`,
);
for (const streams of [0, 1, 10]) {
  console.log(
    `supervisor CPU with ${streams} open streams: ${(await measure(streams)).toFixed(1)} ms per second`,
  );
}
child.kill('SIGTERM');
