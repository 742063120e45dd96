// gpu-supervisor worker module for the benches: echo, a fixed amount of CPU work or of waiting, a leak, or a task
// whose memory balloons while it runs.
import { setTimeout as sleep } from 'node:timers/promises';

const leaked = [];

/** `stepMiB` of resident memory every `everyMs` until `maxMiB` (or the supervisor kills the worker). */
async function balloon({ stepMiB, everyMs, maxMiB }) {
  const held = [];
  while (held.length * stepMiB < maxMiB) {
    held.push(Buffer.alloc(stepMiB * 1024 * 1024, 1));
    await sleep(everyMs);
  }
  return held.length * stepMiB;
}

export function run(payload) {
  if (payload?.sleepMs) {
    // Time spent off the CPU, as a task waiting on a GPU is.
    return new Promise((resolve) => setTimeout(() => resolve(payload.i), payload.sleepMs));
  }
  if (payload?.spinMs) {
    const end = performance.now() + payload.spinMs;
    while (performance.now() < end);
    return payload.i;
  }
  if (payload?.balloon) return balloon(payload.balloon);
  if (payload?.leakKiB) {
    // Native memory kept forever, as a leaking ORT arena or cache would.
    leaked.push(Buffer.alloc(payload.leakKiB * 1024, 1));
    return leaked.length;
  }
  return payload;
}
