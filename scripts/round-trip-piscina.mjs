// piscina's files on one task's round trip, measured the way scripts/round-trip-files.mjs measures
// ours: V8 precise coverage (call and block counts), reset after warm-up tasks, taken in the main
// thread once the answer is in (submit -> worker thread -> answer) and in the worker thread for its
// run. A yardstick for the Layout section of the README: piscina is the pool the issue compared with.
//
//   node scripts/round-trip-piscina.mjs [--json]
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { Session } from 'node:inspector/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Piscina } from 'piscina';

const WARM_UP = 50;
const MEASURED = 10;
/** piscina's own files that ran, from a coverage take. */
const own = (result) =>
  result
    .filter(
      (s) =>
        s.url.includes('/node_modules/piscina/') &&
        s.functions.some((f) => f.ranges.some((r) => r.count > 0)),
    )
    .map((s) => s.url.replace(/.*\/node_modules\//, ''));

// The task module: a no-op, and the worker thread's own coverage session.
const taskSource = `import { Session } from 'node:inspector/promises';
const session = new Session();
session.connect();
await session.post('Profiler.enable');
const own = ${own.toString()};
export default async function (x) {
  if (x === 'start') { await session.post('Profiler.startPreciseCoverage', { callCount: true, detailed: true }); return []; }
  if (x === 'take') return own((await session.post('Profiler.takePreciseCoverage')).result);
  return x;
}
`;
const dir = mkdtempSync(join(tmpdir(), 'round-trip-piscina-'));
const taskFile = join(dir, 'task.mjs');
writeFileSync(taskFile, taskSource);
const pool = new Piscina({ filename: taskFile, minThreads: 1, maxThreads: 1 });
const session = new Session();
session.connect();
try {
  await session.post('Profiler.enable');
  for (let i = 0; i < WARM_UP; i++) await pool.run(i);
  await session.post('Profiler.startPreciseCoverage', { callCount: true, detailed: true });
  const main = new Set();
  const worker = new Set();
  for (let i = 0; i < MEASURED; i++) {
    await pool.run('start');
    await session.post('Profiler.takePreciseCoverage');
    await pool.run(i);
    for (const file of own((await session.post('Profiler.takePreciseCoverage')).result)) main.add(file);
    // The 'take' call comes in the way a task does: the worker's files are those of one run either way.
    for (const file of await pool.run('take')) worker.add(file);
  }
  const files = [...new Set([...main, ...worker])].sort();
  const result = { tasks: MEASURED, main: [...main].sort(), worker: [...worker].sort(), files: files.length };
  if (process.argv.includes('--json')) process.stdout.write(`${JSON.stringify(result)}\n`);
  else {
    process.stdout.write(`piscina ${MEASURED} no-op tasks, one round trip each:\n`);
    process.stdout.write(`main thread (${result.main.length} files):\n    ${result.main.join('\n    ')}\n`);
    process.stdout.write(
      `worker thread (${result.worker.length} files):\n    ${result.worker.join('\n    ')}\n`,
    );
    process.stdout.write(`one round trip: ${files.length} files of piscina\n`);
  }
} finally {
  await pool.destroy();
  session.disconnect();
  rmSync(dir, { recursive: true, force: true });
}
