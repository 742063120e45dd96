/**
 * A worker must never outlive its supervisor: an orphan holds its GPU memory until someone notices.
 * The IPC channel's 'disconnect' covers a supervisor that goes away while this event loop turns; this
 * covers one that dies while a task blocks the loop in native code (ORT's run).
 *
 * On Linux the kernel does it: prctl(PR_SET_PDEATHSIG, SIGKILL) kills this process the moment its
 * parent exits, at no cost. Elsewhere a watchdog thread polls the parent pid on a loop of its own; a
 * thread is a second Node environment, 17-41 ms of CPU on every worker start (measured on this host),
 * which is why it is only the fallback.
 */
import { loadLibc } from './libc.js';

const PR_SET_PDEATHSIG = 1;
const SIGKILL = 9;

/** How this worker follows its parent: the kernel's signal, or the watchdog thread. */
export type ParentBond = 'death-signal' | 'watchdog';

/** Labelled test seam: forces the fallback, so that it stays tested on Linux too. */
const FORCE_WATCHDOG = 'GPU_SUPERVISOR_WORKER_WATCHDOG';

/** Called first thing, so the bond holds before the worker loads or sets up anything. */
export function bindToParent(): ParentBond {
  const ppid = process.ppid;
  const libc = process.env[FORCE_WATCHDOG] === '1' ? undefined : loadLibc();
  if (libc && libc.prctl(PR_SET_PDEATHSIG, SIGKILL) === 0) {
    // The parent may have died before the call, and then no signal will ever come.
    if (process.ppid !== ppid) process.kill(process.pid, 'SIGKILL');
    return 'death-signal';
  }
  void startWatchdog(ppid);
  return 'watchdog';
}

async function startWatchdog(ppid: number): Promise<void> {
  const { Worker } = await import('node:worker_threads');
  const watchdog = new Worker(
    `const { workerData } = require('node:worker_threads');
     setInterval(() => { if (process.ppid !== workerData.ppid) process.kill(workerData.pid, 'SIGKILL'); }, 500);`,
    { eval: true, workerData: { ppid, pid: process.pid } },
  );
  watchdog.unref();
}
