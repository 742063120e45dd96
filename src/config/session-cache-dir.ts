import { homedir } from 'node:os';
import { join, resolve } from 'node:path';

/**
 * Where optimized models are kept (`sessionCache.dir`): 'off' -> nowhere (null); 'auto' ->
 * $XDG_CACHE_HOME/gpu-supervisor/sessions, else ~/.cache/gpu-supervisor/sessions; anything else is a
 * directory (resolved).
 */
export function resolveSessionCacheDir(dir: string, env: NodeJS.ProcessEnv = process.env): string | null {
  if (dir === 'off') return null;
  if (dir !== 'auto') return resolve(dir);
  const cache =
    env.XDG_CACHE_HOME && env.XDG_CACHE_HOME.startsWith('/') ? env.XDG_CACHE_HOME : join(homedir(), '.cache');
  return join(cache, 'gpu-supervisor', 'sessions');
}
