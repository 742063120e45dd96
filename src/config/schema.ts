import { z } from 'zod';

/**
 * The shape of a resolved configuration. Defaults do not live here: every knob and its default is in
 * config/default.json (the shipped file operators read) and, typed, in defaults.ts (a test proves the two
 * agree); this schema checks the merged result.
 */
const positiveInt = z.number().int().min(1);
/** Node timers overflow past 2^31-1 ms (about 24.8 days) and fire at once. */
export const MAX_TIMER_MS = 2 ** 31 - 1;
const nonNegativeInt = z.number().int().min(0);
/** A duration handed to a Node timer: past 2^31-1 ms it would fire at once (TimeoutOverflowWarning). */
const positiveTimerMs = positiveInt.max(MAX_TIMER_MS);
const nonNegativeTimerMs = nonNegativeInt.max(MAX_TIMER_MS);

export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;

const sessionOptionsSchema = z
  .object({
    intraOpNumThreads: nonNegativeInt.optional(),
    interOpNumThreads: nonNegativeInt.optional(),
    graphOptimizationLevel: z.enum(['disabled', 'basic', 'extended', 'all']).optional(),
    executionMode: z.enum(['sequential', 'parallel']).optional(),
    enableCpuMemArena: z.boolean().optional(),
    enableMemPattern: z.boolean().optional(),
  })
  .strict();

const executionProvidersSchema = z.array(z.string().min(1)).min(1);

const modelSchema = z
  .object({
    path: z.string().min(1),
    executionProviders: executionProvidersSchema.optional(),
    sessionOptions: sessionOptionsSchema.optional(),
  })
  .strict();

/** `"auto"`, `"off"`, or a path: how the socket and the history database are placed. */
const placement = z.string().min(1);

const bullmqSourceSchema = z
  .object({
    type: z.literal('bullmq'),
    connection: z.string().min(1),
    queue: z.string().min(1),
    prefix: z.string().min(1).optional(),
    /** Jobs pulled at once; 0 = one per worker slot. */
    concurrency: nonNegativeInt.optional(),
    /** How often this host publishes its stats to Redis, and how long they live there. */
    statsIntervalMs: positiveTimerMs.optional(),
    statsTtlMs: positiveTimerMs.optional(),
    /** BullMQ's stalled-job check; by default they follow statsTtlMs / statsIntervalMs. */
    lockDurationMs: positiveTimerMs.optional(),
    stalledIntervalMs: positiveTimerMs.optional(),
    maxStalledCount: nonNegativeInt.optional(),
  })
  .strict();

export const configSchema = z
  .object({
    workers: positiveInt,
    backend: z.enum(['process', 'thread']),
    /** null = `workers`. The pool grows from minWorkers to maxWorkers under load. */
    minWorkers: nonNegativeInt.nullable(),
    maxWorkers: positiveInt.nullable(),
    // An age, not a timer: its checks are armed at most MAX_TIMER_MS ahead and re-armed.
    idleTimeoutMs: nonNegativeInt,
    spareWorkers: nonNegativeInt,
    /** Tasks sent ahead to each worker process (1 = one at a time); the worker runs them in order. */
    pipelineDepth: z.number().int().min(1).max(64),
    worker: z.string().min(1).nullable(),
    workerOptions: z.record(z.string(), z.unknown()),
    workerExecArgv: z.array(z.string()),
    recycleEveryTasks: nonNegativeInt,
    taskTimeoutMs: z.number().int().min(1).max(MAX_TIMER_MS),
    startTimeoutMs: positiveTimerMs,
    killTimeoutMs: positiveTimerMs,
    minUptimeMs: nonNegativeTimerMs,
    idleReleaseMs: nonNegativeTimerMs,
    maxFailedStarts: positiveInt,
    retries: nonNegativeInt,
    shutdownTimeoutMs: nonNegativeTimerMs,
    maxQueue: positiveInt,
    historySize: nonNegativeInt,
    ipcSerialization: z.enum(['auto', 'json', 'advanced']),
    logLevel: z.enum(LOG_LEVELS),
    cleanup: z
      .object({
        afterTask: z.boolean(),
        everyTasks: positiveInt,
        force: z.boolean(),
        measure: z.boolean(),
        gpu: z.boolean(),
        lightGcMinKiB: nonNegativeInt,
        timeoutMs: positiveTimerMs,
      })
      .strict(),
    recycle: z
      .object({
        gpuMiB: nonNegativeInt,
        rssMiB: nonNegativeInt,
        // An age, not a timer: its checks are armed at most MAX_TIMER_MS ahead and re-armed.
        maxAgeMs: nonNegativeInt,
        leakHorizonTasks: nonNegativeInt,
        jitter: nonNegativeInt,
        maxConcurrent: positiveInt,
        /** true: always may pre-spawn; 'auto': only with an idle core (core/prespawn.ts); false: never. */
        prespawn: z.union([z.boolean(), z.literal('auto')]),
        prespawnMarginMiB: nonNegativeInt,
      })
      .strict(),
    /** Hard limits, watched while a task runs (recycle.* are the soft ceilings, judged after it). */
    limits: z
      .object({
        rssMiB: nonNegativeInt,
        gpuMiB: nonNegativeInt,
        intervalMs: z.number().int().min(1).max(MAX_TIMER_MS),
      })
      .strict(),
    socket: placement,
    maxMessageBytes: z.number().int().min(1024),
    maxClients: positiveInt,
    adminToken: z.string().min(8, 'an admin token needs at least 8 characters').nullable(),
    adminTokenFile: z.string().min(1).nullable(),
    requireToken: z.boolean(),
    /** ONNX Runtime's optimized models, kept across worker starts: `auto`, `off` or a directory. */
    sessionCache: z.object({ dir: placement }).strict(),
    history: z
      .object({
        path: placement,
        maxAgeDays: nonNegativeInt,
        maxRows: nonNegativeInt,
        flushMs: positiveTimerMs,
      })
      .strict(),
    http: z
      .object({
        port: z.number().int().min(0).max(65535).nullable(),
        host: z.string().min(1),
        /**
         * The admin console's read-only views without a token (actions still need one). Optional in the
         * type only, so a library caller's `http: { port, host }` still compiles; default.json sets false.
         */
        consolePublic: z.boolean().optional(),
      })
      .strict(),
    source: bullmqSourceSchema.nullable(),
    gpus: z.array(nonNegativeInt),
    gpuProbe: z
      .object({
        /** Which reader: NVML first with nvidia-smi as the fallback ('auto'), or one of them only. */
        kind: z.enum(['auto', 'nvml', 'nvidia-smi']),
        /** The NVML library koffi loads (a name the dynamic loader resolves, or a path). */
        nvmlLibrary: z.string().min(1),
        /** With NVML: a reading at least this often while tasks run (cleanups read on their own). */
        nvmlIntervalMs: z.number().int().min(1).max(MAX_TIMER_MS),
        command: z.string().min(1),
        minIntervalMs: z.number().int().min(50).max(MAX_TIMER_MS),
        timeoutMs: positiveTimerMs,
        reclaimTimeoutMs: positiveTimerMs,
      })
      .strict(),
    executionProviders: executionProvidersSchema,
    sessionOptions: sessionOptionsSchema,
    models: z.record(
      z.string().regex(/^[\w.-]+$/, 'model names use letters, digits, "_", "-" and "."'),
      modelSchema,
    ),
  })
  .strict();

export type SupervisorConfig = z.infer<typeof configSchema>;
export type ModelConfig = z.infer<typeof modelSchema>;
export type BullmqSourceConfig = z.infer<typeof bullmqSourceSchema>;
export type SessionOptionsConfig = z.infer<typeof sessionOptionsSchema>;

/** What a library user or a config file may give: any subset, nested objects partial too. */
export type SupervisorOptions = {
  [K in keyof SupervisorConfig]?: SupervisorConfig[K] extends Record<string, unknown>
    ? Partial<SupervisorConfig[K]>
    : SupervisorConfig[K];
} & { config?: string };
