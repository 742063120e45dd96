// 2. 1 MiB Float32Array in and out, 2 workers: V8 serialization, transfer lists, and our paths.
import * as c from '../lib/contenders.mjs';
import { compare } from '../lib/compare.mjs';

export const title = '1 MiB Float32Array echo, 2 workers';

const ELEMENTS = (1024 * 1024) / 4;

export async function run({ quick, rounds }) {
  const n = quick ? 40 : 1500;
  const variants = [
    { name: "raw fork ('advanced')", create: () => c.rawFork({ serialization: 'advanced' }) },
    { name: 'gpu-supervisor library', create: () => c.oursLibrary() },
    { name: 'gpu-supervisor daemon', create: () => c.oursDaemon() },
    { name: 'gpu-supervisor socket client', create: () => c.oursSocket() },
    { name: 'gpu-supervisor library, thread backend', create: () => c.oursLibrary({ backend: 'thread' }) },
    { name: 'piscina 5 (structured clone)', create: () => c.piscina() },
    { name: 'piscina 5 (transferList)', create: () => c.piscina({ transfer: true }) },
    { name: "tinypool 2 ('advanced')", create: () => c.tinypool({ serialization: 'advanced' }) },
    { name: "workerpool ('advanced')", create: () => c.workerpoolProcess({ serialization: 'advanced' }) },
  ];
  const cmp = await compare({
    variants,
    modes: [{ label: 'saturated', inflight: 8, count: n }],
    // A fresh array per call: transfer lists detach the caller's buffer.
    payload: (i) => new Float32Array(ELEMENTS).fill(i),
    check: (value, i) => {
      if (!(value instanceof Float32Array) || value.length !== ELEMENTS || value[ELEMENTS - 1] !== i) {
        throw new Error(`wrong answer for ${i}: ${Object.prototype.toString.call(value)}`);
      }
    },
    reference: "raw fork ('advanced')",
    rounds,
  });
  const targets = [
    {
      label: 'library vs raw fork advanced',
      value: cmp.ratio('gpu-supervisor library', "raw fork ('advanced')", 'saturated'),
      goal: 2,
    },
    {
      label: 'library vs piscina transferList (how close; no goal set)',
      value: cmp.ratio('gpu-supervisor library', 'piscina 5 (transferList)', 'saturated'),
      goal: 0,
    },
  ];
  return { markdown: cmp.markdown, targets };
}
