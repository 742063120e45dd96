// 3. Real inference through 2 supervised workers against the best in-process onnxruntime-node setup.
import ort from 'onnxruntime-node';
import * as c from '../lib/contenders.mjs';
import { compare } from '../lib/compare.mjs';
import { SILERO_PATH, mlp64Path, mlpFeeds, sileroFeeds } from '../lib/models.mjs';

export const title = 'Real inference: silero VAD and the 64 MiB MLP';

function toOrt(feeds) {
  return Object.fromEntries(
    Object.entries(feeds).map(([name, t]) => [name, new ort.Tensor(t.type, t.data, t.dims)]),
  );
}

async function inProcess(path, intraOpNumThreads) {
  const session = await ort.InferenceSession.create(path, {
    executionProviders: ['cpu'],
    intraOpNumThreads,
    interOpNumThreads: 1,
  });
  return { call: (feeds) => session.run(toOrt(feeds)), close: () => session.release() };
}

export async function run({ quick, rounds }) {
  const models = [
    { name: 'silero', path: SILERO_PATH, feeds: sileroFeeds, n: quick ? 100 : 6000 },
    { name: 'mlp64', path: mlp64Path(), feeds: () => mlpFeeds(), n: quick ? 50 : 1500 },
  ];
  const sections = [];
  const targets = [];
  for (const model of models) {
    const variants = [
      { name: 'in-process, 1 session, intraOp 1', create: () => inProcess(model.path, 1) },
      { name: 'in-process, 1 session, intraOp 2', create: () => inProcess(model.path, 2) },
      {
        name: 'gpu-supervisor, 2 workers',
        create: async () => {
          const lib = await c.oursLibrary({ worker: null, models: { [model.name]: { path: model.path } } });
          return { ...lib, call: (feeds) => lib.supervisor.run({ model: model.name, inputs: feeds }) };
        },
      },
    ];
    // Two in flight: enough to keep two workers (or two intra-op threads) busy.
    const cmp = await compare({
      variants,
      modes: [{ label: model.name, inflight: 4, count: model.n }],
      payload: () => model.feeds(),
      reference: 'in-process, 1 session, intraOp 1',
      rounds,
    });
    sections.push(cmp.markdown);
    const best = Math.max(
      1,
      cmp.ratio('in-process, 1 session, intraOp 2', 'in-process, 1 session, intraOp 1', model.name),
    );
    targets.push({
      label: `${model.name}: 2 workers vs best in-process`,
      value: cmp.ratio('gpu-supervisor, 2 workers', 'in-process, 1 session, intraOp 1', model.name) / best,
      goal: 0.95,
    });
  }
  return { markdown: sections.join('\n\n'), targets };
}
