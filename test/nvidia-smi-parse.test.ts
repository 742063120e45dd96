// The nvidia-smi parser against recorded output formats, failure classification, and the fake
// nvidia-smi (test/fixtures/bin) end to end: the fake is what GPU-less CI measures with, so its output
// has to go through the same parser the real one does.
//
// Fixture provenance (test/fixtures/nvidia-smi): layouts follow output quoted in public issues, with
// UUIDs and numbers varied. `[N/A]` for memory on a unified-memory GB10 (unslothai/unsloth#10703,
// NordicHPC/sonar#460), `[N/A]` utilization with MIG enabled (NVIDIA/go-nvml#57), `[Not Supported]`
// from older drivers (enkore/i3pystatus#776), new and old MIG UUIDs (DataDog/datadog-agent#33120,
// NVIDIA/mig-parted#6), per-process memory unavailable under WDDM (XuehaiPan/nvitop#55), the NVML
// mismatch text (anderskm/gputil#55). The comma in a GPU name is made up.
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  APPS_QUERY_ARGS,
  GPU_QUERY_ARGS,
  classifySmiFailure,
  parseComputeAppsCsv,
  parseGpuCsv,
  type GpuDevice,
  type GpuProcess,
  type SmiFailureKind,
} from '../dist/probes/nvidia-smi-parse.js';
import { NvidiaSmiReader } from '../dist/probes/nvidia-smi-reader.js';

const FIXTURES = fileURLToPath(new URL('./fixtures/nvidia-smi/', import.meta.url));
const BIN_DIR = fileURLToPath(new URL('./fixtures/bin/', import.meta.url));
const FAKE = join(BIN_DIR, 'nvidia-smi');
const fixture = (name: string): string => readFileSync(join(FIXTURES, name), 'utf8');

const H100 = 'NVIDIA H100 80GB HBM3';
const h100 = (index: number, uuid: string, usedMiB: number, utilization: number): GpuDevice => ({
  index,
  uuid,
  name: H100,
  usedMiB,
  totalMiB: 81559,
  utilization,
});

describe('query argv', () => {
  test('are exactly the two documented queries, frozen', () => {
    assert.deepEqual(
      [...GPU_QUERY_ARGS],
      [
        '--query-gpu=index,uuid,name,memory.used,memory.total,utilization.gpu',
        '--format=csv,noheader,nounits',
      ],
    );
    assert.deepEqual(
      [...APPS_QUERY_ARGS],
      ['--query-compute-apps=gpu_uuid,pid,used_memory', '--format=csv,noheader,nounits'],
    );
    assert.ok(Object.isFrozen(GPU_QUERY_ARGS) && Object.isFrozen(APPS_QUERY_ARGS));
  });
});

describe('parseGpuCsv on recorded formats', () => {
  const cases: Array<[string, GpuDevice[]]> = [
    [
      'gpu-h200-single.txt',
      [
        {
          index: 0,
          uuid: 'GPU-5f2c3a1e-8c1b-4b7e-9a3d-2f6e1c0b9a77',
          name: 'NVIDIA H200',
          usedMiB: 0,
          totalMiB: 143771,
          utilization: 0,
        },
      ],
    ],
    [
      'gpu-8x-h100.txt',
      [
        h100(0, 'GPU-6d217819-7828-6ad7-2d64-58a9a0cad41d', 70341, 98),
        h100(1, 'GPU-72401837-a352-347c-2a41-07202d3cdbc3', 70341, 97),
        h100(2, 'GPU-d3da2dc6-f8f8-7979-c388-38b2663d7bdf', 4, 0),
        h100(3, 'GPU-96d86949-6b4b-c1ac-35c3-8d986714c401', 4, 0),
        h100(4, 'GPU-b58270cf-1d77-553f-7c4d-dd9d1bc6b0bd', 40022, 41),
        h100(5, 'GPU-99e61d26-6124-16fe-fc51-a6dc1a19160e', 4, 0),
        h100(6, 'GPU-c1a4c576-a388-9aaa-5acb-ede8c6625f85', 1180, 3),
        h100(7, 'GPU-68175a32-1dce-e9f4-18b1-2c10a27b365f', 81072, 100),
      ],
    ],
    [
      'gpu-geforce-names.txt',
      [
        {
          index: 0,
          uuid: 'GPU-101b1cf0-fdf7-b374-a62c-76b25134fcf2',
          name: 'NVIDIA GeForce RTX 4090',
          usedMiB: 712,
          totalMiB: 24564,
          utilization: 7,
        },
        {
          index: 1,
          uuid: 'GPU-6c5bc21a-d8f6-b13d-29f0-64375e06610d',
          name: 'NVIDIA GeForce RTX 3060 Laptop GPU',
          usedMiB: 5,
          totalMiB: 6144,
          utilization: 0,
        },
      ],
    ],
    [
      'gpu-windows-crlf.txt',
      [
        {
          index: 0,
          uuid: 'GPU-1cf694db-94eb-35b8-347d-a0bbf40d102f',
          name: 'NVIDIA GeForce RTX 3080',
          usedMiB: 1534,
          totalMiB: 10240,
          utilization: 12,
        },
      ],
    ],
    [
      'gpu-name-with-comma.txt',
      [
        {
          index: 0,
          uuid: 'GPU-0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d',
          name: 'ACME Tensor Core, Rev. B',
          usedMiB: 2048,
          totalMiB: 16384,
          utilization: 25,
        },
        {
          index: 1,
          uuid: 'GPU-0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4e',
          name: 'ACME Tensor Core, Rev. B, Lite',
          usedMiB: 0,
          totalMiB: 8192,
          utilization: 0,
        },
      ],
    ],
    [
      'gpu-unavailable-fields.txt',
      [
        {
          index: 0,
          uuid: 'GPU-41255406-c9af-f94b-4ebf-9d57ad1853da',
          name: 'NVIDIA A100 80GB PCIe',
          usedMiB: 26,
          totalMiB: 81920,
          utilization: null,
        },
        {
          index: 1,
          uuid: 'GPU-2dee1e25-b3b5-007e-2b55-79f2d0f2ebe5',
          name: 'NVIDIA GB10',
          usedMiB: null,
          totalMiB: null,
          utilization: 36,
        },
        {
          index: 2,
          uuid: 'GPU-7a1c9e40-3b5d-4f2a-9c8e-1d6b0f4e2a93',
          name: 'GeForce GT 730',
          usedMiB: 210,
          totalMiB: 2001,
          utilization: null,
        },
        {
          index: 3,
          uuid: 'GPU-3e8f1b2c-9d4a-4c7e-8b1f-6a2d5c0e9f14',
          name: 'GRID T4-8Q',
          usedMiB: null,
          totalMiB: 8192,
          utilization: null,
        },
      ],
    ],
  ];
  for (const [file, expected] of cases) {
    test(file, () => {
      assert.deepEqual(parseGpuCsv(fixture(file)), { items: expected, skipped: [] });
    });
  }

  test('the CRLF fixture really has CRLF (not normalised by git)', () => {
    assert.match(fixture('gpu-windows-crlf.txt'), /\r\n$/);
  });

  test('failure texts give no devices and are reported as skipped', () => {
    assert.deepEqual(parseGpuCsv(fixture('no-devices.txt')), {
      items: [],
      skipped: ['No devices were found'],
    });
    const driver = parseGpuCsv(fixture('driver-failure.txt'));
    assert.deepEqual(driver.items, []);
    assert.equal(driver.skipped.length, 1);
    assert.match(driver.skipped[0] ?? '', /^NVIDIA-SMI has failed/);
  });
});

describe('parseGpuCsv on odd input', () => {
  const uuid = 'GPU-5f2c3a1e-8c1b-4b7e-9a3d-2f6e1c0b9a77';
  const dev = (over: Partial<GpuDevice> = {}): GpuDevice => ({
    index: 0,
    uuid,
    name: 'NVIDIA H200',
    usedMiB: 10,
    totalMiB: 143771,
    utilization: 5,
    ...over,
  });
  const cases: Array<[string, string, GpuDevice[], string[]]> = [
    ['empty output', '', [], []],
    ['only blank lines', '\n\r\n  \n', [], []],
    [
      'CRLF, blank lines and surrounding spaces',
      `\r\n   0, ${uuid}, NVIDIA H200, 10, 143771, 5   \r\n\r\n\r\n`,
      [dev()],
      [],
    ],
    [
      'bare CR line ends',
      `0, ${uuid}, NVIDIA H200, 10, 143771, 5\r1, ${uuid}, X, 1, 2, 3\r`,
      [dev(), dev({ index: 1, name: 'X', usedMiB: 1, totalMiB: 2, utilization: 3 })],
      [],
    ],
    [
      'empty and plain N/A values',
      `0, ${uuid}, NVIDIA H200, , N/A, n/a`,
      [dev({ usedMiB: null, totalMiB: null, utilization: null })],
      [],
    ],
    [
      'other bracketed placeholders',
      `0, ${uuid}, NVIDIA H200, [Unknown Error], [GPU requires reset], [Insufficient Permissions]`,
      [dev({ usedMiB: null, totalMiB: null, utilization: null })],
      [],
    ],
    ['units left in (nounits forgotten)', `0, ${uuid}, NVIDIA H200, 10 MiB, 143771 MiB, 5 %`, [dev()], []],
    [
      'comma without the space in a name stays whole',
      `0, ${uuid}, Foo,Bar, 10, 143771, 5`,
      [dev({ name: 'Foo,Bar' })],
      [],
    ],
    ['comma-only separators still parse', `0,${uuid},NVIDIA H200,10,143771,5`, [dev()], []],
    ['fractional numbers are kept', `0, ${uuid}, NVIDIA H200, 10.5, 143771, 5`, [dev({ usedMiB: 10.5 })], []],
    [
      'header line and junk are skipped, good lines kept',
      `index, uuid, name, memory.used [MiB], memory.total [MiB], utilization.gpu [%]\n0, ${uuid}, NVIDIA H200, 10, 143771, 5\nWARNING: infoROM is corrupted at gpu 0000:0B:00.0\n`,
      [dev()],
      [
        'index, uuid, name, memory.used [MiB], memory.total [MiB], utilization.gpu [%]',
        'WARNING: infoROM is corrupted at gpu 0000:0B:00.0',
      ],
    ],
    ['too few fields', `0, ${uuid}, 10, 143771, 5`, [], [`0, ${uuid}, 10, 143771, 5`]],
    ['negative index', `-1, ${uuid}, X, 1, 2, 3`, [], [`-1, ${uuid}, X, 1, 2, 3`]],
    ['non-numeric metric', `0, ${uuid}, X, lots, 2, 3`, [], [`0, ${uuid}, X, lots, 2, 3`]],
    ['negative metric', `0, ${uuid}, X, -5, 2, 3`, [], [`0, ${uuid}, X, -5, 2, 3`]],
    ['blank in uuid', `0, GPU 1, X, 1, 2, 3`, [], [`0, GPU 1, X, 1, 2, 3`]],
  ];
  for (const [name, input, items, skipped] of cases) {
    test(name, () => {
      assert.deepEqual(parseGpuCsv(input), { items, skipped });
    });
  }

  test('never throws on non-string input', () => {
    for (const bad of [undefined, null, 42, {}, Buffer.from('0, GPU-x, X, 1, 2, 3')]) {
      assert.deepEqual(parseGpuCsv(bad as unknown as string), { items: [], skipped: [] });
      assert.deepEqual(parseComputeAppsCsv(bad as unknown as string), { items: [], skipped: [] });
    }
  });
});

describe('parseComputeAppsCsv on recorded formats', () => {
  const cases: Array<[string, GpuProcess[]]> = [
    [
      'apps-several.txt',
      [
        { gpuUuid: 'GPU-6d217819-7828-6ad7-2d64-58a9a0cad41d', pid: 48213, usedMiB: 70336 },
        { gpuUuid: 'GPU-72401837-a352-347c-2a41-07202d3cdbc3', pid: 48214, usedMiB: 70336 },
        { gpuUuid: 'GPU-b58270cf-1d77-553f-7c4d-dd9d1bc6b0bd', pid: 51007, usedMiB: 20010 },
        { gpuUuid: 'GPU-b58270cf-1d77-553f-7c4d-dd9d1bc6b0bd', pid: 51008, usedMiB: 20008 },
        { gpuUuid: 'GPU-c1a4c576-a388-9aaa-5acb-ede8c6625f85', pid: 3321, usedMiB: 1176 },
        { gpuUuid: 'GPU-68175a32-1dce-e9f4-18b1-2c10a27b365f', pid: 60451, usedMiB: 81068 },
      ],
    ],
    ['apps-empty.txt', []],
    ['apps-no-running-processes.txt', []],
    [
      'apps-mig.txt',
      [
        { gpuUuid: 'GPU-7fdaf0a5-179b-f636-d15d-daf243e3ff16', pid: 34965, usedMiB: 14195 },
        { gpuUuid: 'MIG-feb88891-0321-5fef-9c87-d4af3b54259e', pid: 56597, usedMiB: 149 },
        { gpuUuid: 'MIG-GPU-63feeb45-94c6-b9cb-78ea-98e9b7a5be6b/1/0', pid: 46505, usedMiB: 9807 },
      ],
    ],
    [
      'apps-used-memory-na.txt',
      [
        { gpuUuid: 'GPU-1cf694db-94eb-35b8-347d-a0bbf40d102f', pid: 13284, usedMiB: null },
        { gpuUuid: 'GPU-1cf694db-94eb-35b8-347d-a0bbf40d102f', pid: 20112, usedMiB: null },
      ],
    ],
  ];
  for (const [file, expected] of cases) {
    test(file, () => {
      assert.deepEqual(parseComputeAppsCsv(fixture(file)), { items: expected, skipped: [] });
    });
  }

  test('the empty fixture is really empty', () => {
    assert.equal(fixture('apps-empty.txt'), '');
  });
});

describe('parseComputeAppsCsv on odd input', () => {
  const uuid = 'GPU-5f2c3a1e-8c1b-4b7e-9a3d-2f6e1c0b9a77';
  const cases: Array<[string, string, GpuProcess[], string[]]> = [
    ['whitespace only', '  \r\n\n', [], []],
    [
      '"No running processes found" variants',
      'No running processes found\nno running compute processes found\r\n',
      [],
      [],
    ],
    ['spaces and CRLF', `  ${uuid}, 42, 100  \r\n`, [{ gpuUuid: uuid, pid: 42, usedMiB: 100 }], []],
    [
      'empty and N/A memory',
      `${uuid}, 42, \n${uuid}, 43, N/A`,
      [
        { gpuUuid: uuid, pid: 42, usedMiB: null },
        { gpuUuid: uuid, pid: 43, usedMiB: null },
      ],
      [],
    ],
    [
      '[Not Supported] memory',
      `${uuid}, 42, [Not Supported]`,
      [{ gpuUuid: uuid, pid: 42, usedMiB: null }],
      [],
    ],
    ['pid placeholder is unusable', `${uuid}, [N/A], 100`, [], [`${uuid}, [N/A], 100`]],
    ['pid 0 is unusable', `${uuid}, 0, 100`, [], [`${uuid}, 0, 100`]],
    ['too many fields', `${uuid}, 42, 100, python`, [], [`${uuid}, 42, 100, python`]],
    ['too few fields', `${uuid}, 42`, [], [`${uuid}, 42`]],
    ['garbage memory', `${uuid}, 42, much`, [], [`${uuid}, 42, much`]],
    [
      'header and junk between good lines',
      `gpu_uuid, pid, used_memory [MiB]\n${uuid}, 42, 100\nsomething odd\n${uuid}, 43, 5\n`,
      [
        { gpuUuid: uuid, pid: 42, usedMiB: 100 },
        { gpuUuid: uuid, pid: 43, usedMiB: 5 },
      ],
      ['gpu_uuid, pid, used_memory [MiB]', 'something odd'],
    ],
  ];
  for (const [name, input, items, skipped] of cases) {
    test(name, () => {
      assert.deepEqual(parseComputeAppsCsv(input), { items, skipped });
    });
  }
});

describe('classifySmiFailure', () => {
  const cases: Array<[string, Parameters<typeof classifySmiFailure>[0], SmiFailureKind, RegExp]> = [
    ['spawn ENOENT', { errorCode: 'ENOENT' }, 'not-installed', /not installed/],
    [
      'shell: command not found',
      { exitCode: 127, stderr: 'sh: 1: nvidia-smi: not found\n' },
      'not-installed',
      /not installed/,
    ],
    [
      'Windows cmd: not recognized',
      { exitCode: 1, stderr: "'nvidia-smi' is not recognized as an internal or external command," },
      'not-installed',
      /not installed/,
    ],
    ['hung call (timedOut)', { timedOut: true }, 'timeout', /did not answer in time/],
    ['hung call (ETIMEDOUT)', { errorCode: 'ETIMEDOUT' }, 'timeout', /did not answer in time/],
    [
      'timeout wins over partial output',
      { timedOut: true, exitCode: 9, stdout: fixture('driver-failure.txt') },
      'timeout',
      /did not answer/,
    ],
    [
      'driver failure text, exit 9',
      { exitCode: 9, stdout: fixture('driver-failure.txt') },
      'no-driver',
      /cannot reach the NVIDIA driver: NVIDIA-SMI has failed/,
    ],
    [
      'driver failure text on stderr',
      { exitCode: 9, stderr: fixture('driver-failure.txt') },
      'no-driver',
      /NVIDIA-SMI has failed/,
    ],
    [
      'typographic apostrophe',
      {
        exitCode: 9,
        stdout: 'NVIDIA-SMI has failed because it couldn\u2018t communicate with the NVIDIA driver.',
      },
      'no-driver',
      /driver/,
    ],
    ['exit 9 without text', { exitCode: 9 }, 'no-driver', /exit code 9/],
    [
      'NVML mismatch (exit 18)',
      { exitCode: 18, stdout: fixture('nvml-mismatch.txt') },
      'no-driver',
      /Driver\/library version mismatch$/,
    ],
    [
      'NVML unknown error in a container',
      { exitCode: 255, stdout: 'Failed to initialize NVML: Unknown Error\n' },
      'no-driver',
      /Unknown Error/,
    ],
    [
      'NVML library missing (exit 12)',
      { exitCode: 12, stdout: "NVIDIA-SMI couldn't find libnvidia-ml.so library in your system.\n" },
      'no-driver',
      /libnvidia-ml/,
    ],
    ['exit 12 without text', { exitCode: 12 }, 'no-driver', /exit code 12/],
    [
      'no devices text, exit 6',
      { exitCode: 6, stdout: fixture('no-devices.txt') },
      'no-devices',
      /no NVIDIA devices/,
    ],
    [
      'no devices text, odd exit',
      { exitCode: 0, stdout: 'No devices were found' },
      'no-devices',
      /no NVIDIA devices/,
    ],
    ['exit 6 without text', { exitCode: 6, stdout: '' }, 'no-devices', /exit code 6/],
    [
      'invalid arguments (exit 2)',
      {
        exitCode: 2,
        stdout: "Invalid combination of input arguments. Please run 'nvidia-smi -h' for help.\n",
      },
      'failed',
      /^nvidia-smi failed \(exit code 2\): Invalid combination/,
    ],
    [
      'GPU fallen off the bus (exit 15)',
      { exitCode: 15, stdout: 'Unable to determine the device handle for GPU0000:3B:00.0: Unknown Error\n' },
      'failed',
      /exit code 15/,
    ],
    ['not executable', { errorCode: 'EACCES' }, 'failed', /\(EACCES\)$/],
    ['nothing known', {}, 'failed', /^nvidia-smi failed \(unknown error\)$/],
  ];
  for (const [name, input, kind, message] of cases) {
    test(name, () => {
      const failure = classifySmiFailure(input);
      assert.equal(failure.kind, kind);
      assert.match(failure.message, message);
      assert.doesNotMatch(failure.message, /[\r\n]/, 'one line');
    });
  }

  test('a huge first line is cut short', () => {
    const failure = classifySmiFailure({ exitCode: 3, stdout: 'x'.repeat(5000) });
    assert.equal(failure.kind, 'failed');
    assert.ok(failure.message.length < 260, `${failure.message.length}`);
  });

  test('never throws on odd input', () => {
    for (const bad of [undefined, null, { stdout: 42, stderr: {} }]) {
      assert.equal(classifySmiFailure(bad as never).kind, 'failed');
    }
  });
});

interface RunResult {
  exitCode: number | undefined;
  stdout: string;
  stderr: string;
  errorCode: string | undefined;
  timedOut: boolean;
  signal: string | undefined;
}

// execFile the way a runner would, flattened into what classifySmiFailure takes.
function run(
  file: string,
  args: readonly string[],
  dir: string | undefined,
  options: { timeoutMs?: number; path?: string } = {},
): Promise<RunResult> {
  const env: NodeJS.ProcessEnv = { ...process.env };
  if (dir === undefined) delete env.FAKE_NVIDIA_SMI_DIR;
  else env.FAKE_NVIDIA_SMI_DIR = dir;
  if (options.path !== undefined) env.PATH = options.path;
  return new Promise((resolve) => {
    execFile(file, [...args], { env, timeout: options.timeoutMs ?? 10_000 }, (err, stdout, stderr) => {
      const e = err as (NodeJS.ErrnoException & { killed?: boolean; signal?: string; code?: unknown }) | null;
      resolve({
        exitCode: e ? (typeof e.code === 'number' ? e.code : undefined) : 0,
        stdout: String(stdout),
        stderr: String(stderr),
        errorCode: e && typeof e.code === 'string' ? e.code : undefined,
        timedOut: Boolean(e?.killed && options.timeoutMs !== undefined),
        signal: e?.signal ?? undefined,
      });
    });
  });
}

async function deadPid(): Promise<number> {
  const child = spawn(process.execPath, ['-e', ''], { stdio: 'ignore' });
  await once(child, 'exit');
  assert.ok(child.pid);
  return child.pid;
}

describe('fake nvidia-smi end to end', () => {
  const GPU0 = 'GPU-5f2c3a1e-8c1b-4b7e-9a3d-2f6e1c0b9a77';
  const GPU1 = 'GPU-0b6e2d4f-1c3a-4e5b-8d7f-9a1c3e5b7d90';
  let dir: string;
  let dead: number;
  const dirs: string[] = [];

  const write = (name: string, content: string): void => {
    mkdirSync(join(dir, name, '..'), { recursive: true });
    writeFileSync(join(dir, name), content);
  };
  const calls = (): string[] =>
    existsSync(join(dir, 'calls.log'))
      ? readFileSync(join(dir, 'calls.log'), 'utf8').split('\n').filter(Boolean)
      : [];

  before(async () => {
    dead = await deadPid();
  });

  const fresh = (): void => {
    dir = mkdtempSync(join(tmpdir(), 'fake-nvidia-smi-test-'));
    dirs.push(dir);
    write(
      'gpus.json',
      JSON.stringify([
        { index: 0, uuid: GPU0, name: 'NVIDIA H200', baseUsedMiB: 4, totalMiB: 143771, utilization: 0 },
        {
          index: 1,
          uuid: GPU1,
          name: 'Odd, Name',
          baseUsedMiB: '[N/A]',
          totalMiB: 81559,
          utilization: '[N/A]',
        },
      ]),
    );
    write(`procs/${process.pid}`, `${GPU0} 1200\n`);
    write(`procs/${dead}`, `${GPU0} 5000\n`);
  };
  after(() => {
    for (const d of dirs) rmSync(d, { recursive: true, force: true });
  });

  test('both queries: live processes count, dead ones are reclaimed', async () => {
    fresh();
    const gpus = await run(FAKE, GPU_QUERY_ARGS, dir);
    assert.equal(gpus.exitCode, 0, gpus.stderr);
    assert.deepEqual(parseGpuCsv(gpus.stdout), {
      items: [
        { index: 0, uuid: GPU0, name: 'NVIDIA H200', usedMiB: 4 + 1200, totalMiB: 143771, utilization: 0 },
        { index: 1, uuid: GPU1, name: 'Odd, Name', usedMiB: null, totalMiB: 81559, utilization: null },
      ],
      skipped: [],
    });
    const apps = await run(FAKE, APPS_QUERY_ARGS, dir);
    assert.equal(apps.exitCode, 0, apps.stderr);
    assert.deepEqual(parseComputeAppsCsv(apps.stdout), {
      items: [{ gpuUuid: GPU0, pid: process.pid, usedMiB: 1200 }],
      skipped: [],
    });
  });

  test('memory follows the procs files between calls (device-level deltas)', async () => {
    fresh();
    write(`procs/${process.pid}`, `${GPU0} 300\n`);
    const before = parseGpuCsv((await run(FAKE, GPU_QUERY_ARGS, dir)).stdout).items[0];
    write(`procs/${process.pid}`, `${GPU0} 2300\n`);
    const afterAlloc = parseGpuCsv((await run(FAKE, GPU_QUERY_ARGS, dir)).stdout).items[0];
    assert.equal(before?.usedMiB, 304);
    assert.equal(afterAlloc?.usedMiB, 2304);
  });

  test('no processes: query B prints nothing', async () => {
    fresh();
    rmSync(join(dir, 'procs'), { recursive: true });
    const apps = await run(FAKE, APPS_QUERY_ARGS, dir);
    assert.equal(apps.exitCode, 0);
    assert.equal(apps.stdout, '');
    assert.deepEqual(parseComputeAppsCsv(apps.stdout), { items: [], skipped: [] });
  });

  test('pid-offset: printed pids never match our own (container PID namespace)', async () => {
    fresh();
    write('pid-offset', '100000\n');
    const apps = parseComputeAppsCsv((await run(FAKE, APPS_QUERY_ARGS, dir)).stdout);
    assert.deepEqual(apps.items, [{ gpuUuid: GPU0, pid: process.pid + 100000, usedMiB: 1200 }]);
    // Device memory is unaffected: the driver still holds it.
    assert.equal(parseGpuCsv((await run(FAKE, GPU_QUERY_ARGS, dir)).stdout).items[0]?.usedMiB, 1204);
  });

  test('apps.txt is printed verbatim before the live processes', async () => {
    fresh();
    write('apps.txt', fixture('apps-mig.txt'));
    const apps = parseComputeAppsCsv((await run(FAKE, APPS_QUERY_ARGS, dir)).stdout);
    assert.deepEqual(apps.items, [
      ...parseComputeAppsCsv(fixture('apps-mig.txt')).items,
      { gpuUuid: GPU0, pid: process.pid, usedMiB: 1200 },
    ]);
    assert.deepEqual(apps.skipped, []);
  });

  test('reclaim-delay-ms: a dead process keeps its memory for a while', async () => {
    fresh();
    write('reclaim-delay-ms', '1000');
    const first = await run(FAKE, APPS_QUERY_ARGS, dir);
    const firstSeen = Number(readFileSync(join(dir, 'dead', String(dead)), 'utf8'));
    assert.ok(Number.isFinite(firstSeen));
    assert.deepEqual(
      parseComputeAppsCsv(first.stdout).items.map((p) => p.pid),
      [process.pid, dead].sort((a, b) => a - b),
    );
    assert.equal(
      parseGpuCsv((await run(FAKE, GPU_QUERY_ARGS, dir)).stdout).items[0]?.usedMiB,
      4 + 1200 + 5000,
    );
    await new Promise((r) => setTimeout(r, 1050 - (Date.now() - firstSeen)));
    const later = await run(FAKE, APPS_QUERY_ARGS, dir);
    assert.deepEqual(
      parseComputeAppsCsv(later.stdout).items.map((p) => p.pid),
      [process.pid],
    );
    assert.equal(parseGpuCsv((await run(FAKE, GPU_QUERY_ARGS, dir)).stdout).items[0]?.usedMiB, 1204);
  });

  test('calls.log counts every spawn, failures included', async () => {
    fresh();
    await run(FAKE, GPU_QUERY_ARGS, dir);
    await run(FAKE, APPS_QUERY_ARGS, dir);
    await run(FAKE, ['--bogus'], dir);
    assert.deepEqual(calls(), [GPU_QUERY_ARGS.join(' '), APPS_QUERY_ARGS.join(' '), '--bogus']);
  });

  test('fail.txt: printed with exit 9 by default, classified as no-driver', async () => {
    fresh();
    write('fail.txt', fixture('driver-failure.txt'));
    const r = await run(FAKE, GPU_QUERY_ARGS, dir);
    assert.equal(r.exitCode, 9);
    assert.equal(r.stdout, fixture('driver-failure.txt'));
    assert.equal(classifySmiFailure(r).kind, 'no-driver');
    assert.equal(calls().length, 1);
  });

  test('fail.txt with fail.code 6: no-devices', async () => {
    fresh();
    write('fail.txt', fixture('no-devices.txt'));
    write('fail.code', '6');
    const r = await run(FAKE, APPS_QUERY_ARGS, dir);
    assert.equal(r.exitCode, 6);
    assert.equal(classifySmiFailure(r).kind, 'no-devices');
  });

  test('no gpus.json: "No devices were found", exit 6', async () => {
    fresh();
    rmSync(join(dir, 'gpus.json'));
    const r = await run(FAKE, GPU_QUERY_ARGS, dir);
    assert.deepEqual([r.exitCode, r.stdout], [6, 'No devices were found\n']);
    assert.equal(classifySmiFailure(r).kind, 'no-devices');
  });

  test('hang: killed by the caller timeout, classified as timeout', async () => {
    fresh();
    write('hang', '');
    const r = await run(FAKE, GPU_QUERY_ARGS, dir, { timeoutMs: 300 });
    assert.equal(r.timedOut, true);
    assert.equal(r.signal, 'SIGTERM');
    assert.equal(classifySmiFailure(r).kind, 'timeout');
    assert.equal(calls().length, 1, 'it did start');
  });

  test('unknown arguments: exit 2 with the real message', async () => {
    fresh();
    const r = await run(FAKE, ['--query-gpu=index'], dir);
    assert.equal(r.exitCode, 2);
    assert.equal(r.stdout, "Invalid combination of input arguments. Please run 'nvidia-smi -h' for help.\n");
    assert.equal(classifySmiFailure(r).kind, 'failed');
  });

  test('-L lists the GPUs', async () => {
    fresh();
    const r = await run(FAKE, ['-L'], dir);
    assert.equal(r.stdout, `GPU 0: NVIDIA H200 (UUID: ${GPU0})\nGPU 1: Odd, Name (UUID: ${GPU1})\n`);
  });

  test('found through PATH by its bare name, like the real command', async () => {
    fresh();
    const r = await run('nvidia-smi', GPU_QUERY_ARGS, dir, {
      path: `${BIN_DIR}${delimiter}${process.env.PATH ?? ''}`,
    });
    assert.equal(r.exitCode, 0, r.stderr);
    assert.equal(parseGpuCsv(r.stdout).items.length, 2);
  });

  test('not on PATH: ENOENT, classified as not-installed', async () => {
    const r = await run('nvidia-smi', GPU_QUERY_ARGS, undefined, { path: join(tmpdir(), 'no-such-bin-dir') });
    assert.equal(r.errorCode, 'ENOENT');
    assert.equal(classifySmiFailure(r).kind, 'not-installed');
  });
});

describe('NvidiaSmiReader: a call that hangs', () => {
  test('is over shortly after its timeout, even when a process it started holds its output open', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'gpu-sup-smi-hang-'));
    try {
      const command = join(dir, 'nvidia-smi');
      // A wrapper whose helper keeps stdout open long after the wrapper itself is killed.
      writeFileSync(command, '#!/bin/sh\nsleep 20 &\nsleep 20\n', { mode: 0o755 });
      const reader = new NvidiaSmiReader(command);
      const started = performance.now();
      const reading = await reader.read(300);
      const ms = performance.now() - started;
      assert.equal(reading.ok, false);
      assert.equal(!reading.ok && reading.failure.kind, 'timeout');
      // Bounded by the timeout, not by the helper's 20 s (generous for a loaded host).
      assert.ok(ms < 5_000, `read took ${Math.round(ms)} ms`);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
