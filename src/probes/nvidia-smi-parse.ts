// Parsing half of the nvidia-smi GPU memory probe. Pure: no I/O, and nothing here throws on odd input,
// because the probe runs beside live workers and a driver that prints something new must cost us one
// reading, never the supervisor. Lines that cannot be read are returned in `skipped` so the caller can
// log them instead of silently trusting a partial answer.
//
// Formats (driver 4xx-5xx, `--format=csv,noheader,nounits`): one line per record, fields joined by ", ",
// nothing quoted (a GPU name with a comma is printed as is), MiB for memory and percent for utilization.
// A value the driver cannot give is a bracketed placeholder: `[N/A]` in current drivers, `[Not Supported]`
// in older ones, and others such as `[Insufficient Permissions]` or `[Unknown Error]`.

export interface GpuDevice {
  index: number;
  uuid: string;
  name: string;
  usedMiB: number | null;
  totalMiB: number | null;
  utilization: number | null;
  /**
   * MIG instances of a GPU in MIG mode (NVML readings only): each has its own memory, and the
   * processes on it are listed under its uuid.
   */
  mig?: GpuMigDevice[];
}

export interface GpuMigDevice {
  index: number;
  uuid: string;
  gpuInstanceId: number | null;
  computeInstanceId: number | null;
  usedMiB: number | null;
  totalMiB: number | null;
}

export interface GpuProcess {
  /** The GPU's uuid, or the MIG instance's (MIG-...) when it runs on one. */
  gpuUuid: string;
  pid: number;
  usedMiB: number | null;
}

export interface Parsed<T> {
  items: T[];
  /** Lines that could not be parsed, trimmed, in output order. */
  skipped: string[];
}

export const GPU_QUERY_ARGS: readonly string[] = Object.freeze([
  '--query-gpu=index,uuid,name,memory.used,memory.total,utilization.gpu',
  '--format=csv,noheader,nounits',
]);

export const APPS_QUERY_ARGS: readonly string[] = Object.freeze([
  '--query-compute-apps=gpu_uuid,pid,used_memory',
  '--format=csv,noheader,nounits',
]);

const FIELD_SEPARATOR = ', ';
const GPU_FIXED_FIELDS = 5; // index, uuid + memory.used, memory.total, utilization.gpu
const APPS_FIELDS = 3;

// Printed instead of CSV by the human-readable mode and by some builds when there is nothing to list;
// it means "no processes", not "unreadable output".
const NO_PROCESSES = /^no running (compute )?processes found$/i;

// `nounits` is what we ask for, but a caller that forgot it (or a wrapper script) should still parse.
const NUMBER_WITH_OPTIONAL_UNIT = /^(\d+(?:\.\d+)?)\s*(?:MiB|%)?$/i;

// Distinguishes "the driver says it does not know" (null) from "this is not a number at all"
// (undefined), which means the line is not what we think it is and must be skipped.
function parseMetric(raw: string): number | null | undefined {
  const value = raw.trim();
  if (value === '' || value.toUpperCase() === 'N/A') return null;
  if (value.startsWith('[') && value.endsWith(']')) return null;
  const match = NUMBER_WITH_OPTIONAL_UNIT.exec(value);
  if (!match?.[1]) return undefined;
  const n = Number(match[1]);
  return Number.isFinite(n) ? n : undefined;
}

function parseNonNegativeInt(raw: string): number | undefined {
  const value = raw.trim();
  if (!/^\d+$/.test(value)) return undefined;
  const n = Number(value);
  return Number.isSafeInteger(n) ? n : undefined;
}

function lines(stdout: string): string[] {
  // CRLF comes from Windows builds and from output captured through a PTY.
  return stdout
    .split(/\r\n|\r|\n/)
    .map((line) => line.trim())
    .filter((line) => line !== '');
}

function splitFields(line: string, minFields: number): string[] {
  const fields = line.split(FIELD_SEPARATOR);
  // Splitting on ", " keeps a name such as "Foo,Bar" whole; fall back to bare commas only when that
  // cannot be the real layout, in case some build ever drops the space.
  if (fields.length < minFields && line.includes(',')) return line.split(',').map((f) => f.trim());
  return fields.map((f) => f.trim());
}

// UUIDs never contain blanks; anything else (GPU-, MIG-, the old MIG-GPU-<uuid>/<gi>/<ci>) is accepted
// because rejecting an unfamiliar but real id would hide memory from the probe.
function isUuidLike(value: string): boolean {
  return value !== '' && !/\s/.test(value);
}

export function parseGpuCsv(stdout: string): Parsed<GpuDevice> {
  const items: GpuDevice[] = [];
  const skipped: string[] = [];
  for (const line of lines(typeof stdout === 'string' ? stdout : '')) {
    const device = parseGpuLine(line);
    if (device) items.push(device);
    else skipped.push(line);
  }
  return { items, skipped };
}

function parseGpuLine(line: string): GpuDevice | undefined {
  const fields = splitFields(line, GPU_FIXED_FIELDS + 1);
  if (fields.length < GPU_FIXED_FIELDS + 1) return undefined;
  const index = parseNonNegativeInt(fields[0] ?? '');
  const uuid = fields[1] ?? '';
  if (index === undefined || !isUuidLike(uuid)) return undefined;
  // The name is the only field that can contain the separator, so it is whatever lies between the two
  // leading and three trailing fields.
  const name = fields.slice(2, fields.length - 3).join(FIELD_SEPARATOR);
  const usedMiB = parseMetric(fields[fields.length - 3] ?? '');
  const totalMiB = parseMetric(fields[fields.length - 2] ?? '');
  const utilization = parseMetric(fields[fields.length - 1] ?? '');
  if (usedMiB === undefined || totalMiB === undefined || utilization === undefined) return undefined;
  return { index, uuid, name, usedMiB, totalMiB, utilization };
}

export function parseComputeAppsCsv(stdout: string): Parsed<GpuProcess> {
  const items: GpuProcess[] = [];
  const skipped: string[] = [];
  for (const line of lines(typeof stdout === 'string' ? stdout : '')) {
    if (NO_PROCESSES.test(line)) continue;
    const proc = parseAppsLine(line);
    if (proc) items.push(proc);
    else skipped.push(line);
  }
  return { items, skipped };
}

function parseAppsLine(line: string): GpuProcess | undefined {
  const fields = splitFields(line, APPS_FIELDS);
  if (fields.length !== APPS_FIELDS) return undefined;
  const gpuUuid = fields[0] ?? '';
  const pid = parseNonNegativeInt(fields[1] ?? '');
  // A process without a pid cannot be attributed to a worker, so the line is useless to us.
  if (!isUuidLike(gpuUuid) || pid === undefined || pid === 0) return undefined;
  const usedMiB = parseMetric(fields[2] ?? '');
  if (usedMiB === undefined) return undefined;
  return { gpuUuid, pid, usedMiB };
}

export type SmiFailureKind = 'not-installed' | 'no-driver' | 'no-devices' | 'timeout' | 'failed';

export interface SmiFailure {
  kind: SmiFailureKind;
  /** One human-readable line. */
  message: string;
}

export interface SmiFailureInput {
  exitCode?: number;
  stdout?: string;
  stderr?: string;
  /** Node's error code from the spawn, e.g. 'ENOENT'. */
  errorCode?: string;
  timedOut?: boolean;
}

// Documented nvidia-smi return codes (man page, RETURN VALUE).
const EXIT_NOT_FOUND = 6; // "A query to find an object was unsuccessful"
const EXIT_DRIVER_NOT_LOADED = 9;
const EXIT_NVML_NOT_FOUND = 12; // "NVML Shared Library couldn't be found or loaded"
const EXIT_SHELL_NOT_FOUND = 127; // when the runner goes through a shell

const NO_DEVICES_TEXT = /no devices were found/i;
// The driver text is matched loosely on the apostrophe: copies of it with a typographic quote exist.
// "Failed to initialize NVML" covers "Driver/library version mismatch" (exit 18, undocumented) and the
// container "Unknown Error" after a host cgroup reload: in each the driver cannot be reached.
const NO_DRIVER_TEXT =
  /couldn.t communicate with the nvidia driver|failed to initialize nvml|couldn.t find libnvidia-ml|nvml shared library/i;
const NOT_INSTALLED_TEXT = /command not found|not recognized as an internal or external command/i;

const MAX_DETAIL = 200;

function firstLine(...texts: Array<string | undefined>): string {
  for (const text of texts) {
    if (typeof text !== 'string') continue;
    const line = lines(text)[0];
    if (line) return line.length > MAX_DETAIL ? `${line.slice(0, MAX_DETAIL - 1)}…` : line;
  }
  return '';
}

export function classifySmiFailure(input: SmiFailureInput): SmiFailure {
  const { exitCode, stdout, stderr, errorCode, timedOut } = input ?? {};
  // nvidia-smi writes its own errors to stdout; stderr is where a shell or the loader complains.
  const text = `${typeof stdout === 'string' ? stdout : ''}\n${typeof stderr === 'string' ? stderr : ''}`;
  const detail = firstLine(stdout, stderr);
  const withDetail = (base: string): string => (detail ? `${base}: ${detail}` : base);

  // A hung call is checked first: whatever it printed before being killed is not its verdict.
  if (timedOut === true || errorCode === 'ETIMEDOUT') {
    return {
      kind: 'timeout',
      message: 'nvidia-smi did not answer in time and was killed (driver busy or hung?)',
    };
  }
  if (errorCode === 'ENOENT' || exitCode === EXIT_SHELL_NOT_FOUND || NOT_INSTALLED_TEXT.test(text)) {
    return { kind: 'not-installed', message: 'nvidia-smi is not installed or not on PATH' };
  }
  // The printed text is more specific than the exit code, which also covers unrelated lookups.
  if (NO_DEVICES_TEXT.test(text)) {
    return { kind: 'no-devices', message: 'nvidia-smi found no NVIDIA devices' };
  }
  if (NO_DRIVER_TEXT.test(text)) {
    return { kind: 'no-driver', message: withDetail('nvidia-smi cannot reach the NVIDIA driver') };
  }
  if (exitCode === EXIT_NOT_FOUND) {
    return { kind: 'no-devices', message: withDetail('nvidia-smi found no NVIDIA devices (exit code 6)') };
  }
  if (exitCode === EXIT_DRIVER_NOT_LOADED || exitCode === EXIT_NVML_NOT_FOUND) {
    return {
      kind: 'no-driver',
      message: withDetail(`nvidia-smi cannot reach the NVIDIA driver (exit code ${exitCode})`),
    };
  }
  const how =
    typeof exitCode === 'number'
      ? `exit code ${exitCode}`
      : typeof errorCode === 'string' && errorCode !== ''
        ? errorCode
        : 'unknown error';
  return { kind: 'failed', message: withDetail(`nvidia-smi failed (${how})`) };
}
