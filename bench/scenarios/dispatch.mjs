// 1. Dispatch: a no-op task, 2 workers, closed loop and saturated, against the peers and the raw floor.
import * as c from '../lib/contenders.mjs';
import { compare, echoWorkload } from '../lib/compare.mjs';

export const title = 'Dispatch: no-op tasks, 2 workers';

export async function run({ quick, rounds }) {
  const n = quick ? 300 : 20000;
  const variants = [
    { name: 'raw fork (JSON IPC)', create: () => c.rawFork() },
    { name: 'gpu-supervisor library', create: () => c.oursLibrary() },
    {
      // The dispatch path alone, like the peers: defaults also clean up after every task and recycle
      // every 1000 (a worker start costs ~150 ms of CPU here, the time of ~2,000 no-op tasks).
      name: 'gpu-supervisor library, dispatch only',
      create: () => c.oursLibrary({ cleanup: { afterTask: false, measure: false }, recycleEveryTasks: 0 }),
    },
    {
      name: 'gpu-supervisor library, dispatch only, pipelineDepth 8',
      create: () =>
        c.oursLibrary({
          cleanup: { afterTask: false, measure: false },
          recycleEveryTasks: 0,
          pipelineDepth: 8,
        }),
    },
    { name: 'gpu-supervisor library, thread backend', create: () => c.oursLibrary({ backend: 'thread' }) },
    { name: 'gpu-supervisor daemon', create: () => c.oursDaemon() },
    {
      name: 'gpu-supervisor daemon, no recycling, pipelineDepth 8',
      create: () => c.oursDaemon({ args: ['--recycle-every', '0', '--pipeline-depth', '8'] }),
    },
    { name: 'piscina 5', create: () => c.piscina() },
    { name: 'tinypool 2 (child_process)', create: () => c.tinypool() },
    { name: 'workerpool (process)', create: () => c.workerpoolProcess() },
  ];
  const cmp = await compare({
    variants,
    ...echoWorkload(n),
    reference: 'raw fork (JSON IPC)',
    rounds,
  });
  const ours = 'gpu-supervisor library';
  const lean = 'gpu-supervisor library, dispatch only';
  const deep = 'gpu-supervisor library, dispatch only, pipelineDepth 8';
  const raw = 'raw fork (JSON IPC)';
  const peers = ['piscina 5', 'tinypool 2 (child_process)', 'workerpool (process)'];
  const targets = [
    { label: 'library saturated vs raw fork JSON', value: cmp.ratio(ours, raw, 'saturated'), goal: 0.8 },
    { label: 'library closed loop vs raw fork JSON', value: cmp.ratio(ours, raw, 'closed loop'), goal: 0.9 },
    {
      label: 'daemon saturated vs raw fork JSON',
      value: cmp.ratio('gpu-supervisor daemon', raw, 'saturated'),
      goal: 0.4,
    },
    ...peers.map((peer) => ({
      label: `library saturated vs ${peer}`,
      value: cmp.ratio(ours, peer, 'saturated'),
      goal: 3,
    })),
    // Like for like: the peers neither clean up after each task nor recycle workers.
    {
      label: 'dispatch only, saturated vs raw fork JSON',
      value: cmp.ratio(lean, raw, 'saturated'),
      goal: 0.8,
    },
    {
      label: 'dispatch only, closed loop vs raw fork JSON',
      value: cmp.ratio(lean, raw, 'closed loop'),
      goal: 0.9,
    },
    {
      label: 'dispatch only, pipelineDepth 8, saturated vs raw fork JSON',
      value: cmp.ratio(deep, raw, 'saturated'),
      goal: 0.8,
    },
    {
      label: 'daemon, no recycling, pipelineDepth 8, saturated vs raw fork JSON',
      value: cmp.ratio('gpu-supervisor daemon, no recycling, pipelineDepth 8', raw, 'saturated'),
      goal: 0.4,
    },
    ...peers.map((peer) => ({
      label: `dispatch only, pipelineDepth 8, saturated vs ${peer}`,
      value: cmp.ratio(deep, peer, 'saturated'),
      goal: 3,
    })),
  ];
  return { markdown: cmp.markdown, targets };
}
