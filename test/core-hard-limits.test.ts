// The pure verdicts behind the hard limits (core/hard-limits.ts) and the kernel OOM naming
// (core/kernel-oom.ts) as tables, and the two probes they read, against real files: /proc/<pid>/statm of
// real processes, and memory.events in a stand-in cgroup directory (labelled: not a real cgroup).
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { limitMessage, limitsOn, overLimit } from '../dist/core/hard-limits.js';
import { killedByKernelOom, type DeathFacts } from '../dist/core/kernel-oom.js';
import { StatmReader } from '../dist/probes/statm-reader.js';
import { CgroupOomCounter } from '../dist/probes/cgroup-oom.js';
import { scratchDir } from './helpers.js';

describe('overLimit: the verdict on one reading', () => {
  const cases: Array<{
    name: string;
    limits: { rssMiB: number; gpuMiB: number };
    reading: { rssMiB?: number; gpuMiB?: number };
    expected: ReturnType<typeof overLimit>;
  }> = [
    {
      name: 'both off',
      limits: { rssMiB: 0, gpuMiB: 0 },
      reading: { rssMiB: 9999, gpuMiB: 9999 },
      expected: undefined,
    },
    {
      name: 'rss under',
      limits: { rssMiB: 400, gpuMiB: 0 },
      reading: { rssMiB: 399.9 },
      expected: undefined,
    },
    {
      name: 'rss at the limit is not over',
      limits: { rssMiB: 400, gpuMiB: 0 },
      reading: { rssMiB: 400 },
      expected: undefined,
    },
    {
      name: 'rss over',
      limits: { rssMiB: 400, gpuMiB: 0 },
      reading: { rssMiB: 400.1 },
      expected: { kind: 'rss', limitMiB: 400, readingMiB: 400.1 },
    },
    { name: 'no reading', limits: { rssMiB: 400, gpuMiB: 1000 }, reading: {}, expected: undefined },
    {
      name: 'gpu over, rss off',
      limits: { rssMiB: 0, gpuMiB: 1000 },
      reading: { rssMiB: 5000, gpuMiB: 1200 },
      expected: { kind: 'gpu', limitMiB: 1000, readingMiB: 1200 },
    },
    {
      name: 'gpu over, rss under',
      limits: { rssMiB: 400, gpuMiB: 1000 },
      reading: { rssMiB: 100, gpuMiB: 1001 },
      expected: { kind: 'gpu', limitMiB: 1000, readingMiB: 1001 },
    },
    {
      name: 'both over: rss named first',
      limits: { rssMiB: 400, gpuMiB: 1000 },
      reading: { rssMiB: 500, gpuMiB: 2000 },
      expected: { kind: 'rss', limitMiB: 400, readingMiB: 500 },
    },
    {
      name: 'gpu limit, only an rss reading',
      limits: { rssMiB: 0, gpuMiB: 1000 },
      reading: { rssMiB: 5000 },
      expected: undefined,
    },
  ];
  for (const c of cases) test(c.name, () => assert.deepEqual(overLimit(c.limits, c.reading), c.expected));

  test('limitsOn: the watch runs only when a limit is set', () => {
    assert.equal(limitsOn({ rssMiB: 0, gpuMiB: 0 }), false);
    assert.equal(limitsOn({ rssMiB: 1, gpuMiB: 0 }), true);
    assert.equal(limitsOn({ rssMiB: 0, gpuMiB: 1 }), true);
  });

  test('the message names the limit, the reading, the task and the worker', () => {
    assert.equal(
      limitMessage({ kind: 'rss', limitMiB: 400, readingMiB: 412.5 }, 't7', '4541'),
      'task t7 passed limits.rssMiB 400 MiB: worker 4541 RSS read 412.5 MiB; the worker was killed; not retried',
    );
    assert.equal(
      limitMessage({ kind: 'gpu', limitMiB: 2048, readingMiB: 3000 }, 'job-1', '99'),
      'task job-1 passed limits.gpuMiB 2048 MiB: worker 99 GPU memory read 3000 MiB; the worker was killed; not retried',
    );
  });
});

describe('killedByKernelOom', () => {
  const base: DeathFacts = { signal: 'SIGKILL', sentByUs: false, oomKillsBefore: 3, oomKillsNow: 4 };
  const cases: Array<[string, Partial<DeathFacts>, boolean]> = [
    ['a SIGKILL from outside, oom_kill grew', {}, true],
    ['oom_kill grew by more than one', { oomKillsNow: 9 }, true],
    ['oom_kill unchanged', { oomKillsNow: 3 }, false],
    ['the supervisor sent the kill', { sentByUs: true }, false],
    ['another signal', { signal: 'SIGSEGV' }, false],
    ['an exit code, no signal', { signal: null }, false],
    ['no reading before', { oomKillsBefore: undefined }, false],
    ['no reading now', { oomKillsNow: undefined }, false],
  ];
  for (const [name, change, expected] of cases) {
    test(name, () => assert.equal(killedByKernelOom({ ...base, ...change }), expected));
  }
});

describe('StatmReader (real /proc)', () => {
  test("our own RSS, within a few MiB of Node's figure, and it follows an allocation", () => {
    const reader = StatmReader.open(process.pid);
    assert.ok(reader, 'this Linux host has /proc/<pid>/statm');
    const first = reader.rssMiB()!;
    const node = process.memoryUsage().rss / 1024 / 1024;
    assert.ok(Math.abs(first - node) < 8, `statm ${first} MiB vs process.memoryUsage ${node.toFixed(1)} MiB`);
    const held = Buffer.alloc(64 * 1024 * 1024, 1);
    const grown = reader.rssMiB()!;
    assert.ok(grown - first >= 60, `64 MiB more resident: ${first} -> ${grown} MiB`);
    assert.equal(held[held.length - 1], 1);
    reader.close();
    assert.equal(reader.rssMiB(), undefined, 'closed');
  });

  test('the open file stays with its process: after it exits, no reading (not a reused pid)', async () => {
    const child = spawn(process.execPath, ['-e', 'setTimeout(() => {}, 60000)'], { stdio: 'ignore' });
    await once(child, 'spawn');
    const reader = StatmReader.open(child.pid!);
    assert.ok(reader);
    assert.ok((reader.rssMiB() ?? 0) > 5, 'a live node process has some RSS');
    child.kill('SIGKILL');
    await once(child, 'exit');
    assert.equal(reader.rssMiB(), undefined);
    reader.close();
  });

  test('a pid that does not exist gives no reader', () => {
    assert.equal(StatmReader.open(2 ** 30), undefined);
  });
});

describe('CgroupOomCounter (stand-in cgroup directory, not a real cgroup)', () => {
  const path = readFileSync('/proc/self/cgroup', 'utf8')
    .split('\n')
    .find((l) => l.startsWith('0::'))
    ?.slice(3);

  test('stand-in cgroup dir: reads oom_kill from <root><own cgroup>/memory.events, re-read in place', () => {
    assert.ok(path !== undefined, 'this host lists a cgroup v2 path');
    const root = scratchDir('gpu-sup-cgroup-');
    const cgroup = join(root, path);
    mkdirSync(cgroup, { recursive: true });
    const file = join(cgroup, 'memory.events');
    writeFileSync(file, 'low 0\nhigh 0\nmax 0\noom 0\noom_kill 0\noom_group_kill 0\n');
    const counter = CgroupOomCounter.open(root);
    assert.equal(counter.file, path === '/' ? `${root}/memory.events` : `${root}${path}/memory.events`);
    assert.equal(counter.read(), 0);
    writeFileSync(file, 'low 0\nhigh 0\nmax 12\noom 2\noom_kill 2\noom_group_kill 0\n');
    assert.equal(counter.read(), 2);
    counter.close();
    assert.equal(counter.read(), undefined);
  });

  test('stand-in cgroup dir, cgroup v1 layout: memory/<own memory cgroup>/memory.oom_control', (t) => {
    const v1 = readFileSync('/proc/self/cgroup', 'utf8')
      .split('\n')
      .map((l) => /^\d+:([^:]*):(.*)$/.exec(l))
      .find((m) => m?.[1]?.split(',').includes('memory'))?.[2];
    if (v1 === undefined) return t.skip('this host has no cgroup v1 memory controller to mirror');
    const root = scratchDir('gpu-sup-cgroup-v1-');
    const cgroup = join(root, 'memory', v1);
    mkdirSync(cgroup, { recursive: true });
    writeFileSync(join(cgroup, 'memory.oom_control'), 'oom_kill_disable 0\nunder_oom 0\noom_kill 7\n');
    const counter = CgroupOomCounter.open(root);
    assert.equal(counter.file, join(cgroup, 'memory.oom_control'));
    assert.equal(counter.read(), 7);
    counter.close();
  });

  test("the real /sys/fs/cgroup, read only: this host's own counter is a number when it has one", (t) => {
    const counter = CgroupOomCounter.open('/sys/fs/cgroup');
    if (counter.file === undefined) return t.skip('no memory controller visible here');
    const count = counter.read();
    assert.ok(Number.isInteger(count) && count! >= 0, `${counter.file}: oom_kill ${count}`);
    const text = readFileSync(counter.file, 'utf8');
    assert.equal(count, Number(/^oom_kill (\d+)$/m.exec(text)?.[1]));
    counter.close();
  });

  test('stand-in cgroup dir without memory.events (cgroup v1, no memory controller): no reading', () => {
    const counter = CgroupOomCounter.open(scratchDir('gpu-sup-cgroup-empty-'));
    assert.equal(counter.file, undefined);
    assert.equal(counter.read(), undefined);
  });
});
