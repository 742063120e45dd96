import type { SupervisorConfig } from '../config/schema.js';
import type { Logger } from '../logging/logger.js';
import type { Supervisor } from '../service/facade.js';

/**
 * A way in to a running supervisor besides the fork channel: the local socket, the HTTP listener, a
 * BullMQ queue. The entry point starts each one the config asks for and closes them on shutdown.
 */
export interface Front {
  readonly name: string;
  /** Stops taking new work; resolves when what it had accepted has been answered or handed back. */
  close(): Promise<void>;
}

export interface FrontContext {
  supervisor: Supervisor;
  config: SupervisorConfig;
  log: Logger;
  /** True when a parent forked us with an IPC channel: "auto" placements then stay off (see README). */
  forked: boolean;
}

/** Starts a front, or resolves undefined when the config leaves it off. */
export type StartFront = (context: FrontContext) => Promise<Front | undefined>;
