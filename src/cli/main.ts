#!/usr/bin/env node
/**
 * The `gpu-supervisor` command. `start` runs the supervisor in the foreground; every other command
 * talks to a running one through its local socket (SupervisorClient.connect), except `stats --cluster`
 * and `submit --queue`, which go through Redis (queue-commands.ts).
 * Exit codes: 0 ok, 1 the command failed (its error code is printed), 2 usage, 3 not running.
 */
import { parseArgs } from 'node:util';
import {
  ADMIN_OPTIONS,
  clearCache,
  clearHistory,
  history,
  recycle,
  report,
  stats,
} from './admin-commands.js';
import {
  contextFrom,
  describeFailure,
  EXIT,
  GLOBAL_OPTIONS,
  UsageError,
  type CliContext,
} from './context.js';
import {
  CLUSTER_OPTIONS,
  clusterStats,
  QUEUE_OPTIONS,
  submitQueued,
  wantsCluster,
  wantsQueue,
} from './queue-commands.js';
import { start } from './start.js';
import { submit, SUBMIT_OPTIONS } from './submit.js';

const USAGE = `usage: gpu-supervisor <command> [options]

commands:
  start [supervisor flags]        run the supervisor in the foreground (= node dist/supervisor.js)
  stats                           supervisor, workers and GPUs
  stats --cluster [--redis URL] [--queue Q] [--prefix P]
                                  every live host consuming a BullMQ queue, one table; --redis and
                                  --queue default to env GPU_SUPERVISOR_REDIS_URL, GPU_SUPERVISOR_QUEUE
  recycle [--worker PID]          recycle every worker one at a time, or one
  clear-cache [--worker PID] [--model NAME [--mode light]]
                                  release cached sessions by recycling workers; --model: only the
                                  workers holding that model's session; --mode light: each releases
                                  it in place (no restart)
  clear-history                   empty the task history
  submit --model NAME --input FILE [--timeout MS]
                                  run one task; FILE holds { "inputs": { name: { type, dims, data } } }
  submit --queue Q [--redis URL] [--prefix P] --model NAME --input FILE [--timeout MS]
                                  the same through a BullMQ queue: any host consuming Q runs it
                                  (--redis defaults to env GPU_SUPERVISOR_REDIS_URL)
  history [--last N]              recent tasks
  report [--svg FILE]             measured savings report; --svg writes the memory timeline

options:
  --socket PATH                   the supervisor's socket (default: the 'auto' path, or env GPU_SUPERVISOR_SOCKET)
  --token-file FILE               admin token file (else env GPU_SUPERVISOR_ADMIN_TOKEN; never a flag)
  --json                          machine-readable output
  --help                          this text

exit codes: 0 ok, 1 command failed, 2 usage, 3 supervisor not running (or Redis unreachable)`;

type Run = (context: CliContext, values: Record<string, string | boolean | undefined>) => Promise<void>;

const COMMANDS: Record<string, { options: Record<string, { type: 'string' | 'boolean' }>; run: Run }> = {
  stats: {
    options: CLUSTER_OPTIONS,
    run: (c, v) => (wantsCluster(v) ? clusterStats(c, v as never) : stats(c)),
  },
  recycle: { options: { worker: ADMIN_OPTIONS.worker }, run: (c, v) => recycle(c, 'recycle', v as never) },
  'clear-cache': {
    options: { worker: ADMIN_OPTIONS.worker, model: ADMIN_OPTIONS.model, mode: ADMIN_OPTIONS.mode },
    run: (c, v) => clearCache(c, v as never),
  },
  'clear-history': { options: {}, run: (c) => clearHistory(c) },
  submit: {
    options: { ...SUBMIT_OPTIONS, ...QUEUE_OPTIONS },
    run: (c, v) => (wantsQueue(v) ? submitQueued(c, v as never) : submit(c, v as never)),
  },
  history: { options: { last: ADMIN_OPTIONS.last }, run: (c, v) => history(c, v as never) },
  report: { options: { svg: ADMIN_OPTIONS.svg }, run: (c, v) => report(c, v as never) },
};

async function main(argv: readonly string[]): Promise<number> {
  const [command, ...rest] = argv;
  // A leading flag keeps the old bin's meaning (`gpu-supervisor --workers 2` started the supervisor).
  const legacy = command !== undefined && command.startsWith('-') && command !== '--help' && command !== '-h';
  if (command === 'start' || legacy) {
    await start(legacy ? argv : rest);
    return -1; // the supervisor owns the process from here, exit code included
  }
  if (command === undefined || command === '--help' || command === '-h' || command === 'help') {
    process.stdout.write(`${USAGE}\n`);
    return command === undefined ? EXIT.USAGE : EXIT.OK;
  }
  const spec = COMMANDS[command];
  if (!spec) throw new UsageError(`unknown command ${JSON.stringify(command)}`);
  let values: Record<string, string | boolean | undefined>;
  try {
    ({ values } = parseArgs({
      args: [...rest],
      options: { ...GLOBAL_OPTIONS, ...spec.options },
      strict: true,
      allowPositionals: false,
    }));
  } catch (error) {
    throw new UsageError((error as Error).message);
  }
  if (values.help) {
    process.stdout.write(`${USAGE}\n`);
    return EXIT.OK;
  }
  await spec.run(contextFrom(values, process.env), values);
  return EXIT.OK;
}

main(process.argv.slice(2)).then(
  (code) => {
    if (code >= 0) process.exitCode = code;
  },
  (error: unknown) => {
    const { code, line } = describeFailure(error);
    process.stderr.write(`gpu-supervisor: ${line}\n`);
    process.exitCode = code;
  },
);
