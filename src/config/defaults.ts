import type { SupervisorConfig } from './schema.js';

/**
 * Every default, typed as the config itself: a key missing here, misspelled or of the wrong type is a
 * compile error. config/default.json stays the shipped file operators read and loadConfig merges first;
 * test/config.test.ts proves the two agree key for key, so a new key is one line here and one line in
 * default.json (plus the schema, the flag table and the README row, as every key needs).
 *
 * Model paths are as written in default.json, relative to config/ (loadConfig resolves them there).
 */
export const DEFAULTS: Readonly<SupervisorConfig> = deepFreeze({
  workers: 2,
  backend: 'process',
  minWorkers: null,
  maxWorkers: null,
  idleTimeoutMs: 30_000,
  spareWorkers: 0,
  pipelineDepth: 2,
  worker: null,
  workerOptions: {},
  workerExecArgv: [],
  recycleEveryTasks: 1000,
  taskTimeoutMs: 60_000,
  startTimeoutMs: 30_000,
  killTimeoutMs: 5_000,
  minUptimeMs: 1_000,
  idleReleaseMs: 0,
  maxFailedStarts: 5,
  retries: 0,
  shutdownTimeoutMs: 30_000,
  maxQueue: 10_000,
  historySize: 1000,
  ipcSerialization: 'auto',
  logLevel: 'info',
  cleanup: {
    afterTask: true,
    everyTasks: 1,
    force: false,
    measure: true,
    gpu: true,
    lightGcMinKiB: 1024,
    timeoutMs: 10_000,
  },
  recycle: {
    gpuMiB: 0,
    rssMiB: 0,
    maxAgeMs: 0,
    leakHorizonTasks: 0,
    jitter: 0,
    maxConcurrent: 1,
    prespawn: 'auto',
    prespawnMarginMiB: 256,
  },
  limits: {
    rssMiB: 0,
    gpuMiB: 0,
    intervalMs: 100,
  },
  socket: 'auto',
  maxMessageBytes: 64 * 1024 * 1024,
  maxClients: 64,
  adminToken: null,
  adminTokenFile: null,
  requireToken: false,
  sessionCache: {
    dir: 'auto',
  },
  history: {
    path: 'auto',
    maxAgeDays: 30,
    maxRows: 1_000_000,
    flushMs: 250,
  },
  http: {
    port: null,
    host: '127.0.0.1',
    consolePublic: false,
  },
  source: null,
  gpus: [],
  gpuProbe: {
    kind: 'auto',
    nvmlLibrary: 'libnvidia-ml.so.1',
    nvmlIntervalMs: 100,
    command: 'nvidia-smi',
    minIntervalMs: 500,
    timeoutMs: 5_000,
    reclaimTimeoutMs: 10_000,
  },
  executionProviders: ['cpu'],
  sessionOptions: {
    intraOpNumThreads: 1,
    interOpNumThreads: 1,
  },
  models: {
    'silero-vad': { path: '../models/silero_vad.onnx' },
    mlp: { path: '../models/mlp.onnx', sessionOptions: { enableMemPattern: false } },
  },
} satisfies SupervisorConfig);

function deepFreeze<T>(value: T): T {
  if (value !== null && typeof value === 'object') {
    for (const inner of Object.values(value)) deepFreeze(inner);
    Object.freeze(value);
  }
  return value;
}
