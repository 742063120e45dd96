import { readFileSync } from 'node:fs';
import { SupervisorClient } from '../client/client.js';
import { ErrorCode, SupervisorError, describeValue } from '../protocol/errors.js';
import { defaultSocketPath } from '../transport/socket-path.js';

/** Exit codes (public): 0 ok, 1 the command failed (its error code is printed), 2 usage, 3 not running. */
export const EXIT = { OK: 0, FAILED: 1, USAGE: 2, NOT_RUNNING: 3 } as const;

export class UsageError extends Error {}

/** Something the command needs is not there (a Redis that does not answer): exit 3, message as is. */
export class UnreachableError extends Error {}

/** What every command gets: where to connect, with which token, how to print. */
export interface CliContext {
  socket: string;
  token: string | undefined;
  json: boolean;
  out: (text: string) => void;
  /** Where defaults such as GPU_SUPERVISOR_REDIS_URL come from. */
  env: NodeJS.ProcessEnv;
}

export const GLOBAL_OPTIONS = {
  socket: { type: 'string' },
  'token-file': { type: 'string' },
  json: { type: 'boolean' },
  help: { type: 'boolean', short: 'h' },
} as const;

/**
 * The token never comes from a flag (it would show in `ps`): --token-file FILE, else the
 * GPU_SUPERVISOR_ADMIN_TOKEN environment variable, as for the supervisor itself.
 */
export function readToken(tokenFile: string | undefined, env: NodeJS.ProcessEnv): string | undefined {
  if (tokenFile !== undefined) {
    try {
      return readFileSync(tokenFile, 'utf8').trim();
    } catch (error) {
      throw new UsageError(`cannot read --token-file ${tokenFile}: ${(error as Error).message}`);
    }
  }
  return env.GPU_SUPERVISOR_ADMIN_TOKEN || undefined;
}

export function contextFrom(
  values: { socket?: string; 'token-file'?: string; json?: boolean },
  env: NodeJS.ProcessEnv,
): CliContext {
  return {
    socket: values.socket ?? socketFromEnv(env) ?? defaultSocketPath(env),
    token: readToken(values['token-file'], env),
    json: values.json === true,
    out: (text) => process.stdout.write(`${text}\n`),
    env,
  };
}

/** The supervisor's own GPU_SUPERVISOR_SOCKET, when it names a path. */
function socketFromEnv(env: NodeJS.ProcessEnv): string | undefined {
  const value = env.GPU_SUPERVISOR_SOCKET;
  return value && value !== 'auto' && value !== 'off' ? value : undefined;
}

/** Connects, runs `body`, and always hangs up. */
export async function withClient<T>(
  context: CliContext,
  body: (client: SupervisorClient) => Promise<T>,
): Promise<T> {
  const options = context.token === undefined ? {} : { token: context.token };
  const client = await SupervisorClient.connect(context.socket, options);
  try {
    return await body(client);
  } finally {
    await client.close();
  }
}

export function positiveInt(flag: string, raw: string | undefined): number | undefined {
  if (raw === undefined) return undefined;
  // A number past 2^53 loses digits (and one past 1e308 becomes Infinity, sent as null).
  if (!/^\d+$/.test(raw) || Number(raw) < 1 || !Number.isSafeInteger(Number(raw)))
    throw new UsageError(`${flag} must be a positive integer, got ${describeValue(raw)}`);
  return Number(raw);
}

/** Maps a failure to its exit code and the one line printed on stderr. */
export function describeFailure(error: unknown): { code: number; line: string } {
  if (error instanceof UsageError)
    return { code: EXIT.USAGE, line: `${error.message} (see gpu-supervisor --help)` };
  if (error instanceof UnreachableError) return { code: EXIT.NOT_RUNNING, line: error.message };
  if (error instanceof SupervisorError) {
    if (error.code === ErrorCode.NOT_RUNNING)
      return {
        code: EXIT.NOT_RUNNING,
        line: `${error.message} (is it running? start it with: gpu-supervisor start)`,
      };
    return { code: EXIT.FAILED, line: `${error.code}: ${error.message}` };
  }
  return { code: EXIT.FAILED, line: (error as Error).message ?? String(error) };
}
