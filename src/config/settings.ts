import type { SupervisorConfig } from './schema.js';

/**
 * Settings reachable from the command line and the environment, in one table so a flag and its env
 * variable can never drift apart. Flag and env names are public contracts: extend, never rename.
 */
export type SettingKind = 'int' | 'string' | 'path' | 'list' | 'bool';

export interface Setting {
  flag: string;
  env: readonly string[];
  /** A top-level key, or `parent.child` for a nested one (e.g. `http.port`). */
  key: keyof SupervisorConfig | `${keyof SupervisorConfig}.${string}`;
  kind: SettingKind;
  help: string;
}

export const ENV_PREFIX = 'GPU_SUPERVISOR_';

export const SETTINGS: readonly Setting[] = [
  { flag: 'workers', env: ['WORKERS'], key: 'workers', kind: 'int', help: 'number of worker processes' },
  {
    flag: 'recycle-every',
    env: ['RECYCLE_EVERY'],
    key: 'recycleEveryTasks',
    kind: 'int',
    help: 'recycle a worker after N tasks (0 = never)',
  },
  { flag: 'worker', env: ['WORKER'], key: 'worker', kind: 'path', help: 'custom worker module (ES module)' },
  {
    flag: 'log-level',
    env: ['LOG_LEVEL'],
    key: 'logLevel',
    kind: 'string',
    help: 'fatal|error|warn|info|debug|trace|silent',
  },
  {
    flag: 'task-timeout',
    env: ['TASK_TIMEOUT_MS'],
    key: 'taskTimeoutMs',
    kind: 'int',
    help: 'default task timeout in ms',
  },
  {
    flag: 'max-queue',
    env: ['MAX_QUEUE'],
    key: 'maxQueue',
    kind: 'int',
    help: 'queued tasks before E_QUEUE_FULL',
  },
  {
    flag: 'shutdown-timeout',
    env: ['SHUTDOWN_TIMEOUT_MS'],
    key: 'shutdownTimeoutMs',
    kind: 'int',
    help: 'ms to drain tasks on shutdown',
  },
  {
    flag: 'execution-providers',
    env: ['EXECUTION_PROVIDERS'],
    key: 'executionProviders',
    kind: 'list',
    help: 'comma-separated, e.g. cuda,cpu',
  },
  {
    flag: 'ipc-serialization',
    env: ['IPC_SERIALIZATION'],
    key: 'ipcSerialization',
    kind: 'string',
    help: 'auto|json|advanced: how the parent forked us',
  },
  { flag: 'backend', env: ['BACKEND'], key: 'backend', kind: 'string', help: 'process|thread' },
  {
    flag: 'min-workers',
    env: ['MIN_WORKERS'],
    key: 'minWorkers',
    kind: 'int',
    help: 'workers kept when idle (default: workers)',
  },
  {
    flag: 'max-workers',
    env: ['MAX_WORKERS'],
    key: 'maxWorkers',
    kind: 'int',
    help: 'workers the pool may grow to under load (default: workers)',
  },
  {
    flag: 'spare-workers',
    env: ['SPARE_WORKERS'],
    key: 'spareWorkers',
    kind: 'int',
    help: 'warm spare workers kept ready for recycles',
  },
  {
    flag: 'cleanup-every',
    env: ['CLEANUP_EVERY'],
    key: 'cleanup.everyTasks',
    kind: 'int',
    help: 'light cleanup after every N-th task a worker runs (1 = after each)',
  },
  {
    flag: 'pipeline-depth',
    env: ['PIPELINE_DEPTH'],
    key: 'pipelineDepth',
    kind: 'int',
    help: 'tasks sent ahead to each worker process (1 = one at a time)',
  },
  {
    flag: 'prespawn-margin',
    env: ['PRESPAWN_MARGIN_MIB'],
    key: 'recycle.prespawnMarginMiB',
    kind: 'int',
    help: 'GPU MiB left free beside both workers for a replacement to start early',
  },
  {
    flag: 'limit-rss-mib',
    env: ['LIMIT_RSS_MIB'],
    key: 'limits.rssMiB',
    kind: 'int',
    help: 'kill a worker whose RSS passes this while it runs a task (0 = off)',
  },
  {
    flag: 'limit-gpu-mib',
    env: ['LIMIT_GPU_MIB'],
    key: 'limits.gpuMiB',
    kind: 'int',
    help: 'kill a worker whose own GPU memory passes this while it runs a task (0 = off)',
  },
  {
    flag: 'limit-interval-ms',
    env: ['LIMIT_INTERVAL_MS'],
    key: 'limits.intervalMs',
    kind: 'int',
    help: 'ms between two RSS readings of a busy worker (the hard limits)',
  },
  {
    flag: 'socket',
    env: ['SOCKET'],
    key: 'socket',
    kind: 'path',
    help: 'local socket path, auto or off',
  },
  {
    flag: 'max-message-bytes',
    env: ['MAX_MESSAGE_BYTES'],
    key: 'maxMessageBytes',
    kind: 'int',
    help: 'largest message accepted on any channel',
  },
  {
    flag: 'admin-token-file',
    env: ['ADMIN_TOKEN_FILE'],
    key: 'adminTokenFile',
    kind: 'path',
    help: 'file holding the admin token',
  },
  // The token itself only from the environment: a flag would show it to everyone in `ps`.
  { flag: '', env: ['ADMIN_TOKEN'], key: 'adminToken', kind: 'string', help: 'admin token' },
  {
    flag: 'require-token',
    env: ['REQUIRE_TOKEN'],
    key: 'requireToken',
    kind: 'bool',
    help: 'socket tasks need the token too (true|false)',
  },
  {
    flag: 'history',
    env: ['HISTORY'],
    key: 'history.path',
    kind: 'path',
    help: 'history database path, auto or off',
  },
  {
    flag: 'session-cache',
    env: ['SESSION_CACHE'],
    key: 'sessionCache.dir',
    kind: 'path',
    help: 'optimized-model cache directory, auto or off',
  },
  {
    flag: 'http-port',
    env: ['HTTP_PORT'],
    key: 'http.port',
    kind: 'int',
    help: 'metrics/health HTTP port (0 = any free port)',
  },
  {
    flag: 'http-host',
    env: ['HTTP_HOST'],
    key: 'http.host',
    kind: 'string',
    help: 'address the HTTP listener binds',
  },
  {
    flag: 'console-public',
    env: ['CONSOLE_PUBLIC'],
    key: 'http.consolePublic',
    kind: 'bool',
    help: 'admin console read-only views without a token (true|false)',
  },
  {
    flag: 'redis',
    env: ['REDIS_URL'],
    key: 'source.connection',
    kind: 'string',
    help: 'consume a BullMQ queue on this Redis (redis://host:port)',
  },
  {
    flag: 'queue',
    env: ['QUEUE'],
    key: 'source.queue',
    kind: 'string',
    help: 'BullMQ queue name (with --redis)',
  },
  {
    flag: 'gpu-probe',
    env: ['GPU_PROBE'],
    key: 'gpuProbe.kind',
    kind: 'string',
    help: 'GPU readings: auto (NVML, else nvidia-smi), nvml or nvidia-smi',
  },
  {
    flag: 'nvml-library',
    env: ['NVML_LIBRARY'],
    key: 'gpuProbe.nvmlLibrary',
    // A string, not a path: a bare name is for the dynamic loader to find, never relative to the cwd.
    kind: 'string',
    help: 'the NVML library to load (a path, or a name the loader finds)',
  },
];

/** Environment variables read besides the GPU_SUPERVISOR_ ones (conventions of the ecosystem). */
export const PLAIN_ENV_ALIASES: Partial<Record<Setting['key'], string>> = { logLevel: 'LOG_LEVEL' };
