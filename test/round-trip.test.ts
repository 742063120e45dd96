// One task's round trip, measured by scripts/round-trip-files.mjs (V8 coverage in the supervisor and
// its worker, real processes): the run message leaves before the pool's verdict and bookkeeping, and
// the path does not grow past what the README's Layout section states.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const SCRIPT = fileURLToPath(new URL('../scripts/round-trip-files.mjs', import.meta.url));
/** README, Layout: files of src/ on the path (out and back in the supervisor, the run in the worker). */
const PATH_FILES = 10;

interface Window {
  files: string[];
}
interface Report {
  supervisor: { out: Window; back: Window; meanwhile: Window; path: Window };
  counts: { path: { src: number } };
}

describe('a task round trip (fork channel -> worker -> answer)', () => {
  const report = JSON.parse(
    execFileSync(process.execPath, [SCRIPT, '--json', '--tasks', '3'], { encoding: 'utf8', stdio: 'pipe' }),
  ) as Report;

  test(`passes through at most ${PATH_FILES} files of src/`, () => {
    assert.ok(
      report.counts.path.src <= PATH_FILES,
      `${report.counts.path.src} files on the path: ${report.supervisor.path.files.join(', ')}`,
    );
  });

  test('the run message is written before the verdict on the worker and the bookkeeping of a dispatch', () => {
    const { out, meanwhile } = report.supervisor;
    for (const file of [
      'src/core/verdict.ts',
      'src/core/recycle-policy.ts',
      'src/core/cleanup-cadence.ts',
      'src/pool/idle-timers.ts',
      'src/pool/gpu-accounting.ts',
      'src/probes/cgroup-oom.ts',
    ]) {
      assert.ok(!out.files.includes(file), `${file} runs before the run message is written`);
    }
    // Not dropped either: the dispatch still asks for its verdict, after the write.
    for (const file of ['src/core/verdict.ts', 'src/pool/idle-timers.ts', 'src/pool/gpu-accounting.ts']) {
      assert.ok(meanwhile.files.includes(file), `${file} no longer runs after a dispatch`);
    }
  });
});
