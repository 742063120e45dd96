// A node:test reporter that prints each test file's wall time, slowest first, after the run. The runner
// reports every file as a top-level test of its own (named by its path: absolute on Node 20, relative
// on Node 22) whose duration covers the whole child process, hooks included, which a sum of the
// file's test durations would miss.
import { resolve } from 'node:path';

function isFileItself(data) {
  return data.nesting === 0 && typeof data.file === 'string' && resolve(String(data.name)) === data.file;
}

export default async function* fileDurations(source) {
  const durations = new Map();
  for await (const event of source) {
    if (event.type === 'test:complete' && isFileItself(event.data))
      durations.set(event.data.file, event.data.details?.duration_ms ?? 0);
  }
  const rows = [...durations].sort((a, b) => b[1] - a[1]);
  const total = rows.reduce((sum, [, ms]) => sum + ms, 0);
  yield `# test file durations (wall, slowest first; ${(total / 1000).toFixed(1)} s in all)\n`;
  for (const [file, ms] of rows)
    yield `#   ${(ms / 1000).toFixed(1).padStart(7)} s  ${file.replace(`${process.cwd()}/`, '')}\n`;
}
