import type { Front, FrontContext } from '../transport/front.js';

/** The BullMQ consumer (issue 8). */
export function startBullmqSource(context: FrontContext): Promise<Front | undefined> {
  void context;
  return Promise.resolve(undefined);
}
