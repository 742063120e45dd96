import type { MemoryEventRow } from './schema.js';
import { extent } from './stats.js';

/**
 * The memory timeline: one line per worker (RSS after each cleanup; GPU dashed when measured),
 * coloured by pool slot, and a vertical mark at each recycle with its reason. A leaking worker
 * recycled at a ceiling draws a sawtooth. Pure: rows in, an SVG string out.
 */
export interface TimelineOptions {
  width?: number;
  height?: number;
  title?: string;
}

interface Point {
  t: number;
  v: number;
}

const PALETTE = ['#1f77b4', '#d62728', '#2ca02c', '#9467bd', '#ff7f0e', '#17becf', '#8c564b', '#e377c2'];
const M = { left: 64, right: 190, top: 48, bottom: 44 };

export function timelineSvg(events: readonly MemoryEventRow[], options: TimelineOptions = {}): string {
  const width = options.width ?? 960;
  const height = options.height ?? 420;
  const title = options.title ?? 'Worker memory over time';
  const plotW = width - M.left - M.right;
  const plotH = height - M.top - M.bottom;
  const head = `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="sans-serif" font-size="11">
<rect width="100%" height="100%" fill="#fff"/>
<text x="${M.left}" y="20" font-size="15" font-weight="bold">${esc(title)}</text>`;

  const rss = new Map<number, Point[]>();
  const gpu = new Map<number, Point[]>();
  const slotOf = new Map<number, number>();
  const push = (m: Map<number, Point[]>, pid: number, t: number, v: number | undefined): void => {
    if (v === undefined) return;
    const list = m.get(pid) ?? [];
    list.push({ t, v });
    m.set(pid, list);
  };
  for (const e of events) {
    if (e.slot !== undefined) slotOf.set(e.pid, e.slot);
    if (e.kind === 'recycle') {
      // The old worker's last reading closes its line; the replacement's baseline opens the next.
      push(rss, e.pid, e.at, e.rssBeforeMiB);
      push(gpu, e.pid, e.at, e.gpuBeforeMiB);
      if (e.newPid !== undefined) {
        if (e.slot !== undefined && !slotOf.has(e.newPid)) slotOf.set(e.newPid, e.slot);
        push(gpu, e.newPid, e.at, e.gpuAfterMiB);
      }
    } else {
      push(rss, e.pid, e.at, e.rssAfterMiB);
      push(gpu, e.pid, e.at, e.gpuAfterMiB);
    }
  }
  const recycles = events.filter((e) => e.kind === 'recycle');
  const all = [...rss.values(), ...gpu.values()].flat();
  if (all.length === 0) {
    return `${head}\n<text x="${width / 2}" y="${height / 2}" text-anchor="middle" fill="#666">no memory events recorded</text>\n</svg>\n`;
  }

  const [t0, tEnd] = extent([...all.map((p) => p.t), ...recycles.map((e) => e.at)])!;
  const t1 = Math.max(tEnd, t0 + 1000);
  const [vLo, vHi] = extent(all.map((p) => p.v))!;
  const [yLo, yHi, yStep] = niceRange(vLo, vHi);
  const x = (t: number): number => M.left + ((t - t0) / (t1 - t0)) * plotW;
  const y = (v: number): number => M.top + plotH - ((v - yLo) / (yHi - yLo)) * plotH;
  const color = (pid: number): string => {
    const slot = slotOf.get(pid);
    return slot === undefined ? '#777' : PALETTE[slot % PALETTE.length]!;
  };

  const out: string[] = [head];
  out.push(`<g class="axes" stroke="#ccc">`);
  for (let v = yLo; v <= yHi + yStep / 2; v += yStep) {
    out.push(`<line x1="${M.left}" x2="${M.left + plotW}" y1="${f(y(v))}" y2="${f(y(v))}" stroke="#eee"/>`);
    out.push(
      `<text x="${M.left - 6}" y="${f(y(v) + 4)}" text-anchor="end" stroke="none" fill="#333">${trim(v)}</text>`,
    );
  }
  const tStep = timeStep(t1 - t0);
  for (let i = 0, dt = 0; dt <= t1 - t0; dt = ++i * tStep) {
    const px = f(x(t0 + dt));
    out.push(`<line x1="${px}" x2="${px}" y1="${M.top + plotH}" y2="${M.top + plotH + 5}" stroke="#333"/>`);
    out.push(
      `<text x="${px}" y="${M.top + plotH + 18}" text-anchor="middle" stroke="none" fill="#333">${elapsed(dt)}</text>`,
    );
  }
  out.push(`<rect x="${M.left}" y="${M.top}" width="${plotW}" height="${plotH}" fill="none" stroke="#999"/>`);
  out.push(`</g>`);
  out.push(
    `<text x="16" y="${M.top + plotH / 2}" transform="rotate(-90 16 ${M.top + plotH / 2})" text-anchor="middle">MiB</text>`,
  );
  out.push(
    `<text x="${M.left + plotW / 2}" y="${height - 6}" text-anchor="middle">time since ${esc(new Date(t0).toISOString())}</text>`,
  );

  let lastLabel = -Infinity;
  out.push(`<g class="recycles">`);
  for (const e of recycles) {
    const xe = x(e.at);
    const px = f(xe);
    const label = `${e.reason ?? '?'}`;
    out.push(
      `<line class="recycle-mark" data-reason="${esc(label)}" x1="${px}" x2="${px}" y1="${M.top}" y2="${M.top + plotH}" stroke="${color(e.pid)}" stroke-opacity="0.75" stroke-width="1" stroke-dasharray="3 3"><title>recycle ${esc(label)}: ${esc(e.detail ?? '')} (pid ${e.pid} -> ${e.newPid ?? '?'}, freed ${e.rssFreedMiB ?? '?'} MiB)</title></line>`,
    );
    if (xe - lastLabel >= 34) {
      out.push(
        `<text x="${px}" y="${M.top - 4}" text-anchor="middle" font-size="10" fill="#555">${esc(label)}</text>`,
      );
      lastLabel = xe;
    }
  }
  out.push(`</g>`);

  const series = (m: Map<number, Point[]>, cls: string, dash: string): void => {
    for (const [pid, points] of m) {
      const coords = decimate(points, x).map((p) => `${f(x(p.t))},${f(y(p.v))}`);
      if (coords.length === 1) coords.push(coords[0]!); // a lone reading still shows as a dot
      out.push(
        `<polyline class="${cls}" data-pid="${pid}" data-slot="${slotOf.get(pid) ?? ''}" points="${coords.join(' ')}" fill="none" stroke="${color(pid)}" stroke-width="1.8" stroke-linejoin="round" stroke-linecap="round"${dash}/>`,
      );
    }
  };
  series(rss, 'rss', '');
  series(gpu, 'gpu', ' stroke-dasharray="6 3"');

  out.push(legend(slotOf, rss, gpu.size > 0, M.left + plotW + 16, M.top));
  out.push('</svg>\n');
  return out.join('\n');
}

function legend(
  slotOf: Map<number, number>,
  rss: Map<number, Point[]>,
  hasGpu: boolean,
  lx: number,
  ly: number,
): string {
  const workersBySlot = new Map<number | undefined, number>();
  for (const pid of rss.keys())
    workersBySlot.set(slotOf.get(pid), (workersBySlot.get(slotOf.get(pid)) ?? 0) + 1);
  const rows: string[] = [`<g class="legend">`];
  let yy = ly + 6;
  for (const [slot, n] of [...workersBySlot].sort((a, b) => (a[0] ?? -1) - (b[0] ?? -1))) {
    const c = slot === undefined ? '#777' : PALETTE[slot % PALETTE.length]!;
    rows.push(`<line x1="${lx}" x2="${lx + 22}" y1="${yy}" y2="${yy}" stroke="${c}" stroke-width="2.5"/>`);
    rows.push(
      `<text x="${lx + 28}" y="${yy + 4}">slot ${slot ?? '?'} (${n} worker${n === 1 ? '' : 's'})</text>`,
    );
    yy += 18;
  }
  yy += 6;
  rows.push(`<line x1="${lx}" x2="${lx + 22}" y1="${yy}" y2="${yy}" stroke="#333" stroke-width="1.8"/>`);
  rows.push(`<text x="${lx + 28}" y="${yy + 4}">RSS after cleanup</text>`);
  if (hasGpu) {
    yy += 18;
    rows.push(
      `<line x1="${lx}" x2="${lx + 22}" y1="${yy}" y2="${yy}" stroke="#333" stroke-width="1.8" stroke-dasharray="6 3"/>`,
    );
    rows.push(`<text x="${lx + 28}" y="${yy + 4}">GPU memory</text>`);
  }
  yy += 18;
  rows.push(
    `<line x1="${lx + 11}" x2="${lx + 11}" y1="${yy - 8}" y2="${yy + 8}" stroke="#555" stroke-dasharray="3 3"/>`,
  );
  rows.push(`<text x="${lx + 28}" y="${yy + 4}">recycle (reason above)</text>`);
  rows.push('</g>');
  return rows.join('\n');
}

/** Keeps the first, lowest, highest and last reading per pixel column, so peaks survive thinning. */
function decimate(points: Point[], x: (t: number) => number): Point[] {
  if (points.length < 2000) return points;
  const out: Point[] = [];
  let bucket: Point[] = [];
  let col = Math.floor(x(points[0]!.t));
  const emit = (): void => {
    if (!bucket.length) return;
    const lo = bucket.reduce((a, b) => (b.v < a.v ? b : a));
    const hi = bucket.reduce((a, b) => (b.v > a.v ? b : a));
    const keep = new Set([bucket[0]!, lo, hi, bucket.at(-1)!]);
    out.push(...bucket.filter((p) => keep.has(p)));
    bucket = [];
  };
  for (const p of points) {
    const c = Math.floor(x(p.t));
    if (c !== col) {
      emit();
      col = c;
    }
    bucket.push(p);
  }
  emit();
  return out;
}

/** Axis bounds and step on 1/2/5 x 10^k, a little room above and below the data. */
function niceRange(min: number, max: number): [number, number, number] {
  const pad = Math.max((max - min) * 0.08, 1);
  const raw = (max - min + 2 * pad) / 6;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 5, 10].map((k) => k * mag).find((s) => s >= raw)!;
  const lo = Math.max(0, Math.floor((min - pad) / step) * step);
  return [lo, Math.ceil((max + pad) / step) * step, step];
}

const STEPS_MS = [
  0.1, 0.2, 0.5, 1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400,
  172800, 604800,
].map((s) => s * 1000);

function timeStep(spanMs: number): number {
  return STEPS_MS.find((s) => spanMs / s <= 8) ?? spanMs / 8;
}

function elapsed(ms: number): string {
  if (ms < 10_000) return `${trim(ms / 1000)} s`;
  const s = Math.round(ms / 1000);
  if (s < 120) return `${s} s`;
  if (s < 3600) return `${trim(s / 60)} min`;
  if (s < 172800) return `${trim(s / 3600)} h`;
  return `${trim(s / 86400)} d`;
}

function f(n: number): string {
  return n.toFixed(1);
}

function trim(n: number): string {
  return String(Math.round(n * 100) / 100);
}

function esc(s: string): string {
  return s.replace(/[<>&"']/g, (c) => `&#${c.charCodeAt(0)};`);
}
