import type { SupervisorConfig } from './schema.js';

/**
 * Settings reachable from the command line and the environment, in one table so a flag and its env
 * variable can never drift apart. Flag and env names are public contracts: extend, never rename.
 */
export type SettingKind = 'int' | 'string' | 'path' | 'list';

export interface Setting {
  flag: string;
  env: readonly string[];
  key: keyof SupervisorConfig;
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
];

/** Environment variables read besides the GPU_SUPERVISOR_ ones (conventions of the ecosystem). */
export const PLAIN_ENV_ALIASES: Partial<Record<keyof SupervisorConfig, string>> = { logLevel: 'LOG_LEVEL' };
