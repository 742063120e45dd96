// 6. What per-task cleanup and its measurement cost at ~500 tasks/s, and how big the supervisor
// itself stays after many tasks.
import { SupervisorClient } from 'gpu-supervisor';
import * as c from '../lib/contenders.mjs';
import { compare } from '../lib/compare.mjs';
import { fmt, log, table } from '../lib/report.mjs';

export const title = 'Overhead: per-task cleanup and measurement; supervisor memory';

const SPIN_MS = 3.5;

export async function run({ quick, rounds }) {
  const n = quick ? 100 : 3000;
  const cmp = await compare({
    variants: [
      { name: 'cleanup + measurement on (default)', create: () => c.oursLibrary() },
      {
        name: 'cleanup and measurement off',
        create: () => c.oursLibrary({ cleanup: { afterTask: false, measure: false } }),
      },
    ],
    modes: [{ label: `${SPIN_MS} ms tasks`, inflight: 4, count: n }],
    payload: (i) => ({ spinMs: SPIN_MS, i }),
    reference: 'cleanup and measurement off',
    rounds,
  });
  const overheadPct =
    (1 -
      cmp.ratio('cleanup + measurement on (default)', 'cleanup and measurement off', `${SPIN_MS} ms tasks`)) *
    100;

  const tasks = quick ? 2000 : 100000;
  log(`supervisor memory: ${tasks} no-op tasks through the daemon`);
  const client = await SupervisorClient.fork({
    worker: c.OURS_ECHO,
    workers: 2,
    logLevel: 'silent',
    stdio: 'ignore',
  });
  const before = (await client.stats()).supervisor.rssMiB;
  let next = 0;
  await Promise.all(
    Array.from({ length: 64 }, async () => {
      while (next < tasks) {
        next++;
        await client.run({ i: next });
        if (next % 20000 === 0) log(`  ${next}/${tasks}`);
      }
    }),
  );
  const after = (await client.stats()).supervisor.rssMiB;
  await client.close();
  const markdown =
    `${cmp.markdown}\n\nCleanup + measurement overhead: ${overheadPct.toFixed(1)}%.\n\n` +
    table(
      ['supervisor RSS', 'MiB'],
      [
        ['after start', fmt.mib(before)],
        [`after ${tasks} tasks`, fmt.mib(after)],
      ],
    );
  return {
    markdown,
    targets: [
      { label: 'cleanup + measurement overhead', value: overheadPct, goal: 5, kind: 'max', unit: '%' },
      { label: `supervisor RSS after ${tasks} tasks`, value: after, goal: 80, kind: 'max', unit: 'MiB' },
    ],
  };
}
