import { readFileSync } from 'node:fs';
import { ErrorCode, SupervisorError } from '../protocol/errors.js';
import { toJsonSafe } from '../transport/session.js';
import { UsageError, withClient, type CliContext } from './context.js';
import { preview } from './format.js';

export const SUBMIT_OPTIONS = {
  model: { type: 'string' },
  input: { type: 'string' },
  timeout: { type: 'string' },
} as const;

type Tensor = { type: string; dims: number[]; data: ArrayLike<number | bigint | boolean> };

/**
 * `submit --model NAME --input FILE`: the file holds `{ inputs: { name: { type, dims, data } } }` (the
 * ONNX worker's payload shape, data as JSON arrays; optional `outputs`). Numeric data is sent as
 * TypedArrays, so it crosses the socket as raw bytes.
 */
export async function submit(context: CliContext, flags: SubmitFlags): Promise<void> {
  const { payload, timeoutMs } = submitPayload(flags);
  const answer = await withClient(context, (client) =>
    client.runDetailed(payload, timeoutMs === undefined ? {} : { timeoutMs }),
  );
  const footer = `(worker ${answer.workerPid}, ${answer.ms} ms)`;
  printOutputs(context, answer.value, { workerPid: answer.workerPid, ms: answer.ms }, footer);
}

export type SubmitFlags = { model?: string; input?: string; timeout?: string };

/** The task payload built from --model and --input, and --timeout; shared by the socket and queue paths. */
export function submitPayload(flags: SubmitFlags): { payload: Record<string, unknown>; timeoutMs?: number } {
  if (!flags.model) throw new UsageError('submit needs --model NAME');
  if (!flags.input) throw new UsageError('submit needs --input FILE');
  const timeoutMs = flags.timeout === undefined ? undefined : Number(flags.timeout);
  if (timeoutMs !== undefined && !(Number.isInteger(timeoutMs) && timeoutMs > 0))
    throw new UsageError(`--timeout must be a positive number of ms, got ${JSON.stringify(flags.timeout)}`);
  const file = readInput(flags.input);
  const payload: Record<string, unknown> = { model: flags.model, inputs: typedInputs(file.inputs) };
  if (file.outputs !== undefined) payload.outputs = file.outputs;
  return timeoutMs === undefined ? { payload } : { payload, timeoutMs };
}

/** One line per output tensor then `footer`, or with --json `{ outputs, ...extra }`. */
export function printOutputs(
  context: CliContext,
  value: unknown,
  extra: Record<string, unknown>,
  footer: string,
): void {
  const outputs = ((value as { outputs?: Record<string, Tensor> } | null)?.outputs ?? {}) as Record<
    string,
    Tensor
  >;
  if (context.json) return context.out(JSON.stringify(toJsonSafe({ outputs, ...extra })));
  for (const [name, tensor] of Object.entries(outputs)) {
    context.out(`${name}  ${tensor.type} [${tensor.dims.join(', ')}]  ${preview(tensor.data)}`);
  }
  context.out(footer);
}

function readInput(path: string): { inputs: Record<string, unknown>; outputs?: unknown } {
  let parsed: unknown;
  try {
    parsed = JSON.parse(readFileSync(path, 'utf8'));
  } catch (error) {
    throw new SupervisorError(
      ErrorCode.BAD_REQUEST,
      `cannot read input file ${path}: ${(error as Error).message.slice(0, 200)}`,
    );
  }
  const inputs = (parsed as { inputs?: unknown } | null)?.inputs;
  if (typeof inputs !== 'object' || inputs === null || Array.isArray(inputs))
    throw new SupervisorError(
      ErrorCode.BAD_REQUEST,
      `input file ${path} must hold { "inputs": { name: { type, dims, data } } }`,
    );
  return parsed as { inputs: Record<string, unknown>; outputs?: unknown };
}

const TYPED: Record<string, (data: number[]) => ArrayLike<number | bigint>> = {
  float32: (d) => Float32Array.from(d),
  int32: (d) => Int32Array.from(d),
  uint8: (d) => Uint8Array.from(d),
  int64: (d) => BigInt64Array.from(d, (v) => BigInt(v)),
};

/** Number arrays of a known dtype become TypedArrays; anything else is left for the worker to judge. */
function typedInputs(inputs: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [name, tensor] of Object.entries(inputs)) {
    const t = tensor as { type?: unknown; data?: unknown } | null;
    const convert = typeof t?.type === 'string' ? TYPED[t.type] : undefined;
    const numeric =
      Array.isArray(t?.data) && t.data.every((v) => typeof v === 'number' && Number.isFinite(v));
    const integral = numeric && (t!.data as number[]).every((v) => Number.isSafeInteger(v));
    if (convert && numeric && (t!.type === 'float32' || integral))
      out[name] = { ...t, data: convert(t!.data as number[]) };
    else out[name] = tensor;
  }
  return out;
}
