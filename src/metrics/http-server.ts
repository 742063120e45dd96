import type { Front, FrontContext } from '../transport/front.js';

/** The metrics and health HTTP front (issue 5). */
export function startHttpFront(context: FrontContext): Promise<Front | undefined> {
  void context;
  return Promise.resolve(undefined);
}
