import { tmpdir, userInfo } from 'node:os';
import { join } from 'node:path';

/**
 * Where the 'auto' socket lives: the user's runtime dir (XDG_RUNTIME_DIR, private to the user and
 * cleared at logout), else a per-user folder under the temp dir. On Windows, a per-user named pipe.
 */
export function defaultSocketPath(env: NodeJS.ProcessEnv = process.env): string {
  if (process.platform === 'win32') return `\\\\.\\pipe\\gpu-supervisor-${safeUserName()}`;
  const runtimeDir = env.XDG_RUNTIME_DIR;
  if (runtimeDir) return join(runtimeDir, 'gpu-supervisor', 'supervisor.sock');
  return join(tmpdir(), `gpu-supervisor-${process.getuid?.() ?? 'user'}`, 'supervisor.sock');
}

/** The socket path a config's `socket` setting names, or undefined when it is off. */
export function resolveSocketPath(
  setting: string,
  forked: boolean,
  env: NodeJS.ProcessEnv = process.env,
): string | undefined {
  if (setting === 'off') return undefined;
  // A private child of a forking app must not take the machine-wide socket from a standalone daemon.
  if (setting === 'auto') return forked ? undefined : defaultSocketPath(env);
  return setting;
}

export function isNamedPipe(path: string): boolean {
  return path.startsWith('\\\\.\\pipe\\') || path.startsWith('\\\\?\\pipe\\');
}

function safeUserName(): string {
  try {
    return userInfo().username.replace(/[^\w.-]/g, '_');
  } catch {
    return 'user';
  }
}
