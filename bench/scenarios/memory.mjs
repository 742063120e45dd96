// 5. A worker that leaks native memory on every task, with an RSS ceiling and without one: peak and
// final RSS per worker slot, and the memory timeline (the sawtooth a ceiling makes).
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Supervisor } from 'gpu-supervisor';
import { OURS_ECHO } from '../lib/contenders.mjs';
import { RESULTS_DIR, fmt, log, table } from '../lib/report.mjs';

export const title = 'Memory: a leaking worker with and without an RSS ceiling';

const LEAK_KIB = 64;
const CEILING_MIB = 160;

async function leakRun({ count, ceiling }) {
  const supervisor = new Supervisor({
    worker: OURS_ECHO,
    workers: 2,
    logLevel: 'silent',
    recycleEveryTasks: 0,
    recycle: { rssMiB: ceiling ?? 0, leakHorizonTasks: ceiling ? 20 : 0 },
  });
  const slotOf = new Map();
  const peak = new Map();
  const final = new Map();
  const series = [];
  const note = (pid, rssMiB, kind) => {
    const slot = slotOf.get(pid);
    if (slot === undefined || rssMiB === undefined) return;
    peak.set(slot, Math.max(peak.get(slot) ?? 0, rssMiB));
    final.set(slot, rssMiB);
    series.push({ at: Date.now(), slot, pid, rssMiB, kind });
  };
  supervisor.events.on('worker-ready', (e) => slotOf.set(e.pid, e.slot));
  // Before cleanup is the task's own high-water mark; after cleanup is what the worker keeps.
  supervisor.events.on('cleanup', (e) => {
    note(e.pid, e.rssBeforeMiB, 'task');
    note(e.pid, e.rssAfterMiB, 'cleanup');
  });
  supervisor.events.on('recycle', (e) => note(e.oldPid, e.rssBeforeMiB, 'recycle'));
  await supervisor.start();
  let next = 0;
  await Promise.all(
    Array.from({ length: 4 }, async () => {
      while (next < count) {
        next++;
        await supervisor.run({ leakKiB: LEAK_KIB });
        if (next % 5000 === 0) log(`  ${next}/${count} tasks`);
      }
    }),
  );
  const { totals } = await supervisor.stats();
  await supervisor.shutdown();
  return { peak, final, series, recycles: totals.recycles };
}

export async function run({ quick }) {
  const count = quick ? 600 : 20000;
  const withCeiling = await leakRun({ count, ceiling: CEILING_MIB });
  const without = await leakRun({ count, ceiling: undefined });
  const rows = [];
  for (const [label, r] of [
    [`ceiling ${CEILING_MIB} MiB`, withCeiling],
    ['no ceiling', without],
  ]) {
    for (const slot of [...r.peak.keys()].sort()) {
      rows.push([
        label,
        String(slot),
        fmt.mib(r.peak.get(slot)),
        fmt.mib(r.final.get(slot)),
        String(r.recycles),
      ]);
    }
  }
  const csv = join(RESULTS_DIR, `${quick ? 'quick-' : ''}5-memory-timeline.csv`);
  writeFileSync(
    csv,
    ['variant,at,slot,pid,rssMiB,kind']
      .concat(
        [...withCeiling.series.map((s) => ['ceiling', s]), ...without.series.map((s) => ['none', s])].map(
          ([v, s]) => `${v},${s.at},${s.slot},${s.pid},${s.rssMiB},${s.kind}`,
        ),
      )
      .join('\n'),
  );
  const peakAll = Math.max(...withCeiling.peak.values());
  const markdown =
    `2 workers, ${count} tasks, each keeps ${LEAK_KIB} KiB of native memory (Buffers kept in a list).\n\n` +
    table(['variant', 'slot', 'peak RSS MiB', 'final RSS MiB', 'recycles'], rows) +
    `\n\nTimeline samples: \`${csv.split('/').slice(-2).join('/')}\`.`;
  return {
    markdown,
    targets: [
      {
        label: `peak RSS with a ${CEILING_MIB} MiB ceiling`,
        value: peakAll,
        goal: CEILING_MIB * 1.05,
        kind: 'max',
        unit: 'MiB',
      },
    ],
  };
}
