import { processUsedMiB, type Attribution } from '../probes/gpu-attribution.js';
import type { GpuMeter } from '../probes/gpu-meter.js';
import type { GpuProbeKind, GpuSnapshot } from '../probes/gpu-probe.js';
import type { GpuDevice } from '../probes/nvidia-smi-parse.js';
import type { WorkerHandle } from './worker-handle.js';
import type { WorkerState } from '../core/life.js';
import type { Backend } from './runtime/types.js';
import type { StartPhases } from '../protocol/start-phases.js';

export interface WorkerStats {
  pid: number;
  slot: number;
  state: WorkerState;
  tasksDone: number;
  /** Tasks it holds now: the one it runs and those sent ahead of it (pipelineDepth). */
  inFlight: number;
  rssMiB: number | undefined;
  uptimeMs: number;
  /** The worker's own GPU memory; null when unknown (no GPU, or device attribution). */
  gpuMiB: number | null;
  /** The GPU index it is pinned to (`gpus`), or null. */
  gpu: number | null;
  /** Its start (the slot's last), phase by phase in ms; null while unknown. */
  start: StartPhases | null;
  /** Thread backend: the worker thread's id (`pid` is then the supervisor's own, and so is `rssMiB`). */
  threadId?: number;
  /** The models whose session it holds, as it last said; absent when its worker module cannot tell. */
  sessions?: string[];
}

export interface GpuStats {
  attribution: Attribution;
  devices: GpuDevice[];
  /** kind: which reader takes the readings ('nvml', or 'nvidia-smi' as the fallback). */
  probe: { kind: GpuProbeKind; readings: number; averageMs: number; failures: number };
}

export async function workerStatsOf(
  handle: WorkerHandle,
  snapshot: GpuSnapshot | undefined,
  attribution: Attribution | undefined,
): Promise<WorkerStats> {
  const gpuMiB = snapshot && attribution === 'process' ? processUsedMiB(snapshot, handle.pid) : undefined;
  return {
    pid: handle.pid,
    slot: handle.slot,
    state: handle.state,
    tasksDone: handle.tasksDone,
    inFlight: handle.load,
    rssMiB: await handle.rssMiB(),
    uptimeMs: Date.now() - handle.startedAt,
    gpuMiB: gpuMiB ?? null,
    gpu: handle.gpuIndex ?? null,
    start: handle.start ?? null,
    ...(handle.threadId === undefined ? {} : { threadId: handle.threadId }),
    ...(handle.sessions === undefined ? {} : { sessions: [...handle.sessions] }),
  };
}

export function gpuStatsOf(meter: GpuMeter): GpuStats | null {
  const { probe } = meter;
  if (!probe.latest) return null;
  return {
    attribution: meter.attribution,
    devices: probe.latest.devices.map((device) => ({ ...device })),
    probe: {
      kind: probe.kind,
      readings: probe.cost.readings,
      averageMs: probe.averageMs,
      failures: probe.cost.failures,
    },
  };
}

/** The pool's current size, its bounds, warm spares, and backend (in stats). */
export interface PoolSize {
  current: number;
  min: number;
  max: number;
  spares: number;
  backend: Backend;
}
