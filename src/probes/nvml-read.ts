// One whole GPU reading through NVML: every device's memory, and every compute process with its own
// memory, per MIG instance on a GPU in MIG mode. Runs in the NVML thread (synchronous calls).
import {
  MEMORY_V1_SIZE,
  MEMORY_V2_SIZE,
  MEMORY_V2_VERSION,
  NVML,
  TEXT_SIZE,
  UTILIZATION_SIZE,
  type NvmlBinding,
  type NvmlDevice,
} from './nvml-binding.js';
import type { GpuDevice, GpuMigDevice, GpuProcess } from './nvidia-smi-parse.js';
import type { GpuFailure } from './gpu-reader.js';

/** NVML_VALUE_NOT_AVAILABLE: (unsigned long long)-1, what usedGpuMemory holds when it is unknown. */
const NOT_AVAILABLE = 0xffff_ffff_ffff_ffffn;
const MIB = 1n << 20n;
/** Processes come and go between the sizing call and the filling one: a few tries, then give up. */
const MAX_TRIES = 4;

export class NvmlError extends Error {
  constructor(
    readonly call: string,
    readonly code: number,
    message: string,
  ) {
    super(`${call}: ${message} (NVML ${code})`);
  }
}

/** Whole MiB, rounded down as nvidia-smi prints them; null when NVML does not know. */
function miB(bytes: bigint): number | null {
  return bytes === NOT_AVAILABLE ? null : Number(bytes / MIB);
}

function text(buffer: Buffer): string {
  const end = buffer.indexOf(0);
  return buffer.toString('utf8', 0, end === -1 ? buffer.length : end);
}

export class NvmlReading {
  /** Process buffer capacity per device uuid, kept between readings so the usual reading is one call. */
  private readonly capacity = new Map<string, number>();
  private readonly textBuffer = Buffer.alloc(TEXT_SIZE);
  private readonly memoryBuffer = Buffer.alloc(MEMORY_V2_SIZE);
  private memoryV2 = true;

  constructor(private readonly nvml: NvmlBinding) {}

  private check(call: string, code: number): void {
    if (code !== NVML.SUCCESS) throw new NvmlError(call, code, this.nvml.errorString(code));
  }

  private text(call: string, read: (buffer: Buffer, length: number) => number): string {
    this.textBuffer.fill(0);
    this.check(call, read(this.textBuffer, TEXT_SIZE));
    return text(this.textBuffer);
  }

  /** Used and total MiB; nulls where the device cannot say (unified-memory parts, some vGPUs). */
  private memory(device: NvmlDevice): { usedMiB: number | null; totalMiB: number | null } {
    const buffer = this.memoryBuffer;
    if (this.memoryV2 && this.nvml.memoryV2) {
      buffer.fill(0);
      buffer.writeUInt32LE(MEMORY_V2_VERSION, 0);
      const code = this.nvml.memoryV2(device, buffer);
      if (code === NVML.SUCCESS) {
        return { totalMiB: miB(buffer.readBigUInt64LE(8)), usedMiB: miB(buffer.readBigUInt64LE(32)) };
      }
      if (code === NVML.ERROR_NOT_SUPPORTED) return { usedMiB: null, totalMiB: null };
      // A library that has the symbol but not this struct version: the v1 call from now on.
      if (code !== NVML.ERROR_ARGUMENT_VERSION_MISMATCH && code !== NVML.ERROR_FUNCTION_NOT_FOUND)
        this.check('nvmlDeviceGetMemoryInfo_v2', code);
      this.memoryV2 = false;
    }
    buffer.fill(0, 0, MEMORY_V1_SIZE);
    const code = this.nvml.memoryV1(device, buffer);
    if (code === NVML.ERROR_NOT_SUPPORTED) return { usedMiB: null, totalMiB: null };
    this.check('nvmlDeviceGetMemoryInfo', code);
    return { totalMiB: miB(buffer.readBigUInt64LE(0)), usedMiB: miB(buffer.readBigUInt64LE(16)) };
  }

  private utilization(device: NvmlDevice): number | null {
    const buffer = Buffer.alloc(UTILIZATION_SIZE);
    const code = this.nvml.utilization(device, buffer);
    // Not supported on MIG-mode GPUs and some vGPUs: unknown, not an error.
    if (code !== NVML.SUCCESS) return null;
    return buffer.readUInt32LE(0);
  }

  /** The compute processes on one device (a GPU, or a MIG instance), under its uuid. */
  private processes(device: NvmlDevice, uuid: string): GpuProcess[] {
    const { stride, version } = this.nvml.processesCall;
    const call = `nvmlDeviceGetComputeRunningProcesses${version === 1 ? '' : `_v${version}`}`;
    let capacity = this.capacity.get(uuid) ?? 16;
    for (let tries = 1; ; tries++) {
      const buffer = Buffer.alloc(capacity * stride);
      const count: [number] = [capacity];
      const code = this.nvml.processes(device, count, buffer);
      if (code === NVML.ERROR_INSUFFICIENT_SIZE && tries < MAX_TRIES) {
        // count now holds how many there are; leave room for a few more starting meanwhile.
        capacity = Math.max(count[0], capacity) + 8;
        this.capacity.set(uuid, capacity);
        continue;
      }
      this.check(call, code);
      const found: GpuProcess[] = [];
      for (let i = 0; i < Math.min(count[0], capacity); i++) {
        const at = i * stride;
        const pid = buffer.readUInt32LE(at);
        // As with nvidia-smi: a process without a pid cannot be attributed to a worker.
        if (pid === 0) continue;
        found.push({ gpuUuid: uuid, pid, usedMiB: miB(buffer.readBigUInt64LE(at + 8)) });
      }
      return found;
    }
  }

  private id(
    read: ((device: NvmlDevice, id: [number]) => number) | undefined,
    device: NvmlDevice,
  ): number | null {
    const out: [number] = [0];
    return read && read(device, out) === NVML.SUCCESS ? out[0] : null;
  }

  private migEnabled(device: NvmlDevice): boolean {
    const current: [number] = [0];
    const pending: [number] = [0];
    // Absent (old driver) or not supported (not a MIG-capable GPU): not in MIG mode.
    return this.nvml.migMode?.(device, current, pending) === NVML.SUCCESS && current[0] === 1;
  }

  /** A GPU in MIG mode: its instances, each with its memory and processes. */
  private migDevices(device: NvmlDevice, processes: GpuProcess[]): GpuMigDevice[] {
    const { maxMigDevices, migDeviceByIndex } = this.nvml;
    if (!maxMigDevices || !migDeviceByIndex) return [];
    const max: [number] = [0];
    this.check('nvmlDeviceGetMaxMigDeviceCount', maxMigDevices(device, max));
    const instances: GpuMigDevice[] = [];
    for (let index = 0; index < max[0]; index++) {
      const handle: [NvmlDevice] = [null];
      const code = migDeviceByIndex(device, index, handle);
      if (code === NVML.ERROR_NOT_FOUND) continue; // an empty slot
      this.check('nvmlDeviceGetMigDeviceHandleByIndex', code);
      const mig = handle[0];
      const uuid = this.text('nvmlDeviceGetUUID', (b, n) => this.nvml.uuid(mig, b, n));
      const { usedMiB, totalMiB } = this.memory(mig);
      instances.push({
        index,
        uuid,
        gpuInstanceId: this.id(this.nvml.gpuInstanceId, mig),
        computeInstanceId: this.id(this.nvml.computeInstanceId, mig),
        usedMiB,
        totalMiB,
      });
      processes.push(...this.processes(mig, uuid));
    }
    return instances;
  }

  /**
   * One process's own GPU memory over every device and MIG instance, from the process lists alone
   * (what a worker reads around its cleanup): undefined when it is not listed, or its figure is unknown.
   */
  processMiB(pid: number): number | undefined {
    const count: [number] = [0];
    this.check('nvmlDeviceGetCount', this.nvml.deviceCount(count));
    const entries: GpuProcess[] = [];
    for (let index = 0; index < count[0]; index++) {
      const handle: [NvmlDevice] = [null];
      this.check('nvmlDeviceGetHandleByIndex', this.nvml.deviceByIndex(index, handle));
      const device = handle[0];
      if (this.migEnabled(device)) this.migDevices(device, entries);
      else entries.push(...this.processes(device, `gpu-${index}`));
    }
    const own = entries.filter((p) => p.pid === pid);
    if (own.length === 0 || own.some((p) => p.usedMiB === null)) return undefined;
    return own.reduce((sum, p) => sum + (p.usedMiB ?? 0), 0);
  }

  read(): { devices: GpuDevice[]; processes: GpuProcess[] } {
    const count: [number] = [0];
    this.check('nvmlDeviceGetCount', this.nvml.deviceCount(count));
    const devices: GpuDevice[] = [];
    const processes: GpuProcess[] = [];
    for (let index = 0; index < count[0]; index++) {
      const handle: [NvmlDevice] = [null];
      this.check('nvmlDeviceGetHandleByIndex', this.nvml.deviceByIndex(index, handle));
      const device = handle[0];
      const uuid = this.text('nvmlDeviceGetUUID', (b, n) => this.nvml.uuid(device, b, n));
      const name = this.text('nvmlDeviceGetName', (b, n) => this.nvml.name(device, b, n));
      const { usedMiB, totalMiB } = this.memory(device);
      const utilization = this.utilization(device);
      const entry: GpuDevice = { index, uuid, name, usedMiB, totalMiB, utilization };
      // In MIG mode the GPU's own process list is an aggregate (or refused); each instance's is exact,
      // and lists its processes under the instance's uuid, as nvidia-smi does.
      if (this.migEnabled(device)) entry.mig = this.migDevices(device, processes);
      else processes.push(...this.processes(device, uuid));
      devices.push(entry);
    }
    return { devices, processes };
  }
}

/** What an NVML return code at start means for the host, in the probe's failure kinds. */
export function nvmlFailure(error: unknown): GpuFailure {
  if (!(error instanceof NvmlError)) {
    return { kind: 'failed', message: `NVML reading failed: ${(error as Error)?.message ?? String(error)}` };
  }
  const message = `NVML ${error.message}`;
  switch (error.code) {
    case NVML.ERROR_LIBRARY_NOT_FOUND:
      return { kind: 'not-installed', message };
    case NVML.ERROR_DRIVER_NOT_LOADED:
    case NVML.ERROR_LIB_RM_VERSION_MISMATCH:
    case NVML.ERROR_NO_PERMISSION:
    case NVML.ERROR_GPU_IS_LOST:
      return { kind: 'no-driver', message };
    case NVML.ERROR_TIMEOUT:
      return { kind: 'timeout', message };
    default:
      return { kind: 'failed', message };
  }
}
