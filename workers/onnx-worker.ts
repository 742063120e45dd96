/**
 * The default worker module: ONNX Runtime inference. One session per model name, created lazily from
 * the registry in the config (a payload can only name a model, never a file). After each task the
 * runtime calls `cleanup`: the task's tensors are disposed; with `force`, cached sessions are released.
 *
 * Payload: { model, inputs: { [name]: { type, dims, data } }, outputs?: string[] }
 * Value:   { outputs: { [name]: { type, dims, data } } }
 */
import type * as OnnxRuntime from 'onnxruntime-node';
import type { InferenceSession, Tensor } from 'onnxruntime-node';
import { TaskError, type CleanupOptions, type WorkerContext } from 'gpu-supervisor/worker';
import type * as TensorCodec from './tensor-codec.js';
import { createCachedSession } from './session-cache.js';

/**
 * onnxruntime-node (its native binding) and what needs it, loaded on first use rather than at import:
 * setup measures the load as its own start phase, and a worker that never runs ORT never pays for it.
 */
type Ort = typeof OnnxRuntime;
type Codec = typeof TensorCodec;
let loading: Promise<{ ort: Ort; codec: Codec }> | undefined;
/** Set once loaded: a task then reads it without another await. */
let loadedCodec: Codec | undefined;
function runtime(): Promise<{ ort: Ort; codec: Codec }> {
  loading ??= Promise.all([import('onnxruntime-node'), import('./tensor-codec.js')]).then(([ort, codec]) => {
    loadedCodec = codec;
    return { ort, codec };
  });
  return loading;
}

const sessions = new Map<string, Promise<InferenceSession>>();
let taskTensors: Tensor[] = [];
let warnedNoCuda = false;

function cudaInstalled(ort: Ort): boolean {
  // The CPU build reports cuda as a known but not bundled backend; ONNXRUNTIME_NODE_INSTALL=cuda12 installs it.
  return ort.listSupportedBackends().some((b) => b.name === 'cuda' && b.bundled);
}

type Provider = InferenceSession.ExecutionProviderConfig;

function providersFor(ort: Ort, requested: string[], context: WorkerContext): Provider[] {
  // The supervisor pins a worker to one GPU with CUDA_VISIBLE_DEVICES (`gpus`): inside, it is device 0.
  const cuda = (): Provider => ({ name: 'cuda', deviceId: 0 });
  if (!requested.includes('cuda')) return requested;
  if (cudaInstalled(ort)) return requested.map((p) => (p === 'cuda' ? cuda() : p));
  if (!warnedNoCuda) {
    warnedNoCuda = true;
    context.log.warn(
      { requested },
      'CUDA execution provider is not installed in onnxruntime-node: running on CPU. ' +
        'Install it with ONNXRUNTIME_NODE_INSTALL=cuda12 npm ci on a machine that can reach its download.',
    );
  }
  const rest = requested.filter((p) => p !== 'cuda');
  return rest.length > 0 ? rest : ['cpu'];
}

async function createSession(name: string, context: WorkerContext): Promise<InferenceSession> {
  const { ort } = await runtime();
  const { models, executionProviders, sessionOptions, sessionCacheDir } = context.config;
  // Object.hasOwn: a model name like "__proto__" or "constructor" must not reach the prototype.
  const model = Object.hasOwn(models, name) ? models[name] : undefined;
  if (!model) {
    throw new TaskError(
      'E_MODEL_NOT_FOUND',
      `unknown model "${name}"; this supervisor serves ${Object.keys(models).join(', ') || 'no models'}`,
    );
  }
  const options: InferenceSession.SessionOptions = {
    ...sessionOptions,
    ...model.sessionOptions,
    executionProviders: providersFor(ort, model.executionProviders ?? executionProviders, context),
  };
  const started = performance.now();
  try {
    const create = (path: string, o: InferenceSession.SessionOptions) => ort.InferenceSession.create(path, o);
    const { session, cache } = sessionCacheDir
      ? await createCachedSession(
          { dir: sessionCacheDir, ortVersion: ort.env.versions.node ?? 'unknown', log: context.log, create },
          model.path,
          options,
        )
      : { session: await create(model.path, options), cache: 'off' as const };
    const ms = performance.now() - started;
    context.start?.session({ model: name, ms, cache });
    context.log.debug(
      { model: name, path: model.path, providers: options.executionProviders, ms, cache },
      'session created',
    );
    return session;
  } catch (error) {
    const message = (error as Error).message;
    if (/no such file|not found|ENOENT|Load model from .* failed/i.test(message)) {
      throw new TaskError('E_MODEL_NOT_FOUND', `model "${name}": cannot load ${model.path}: ${message}`);
    }
    throw error;
  }
}

function session(name: string, context: WorkerContext): Promise<InferenceSession> {
  let pending = sessions.get(name);
  if (!pending) {
    pending = createSession(name, context);
    sessions.set(name, pending);
    // A failed load is not cached: the next task retries (the file may have been fixed).
    pending.catch(() => sessions.delete(name));
  }
  return pending;
}

function parsePayload(payload: unknown): { model: string; inputs: unknown; outputs: string[] | undefined } {
  if (typeof payload !== 'object' || payload === null || Array.isArray(payload)) {
    throw new TaskError('E_BAD_REQUEST', 'payload must be an object { model, inputs, outputs? }');
  }
  const { model, inputs, outputs } = payload as Record<string, unknown>;
  if (typeof model !== 'string' || model.length === 0)
    throw new TaskError('E_BAD_REQUEST', '"model" must be a non-empty string');
  if (
    outputs !== undefined &&
    !(Array.isArray(outputs) && outputs.length > 0 && outputs.every((o) => typeof o === 'string'))
  ) {
    // An empty list would ask ORT for nothing, which it refuses with its own message.
    throw new TaskError('E_BAD_REQUEST', '"outputs" must be a non-empty array of output names');
  }
  return { model, inputs, outputs: outputs as string[] | undefined };
}

export async function setup(context: WorkerContext): Promise<void> {
  const loadStarted = performance.now();
  const { ort } = await runtime();
  context.start?.binding(performance.now() - loadStarted);
  providersFor(ort, context.config.executionProviders, context);
  // Optional warm-up: models named in workerOptions.preload are loaded before the worker reports
  // ready, so a pre-spawned replacement takes its first task warm. A model that fails to load here
  // fails the start (the pool backs off), rather than every task later.
  const preload = context.config.options.preload;
  if (Array.isArray(preload)) {
    await Promise.all(
      preload
        .filter((name): name is string => typeof name === 'string')
        .map((name) => session(name, context)),
    );
  }
}

export async function run(
  payload: unknown,
  context: WorkerContext,
): Promise<{ outputs: ReturnType<Codec['fromOutputs']> }> {
  const request = parsePayload(payload);
  const codec = loadedCodec ?? (await runtime()).codec;
  const active = await session(request.model, context);
  const feeds = codec.toFeeds(request.model, active, request.inputs);
  taskTensors.push(...Object.values(feeds));
  const unknown = request.outputs?.filter((o) => !active.outputNames.includes(o));
  if (unknown?.length) {
    throw new TaskError(
      'E_BAD_REQUEST',
      `unknown output "${unknown[0]}" for model "${request.model}"; it has ${active.outputNames.join(', ')}`,
    );
  }
  const results = request.outputs ? await active.run(feeds, request.outputs) : await active.run(feeds);
  taskTensors.push(...Object.values(results));
  return { outputs: codec.fromOutputs(results) };
}

export async function cleanup(_context: WorkerContext, { force }: CleanupOptions): Promise<void> {
  for (const tensor of taskTensors) tensor.dispose();
  taskTensors = [];
  if (force) {
    const open = [...sessions.values()];
    sessions.clear();
    await Promise.allSettled(open.map(async (s) => (await s).release()));
  }
}

/** The models whose session is loaded or loading (the pool's view of what clear-cache { model } concerns). */
export function heldSessions(): Iterable<string> {
  return sessions.keys();
}

/** Releases one model's session in place (admin clear-cache { model, mode: 'light' }); the next task reloads it. */
export async function releaseSession(model: string): Promise<void> {
  const pending = sessions.get(model);
  if (!pending) return;
  sessions.delete(model);
  // A load that failed has nothing to release.
  const session = await pending.catch(() => undefined);
  await session?.release();
}
