import type { Front, FrontContext } from './front.js';

/** The local socket front (issue 5). */
export function startSocketFront(context: FrontContext): Promise<Front | undefined> {
  void context;
  return Promise.resolve(undefined);
}
