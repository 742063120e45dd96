import { execFile } from 'node:child_process';
import { mkdirSync, writeFileSync, readFileSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, beforeEach } from 'node:test';
import { promisify } from 'node:util';
import type { SupervisorOptions } from 'gpu-supervisor';
import { scratchDir } from './helpers.js';

export const FAKE_BIN = fileURLToPath(new URL('./fixtures/bin', import.meta.url));
export const CUDA_WORKER = fileURLToPath(new URL('./fixtures/cuda-worker.mjs', import.meta.url));
export const GPU0 = 'GPU-5f2c3a1e-8c1b-4b7e-9a3d-2f6e1c0b9a77';
export const GPU1 = 'GPU-0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d';
/** Two devices, the second a different model already holding 1000 MiB. */
export const TWO_GPUS: FakeGpuDevice[] = [
  { uuid: GPU0 },
  { uuid: GPU1, name: 'NVIDIA GeForce RTX 4090', baseUsedMiB: 1000 },
];
/** One simulated CUDA worker (300 MiB of context) that is never recycled by count; add a gpuProbe. */
export const SIMULATED_CUDA: SupervisorOptions = {
  worker: CUDA_WORKER,
  workers: 1,
  logLevel: 'silent',
  recycleEveryTasks: 0,
  workerOptions: { mode: 'simulated', contextMiB: 300 },
};
export const FAKE_NVML_SOURCE = fileURLToPath(new URL('./fixtures/nvml/fake_nvml.c', import.meta.url));

let fakeNvml: Promise<string> | undefined;

/**
 * The stand-in libnvidia-ml.so.1 (test/fixtures/nvml/fake_nvml.c), compiled with cc once per test file
 * process into a scratch dir (removed when the process exits). Its path is what gpuProbe.nvmlLibrary
 * names; it answers from the same state directory as the fake nvidia-smi.
 */
export function fakeNvmlLibrary(): Promise<string> {
  fakeNvml ??= (async () => {
    const dir = scratchDir('fake-nvml-');
    const library = join(dir, 'libnvidia-ml.so.1');
    await promisify(execFile)('cc', ['-shared', '-fPIC', '-O2', '-o', library, FAKE_NVML_SOURCE], {
      timeout: 60_000,
    });
    return library;
  })();
  return fakeNvml;
}

export interface FakeGpuDevice {
  uuid: string;
  name?: string;
  baseUsedMiB?: number;
}

/** A state directory for the fake nvidia-smi (see test/fixtures/bin/fake-nvidia-smi.mjs). */
export class FakeGpu {
  readonly dir = scratchDir('fake-gpu-');

  constructor(gpus: FakeGpuDevice[] = [{ uuid: GPU0 }]) {
    mkdirSync(join(this.dir, 'procs'));
    this.write(
      'gpus.json',
      JSON.stringify(
        gpus.map((g, index) => ({
          index,
          uuid: g.uuid,
          name: g.name ?? 'NVIDIA H200',
          baseUsedMiB: g.baseUsedMiB ?? 0,
          totalMiB: 143771,
          utilization: 0,
        })),
      ),
    );
    // The same devices for the fake NVML library (test/fixtures/nvml/fake_nvml.c).
    this.write(
      'nvml-devices.txt',
      gpus.map((g) => `gpu ${g.uuid} 143771 ${g.baseUsedMiB ?? 0} 0 ${g.name ?? 'NVIDIA H200'}\n`).join(''),
    );
  }

  /** Readings the fake NVML library has served so far (each starts with one device count). */
  nvmlReadings(): number {
    const log = join(this.dir, 'nvml-calls.log');
    if (!existsSync(log)) return 0;
    return readFileSync(log, 'utf8')
      .split('\n')
      .filter((line) => line === 'nvmlDeviceGetCount_v2').length;
  }

  write(name: string, content: string): void {
    writeFileSync(join(this.dir, name), content);
  }

  /** Number of nvidia-smi invocations so far (each reading runs two queries). */
  calls(): number {
    const log = join(this.dir, 'calls.log');
    return existsSync(log) ? readFileSync(log, 'utf8').split('\n').filter(Boolean).length : 0;
  }

  /** Puts the fake first on PATH for this process and the workers it forks. */
  install(): () => void {
    const saved = {
      PATH: process.env.PATH,
      dir: process.env.FAKE_NVIDIA_SMI_DIR,
      uuid: process.env.FAKE_GPU_UUID,
    };
    process.env.PATH = `${FAKE_BIN}:${process.env.PATH}`;
    process.env.FAKE_NVIDIA_SMI_DIR = this.dir;
    process.env.FAKE_GPU_UUID = GPU0;
    return () => {
      process.env.PATH = saved.PATH;
      if (saved.dir === undefined) delete process.env.FAKE_NVIDIA_SMI_DIR;
      else process.env.FAKE_NVIDIA_SMI_DIR = saved.dir;
      if (saved.uuid === undefined) delete process.env.FAKE_GPU_UUID;
      else process.env.FAKE_GPU_UUID = saved.uuid;
    };
  }
}

/**
 * Called inside a describe: each of its tests gets a fresh FakeGpu with these devices, installed
 * before the test and uninstalled after it. Read `.fake` from within a test or hook.
 */
export function fakeGpuPerTest(gpus?: FakeGpuDevice[]): { readonly fake: FakeGpu } {
  let current: FakeGpu | undefined;
  let uninstall: (() => void) | undefined;
  beforeEach(() => {
    current = new FakeGpu(gpus);
    uninstall = current.install();
  });
  afterEach(() => uninstall?.());
  return {
    get fake(): FakeGpu {
      if (!current) throw new Error('fakeGpuPerTest: .fake is there only once a test has begun');
      return current;
    },
  };
}
