import { clock, el, mib } from './format.js';

const COLORS = ['#2563eb', '#16a34a', '#dc2626', '#9333ea', '#ea580c', '#0891b2', '#be185d', '#4d7c0f'];
const KEEP_SAMPLES = 600;

/**
 * The memory timeline: one RSS series per worker slot (and one GPU series per slot when the GPU is
 * measured), a vertical mark at each recycle with its reason and freed MiB on hover. Drawn by uPlot.
 */
export class Timeline {
  constructor(container, tip) {
    this.container = container;
    this.tip = tip;
    this.samples = [];
    this.marks = [];
    this.keys = '';
    this.plot = undefined;
    this.markNodes = new Map();
    window.addEventListener('resize', () => this.plot?.setSize(this.size()));
  }

  size() {
    return { width: Math.max(300, this.container.clientWidth), height: 260 };
  }

  addSample(sample) {
    this.samples.push(sample);
    if (this.samples.length > KEEP_SAMPLES) this.samples.splice(0, this.samples.length - KEEP_SAMPLES);
  }

  addMark(mark) {
    this.marks.push(mark);
    if (this.marks.length > 200) this.marks.splice(0, this.marks.length - 200);
  }

  /** Series in a stable order: RSS per slot, then GPU per slot when any GPU reading exists. */
  seriesKeys() {
    const slots = new Set();
    let gpu = false;
    for (const s of this.samples) {
      for (const w of s.workers) {
        slots.add(w.slot);
        if (w.gpuMiB !== null && w.gpuMiB !== undefined) gpu = true;
      }
    }
    const sorted = [...slots].sort((a, b) => a - b);
    return [
      ...sorted.map((slot) => ({ kind: 'rss', slot })),
      ...(gpu ? sorted.map((slot) => ({ kind: 'gpu', slot })) : []),
    ];
  }

  draw() {
    const keys = this.seriesKeys();
    const data = [this.samples.map((s) => s.t / 1000)];
    for (const key of keys) {
      data.push(
        this.samples.map((s) => {
          const w = s.workers.find((x) => x.slot === key.slot);
          const value = key.kind === 'rss' ? w?.rssMiB : w?.gpuMiB;
          return value === undefined ? null : value;
        }),
      );
    }
    const signature = keys.map((k) => `${k.kind}:${k.slot}`).join(',');
    if (!this.plot || signature !== this.keys) this.build(keys, data, signature);
    else this.plot.setData(data);
  }

  build(keys, data, signature) {
    this.plot?.destroy();
    this.markNodes.clear();
    this.keys = signature;
    const series = [
      { label: 'time', value: (_u, v) => (v === null ? '' : clock(v * 1000)) },
      ...keys.map((k) => ({
        label: `${k.kind === 'rss' ? 'RSS' : 'GPU'} slot ${k.slot}`,
        stroke: COLORS[k.slot % COLORS.length],
        width: 1.5,
        dash: k.kind === 'gpu' ? [6, 4] : undefined,
        value: (_u, v) => (v === null ? '–' : `${mib(v)} MiB`),
      })),
    ];
    this.plot = new uPlot(
      {
        ...this.size(),
        series,
        scales: { x: { time: true } },
        axes: [{}, { label: 'MiB', size: 60 }],
        hooks: { draw: [(u) => this.placeMarks(u)] },
      },
      data,
      this.container,
    );
    this.plot.root.dataset.series = String(keys.length);
  }

  placeMarks(u) {
    const [min, max] = [u.scales.x.min, u.scales.x.max];
    const live = new Set(this.marks);
    for (const [mark, node] of this.markNodes) {
      if (!live.has(mark)) {
        node.remove();
        this.markNodes.delete(mark);
      }
    }
    for (const mark of this.marks) {
      let node = this.markNodes.get(mark);
      if (!node) {
        node = el('div', { class: 'recycle-mark', title: describe(mark), 'data-reason': mark.reason });
        node.addEventListener('mouseenter', () => (this.tip.textContent = describe(mark)));
        node.addEventListener('mouseleave', () => (this.tip.textContent = ''));
        u.over.append(node);
        this.markNodes.set(mark, node);
      }
      const x = mark.t / 1000;
      node.hidden = min === null || max === null || x < min || x > max;
      if (!node.hidden) node.style.left = `${u.valToPos(x, 'x')}px`;
    }
  }
}

function describe(mark) {
  const freed =
    mark.freedMiB === undefined || mark.freedMiB === null ? 'unknown' : `${mib(mark.freedMiB)} MiB`;
  const gpu =
    mark.gpuFreedMiB === undefined || mark.gpuFreedMiB === null
      ? ''
      : `, GPU freed ${mib(mark.gpuFreedMiB)} MiB`;
  const pids = `${mark.oldPid} → ${mark.newPid ?? 'none'}`;
  return `${clock(mark.t)} recycle (${mark.reason}): freed ${freed}${gpu}; pid ${pids}`;
}
