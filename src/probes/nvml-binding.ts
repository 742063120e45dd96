// The few NVML entry points a GPU reading needs, bound with koffi. Imported only by the NVML thread
// (nvml-thread.ts): the library entry never loads koffi. Structs go through Buffers and are decoded
// by hand (nvml-decode.ts), so a 64-bit value such as NVML_VALUE_NOT_AVAILABLE stays exact.
import koffi, { type TypeObject } from 'koffi';

/** An nvmlDevice_t: opaque to us, handed back to the library as is. */
export type NvmlDevice = unknown;

/** The nvmlReturn_t values this code acts on (nvml.h). */
export const NVML = {
  SUCCESS: 0,
  ERROR_UNINITIALIZED: 1,
  ERROR_NOT_SUPPORTED: 3,
  ERROR_NO_PERMISSION: 4,
  ERROR_NOT_FOUND: 6,
  ERROR_INSUFFICIENT_SIZE: 7,
  ERROR_DRIVER_NOT_LOADED: 9,
  ERROR_TIMEOUT: 10,
  ERROR_LIBRARY_NOT_FOUND: 12,
  ERROR_FUNCTION_NOT_FOUND: 13,
  ERROR_GPU_IS_LOST: 15,
  ERROR_LIB_RM_VERSION_MISMATCH: 18,
  ERROR_ARGUMENT_VERSION_MISMATCH: 25,
} as const;

/** nvmlMemory_v2: NVML_STRUCT_VERSION(Memory, 2) = sizeof(nvmlMemory_v2_t) | 2 << 24. */
export const MEMORY_V2_SIZE = 40;
export const MEMORY_V2_VERSION = MEMORY_V2_SIZE | (2 << 24);
export const MEMORY_V1_SIZE = 24;
export const UTILIZATION_SIZE = 8;
/** NVML_DEVICE_UUID_V2_BUFFER_SIZE and NVML_DEVICE_NAME_V2_BUFFER_SIZE. */
export const TEXT_SIZE = 96;

/** Which nvmlDeviceGetComputeRunningProcesses this driver has, and its struct's size. */
export type ProcessesCall = { version: 3 | 2 | 1; stride: number };

type Out<T> = [T];

export interface NvmlBinding {
  init(): number;
  shutdown(): number;
  errorString(code: number): string;
  deviceCount(count: Out<number>): number;
  deviceByIndex(index: number, device: Out<NvmlDevice>): number;
  name(device: NvmlDevice, buffer: Buffer, length: number): number;
  uuid(device: NvmlDevice, buffer: Buffer, length: number): number;
  /** nvmlDeviceGetMemoryInfo_v2 (used excludes reserved memory, as nvidia-smi reports it), if present. */
  memoryV2: ((device: NvmlDevice, memory: Buffer) => number) | undefined;
  memoryV1(device: NvmlDevice, memory: Buffer): number;
  utilization(device: NvmlDevice, rates: Buffer): number;
  readonly processesCall: ProcessesCall;
  processes(device: NvmlDevice, count: Out<number>, infos: Buffer | null): number;
  /** The MIG calls, absent before driver 450. */
  migMode: ((device: NvmlDevice, current: Out<number>, pending: Out<number>) => number) | undefined;
  maxMigDevices: ((device: NvmlDevice, count: Out<number>) => number) | undefined;
  migDeviceByIndex: ((device: NvmlDevice, index: number, mig: Out<NvmlDevice>) => number) | undefined;
  gpuInstanceId: ((device: NvmlDevice, id: Out<number>) => number) | undefined;
  computeInstanceId: ((device: NvmlDevice, id: Out<number>) => number) | undefined;
}

type Native = (...args: unknown[]) => unknown;

let deviceType: TypeObject | undefined;

/** Loads `library` (throws when it cannot be loaded) and binds what a reading uses. */
export function bindNvml(library: string): NvmlBinding {
  const lib = koffi.load(library);
  // One named type per thread: koffi keeps names in a registry that a second definition would clash with.
  deviceType ??= koffi.pointer('nvmlDevice_t', koffi.opaque());
  void deviceType;
  const need = (prototype: string): Native => lib.func(prototype) as Native;
  const maybe = (prototype: string): Native | undefined => {
    try {
      return need(prototype);
    } catch {
      return undefined; // an older driver without this symbol
    }
  };
  const call =
    (fn: Native) =>
    (...args: unknown[]): number =>
      fn(...args) as number;
  const optional = (fn: Native | undefined) => (fn ? call(fn) : undefined);

  const init = maybe('int nvmlInit_v2(void)') ?? need('int nvmlInit(void)');
  const deviceCount =
    maybe('int nvmlDeviceGetCount_v2(_Out_ unsigned int *count)') ??
    need('int nvmlDeviceGetCount(_Out_ unsigned int *count)');
  const deviceByIndex =
    maybe('int nvmlDeviceGetHandleByIndex_v2(unsigned int index, _Out_ nvmlDevice_t *device)') ??
    need('int nvmlDeviceGetHandleByIndex(unsigned int index, _Out_ nvmlDevice_t *device)');
  const processesSignature = (suffix: string) =>
    `int nvmlDeviceGetComputeRunningProcesses${suffix}(nvmlDevice_t device, _Inout_ unsigned int *count, void *infos)`;
  const v3 = maybe(processesSignature('_v3'));
  const v2 = v3 ? undefined : maybe(processesSignature('_v2'));
  const processes = v3 ?? v2 ?? need(processesSignature(''));
  // _v3 and _v2 fill nvmlProcessInfo_v2_t (pid, usedGpuMemory, gpuInstanceId, computeInstanceId: 24
  // bytes with padding); the unversioned call fills the 16-byte nvmlProcessInfo_v1_t.
  const processesCall: ProcessesCall = v3
    ? { version: 3, stride: 24 }
    : v2
      ? { version: 2, stride: 24 }
      : { version: 1, stride: 16 };
  const errorString = need('const char *nvmlErrorString(int result)');

  return {
    init: call(init),
    shutdown: call(need('int nvmlShutdown(void)')),
    errorString: (code) => String(errorString(code) ?? `NVML error ${code}`),
    deviceCount: call(deviceCount),
    deviceByIndex: call(deviceByIndex),
    name: call(need('int nvmlDeviceGetName(nvmlDevice_t device, _Out_ uint8_t *name, unsigned int length)')),
    uuid: call(need('int nvmlDeviceGetUUID(nvmlDevice_t device, _Out_ uint8_t *uuid, unsigned int length)')),
    memoryV2: optional(maybe('int nvmlDeviceGetMemoryInfo_v2(nvmlDevice_t device, void *memory)')),
    memoryV1: call(need('int nvmlDeviceGetMemoryInfo(nvmlDevice_t device, void *memory)')),
    utilization: call(need('int nvmlDeviceGetUtilizationRates(nvmlDevice_t device, void *rates)')),
    processesCall,
    processes: call(processes),
    migMode: optional(
      maybe(
        'int nvmlDeviceGetMigMode(nvmlDevice_t device, _Out_ unsigned int *current, _Out_ unsigned int *pending)',
      ),
    ),
    maxMigDevices: optional(
      maybe('int nvmlDeviceGetMaxMigDeviceCount(nvmlDevice_t device, _Out_ unsigned int *count)'),
    ),
    migDeviceByIndex: optional(
      maybe(
        'int nvmlDeviceGetMigDeviceHandleByIndex(nvmlDevice_t device, unsigned int index, _Out_ nvmlDevice_t *mig)',
      ),
    ),
    gpuInstanceId: optional(
      maybe('int nvmlDeviceGetGpuInstanceId(nvmlDevice_t device, _Out_ unsigned int *id)'),
    ),
    computeInstanceId: optional(
      maybe('int nvmlDeviceGetComputeInstanceId(nvmlDevice_t device, _Out_ unsigned int *id)'),
    ),
  };
}
