import { readFileSync } from 'node:fs';
import type { SupervisorConfig } from '../config/schema.js';

/** What the page's header shows that does not change while the supervisor runs. */
export interface ConsoleInfo {
  pid: number;
  version: string;
  backend: SupervisorConfig['backend'];
  executionProviders: string[];
  recycleEveryTasks: number;
  recycle: { rssMiB: number; gpuMiB: number; maxAgeMs: number };
  /** The configured models (what "Clear cache" may be limited to). */
  models: string[];
  startedAt: number;
}

function packageVersion(): string {
  try {
    const text = readFileSync(new URL('../../package.json', import.meta.url), 'utf8');
    const version = (JSON.parse(text) as { version?: unknown }).version;
    return typeof version === 'string' ? version : 'unknown';
  } catch {
    return 'unknown';
  }
}

export function consoleInfo(config: SupervisorConfig, uptimeMs: number): ConsoleInfo {
  return {
    pid: process.pid,
    version: packageVersion(),
    backend: config.backend,
    executionProviders: [...config.executionProviders],
    recycleEveryTasks: config.recycleEveryTasks,
    recycle: {
      rssMiB: config.recycle.rssMiB,
      gpuMiB: config.recycle.gpuMiB,
      maxAgeMs: config.recycle.maxAgeMs,
    },
    models: Object.keys(config.models),
    startedAt: Date.now() - uptimeMs,
  };
}
