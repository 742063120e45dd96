/**
 * The worker's start marks, on its own clock (performance.now(): ms since this process's time origin,
 * its start). Kept in a module of its own, with no imports, so the entry can note the first line
 * before anything else loads.
 */
export const startMarks: { firstLine?: number; runtimeLoaded?: number } = {};

export function markFirstLine(): void {
  startMarks.firstLine ??= performance.now();
}

export function markRuntimeLoaded(): void {
  startMarks.runtimeLoaded ??= performance.now();
}
