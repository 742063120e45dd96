import { pathToFileURL, fileURLToPath } from 'node:url';

const SUPERVISOR_ENTRY = fileURLToPath(new URL('../supervisor.js', import.meta.url));

/**
 * `gpu-supervisor start [flags]` is `node dist/supervisor.js [flags]`, run in this very process rather
 * than as a child: signals, exit codes and logs behave exactly as the entry's own, with no relaying.
 */
export async function start(flags: readonly string[]): Promise<void> {
  process.argv = [process.argv[0]!, SUPERVISOR_ENTRY, ...flags];
  await import(pathToFileURL(SUPERVISOR_ENTRY).href);
}
