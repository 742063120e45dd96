// gpu-supervisor worker module for the benches: echo, a fixed amount of CPU work or of waiting, or a leak.
const leaked = [];

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
  if (payload?.leakKiB) {
    // Native memory kept forever, as a leaking ORT arena or cache would.
    leaked.push(Buffer.alloc(payload.leakKiB * 1024, 1));
    return leaked.length;
  }
  return payload;
}
