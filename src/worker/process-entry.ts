/**
 * The file a worker process starts with: notes its first line, then loads the runtime. The split is
 * what lets a start tell Node's own boot from the runtime's imports (see start-phases.ts).
 */
import { markFirstLine, markRuntimeLoaded } from './start-clock.js';

markFirstLine();
await import('./runtime.js');
markRuntimeLoaded();
