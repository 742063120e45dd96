import { writeFileSync } from 'node:fs';
import { cleanupFiguresOf, formatAdminCleanup } from '../service/admin-cleanup.js';
import type { SupervisorStats } from '../service/facade.js';
import { positiveInt, UsageError, withClient, type CliContext } from './context.js';
import { duration, mib, table } from './format.js';

/** stats, recycle, clear-cache, clear-history, history, report: one admin command each. */

export const ADMIN_OPTIONS = {
  worker: { type: 'string' },
  last: { type: 'string' },
  svg: { type: 'string' },
  model: { type: 'string' },
  mode: { type: 'string' },
} as const;

type AdminFlags = { worker?: string; last?: string; svg?: string; model?: string; mode?: string };

export async function stats(context: CliContext): Promise<void> {
  const s = await withClient(context, (client) => client.stats());
  if (context.json) return context.out(JSON.stringify(s, null, 2));
  context.out(formatStats(s));
}

export function formatStats(s: SupervisorStats): string {
  const { supervisor: sup, queue, totals } = s;
  const lines = [
    table(
      [
        'SUPERVISOR',
        'RSS',
        'HEAP',
        'UPTIME',
        'QUEUED',
        'RUNNING',
        'TASKS',
        'OK',
        'FAILED',
        'RECYCLES',
        'FREED',
      ],
      [
        [
          sup.pid,
          mib(sup.rssMiB),
          mib(sup.heapUsedMiB),
          duration(sup.uptimeMs),
          queue.size,
          queue.pending,
          totals.tasks,
          totals.ok,
          totals.failed,
          totals.recycles,
          mib(totals.freedMiB),
        ],
      ],
    ),
    '',
    table(
      ['WORKER', 'SLOT', 'STATE', 'HOLDS', 'TASKS', 'RSS', 'GPU', 'GPU MEM', 'UPTIME', 'START'],
      s.workers.map((w) => [
        w.pid,
        w.slot,
        w.state,
        w.inFlight,
        w.tasksDone,
        mib(w.rssMiB),
        w.gpu,
        mib(w.gpuMiB),
        duration(w.uptimeMs),
        startOf(w.start),
      ]),
    ),
    '',
  ];
  const devices = s.gpu?.devices ?? [];
  if (devices.length === 0) lines.push('GPUs: none measured');
  else
    lines.push(
      table(
        ['GPU', 'NAME', 'USED', 'TOTAL', 'UTIL %'],
        devices.map((d) => [d.index, d.name, mib(d.usedMiB), mib(d.totalMiB), d.utilization]),
      ),
    );
  return lines.join('\n');
}

/** A worker's last start, fork to ready, and how its session cache served it ("312 ms (cache hit)"). */
function startOf(start: SupervisorStats['workers'][number]['start'] | undefined): string {
  if (!start) return '-';
  const caches = [...new Set((start.sessions ?? []).map((s) => s.cache))].filter((c) => c !== 'off');
  return `${Math.round(start.totalMs)} ms${caches.length ? ` (cache ${caches.join('/')})` : ''}`;
}

/** recycle and clear-cache: every worker one at a time, or just --worker PID. */
export async function recycle(
  context: CliContext,
  command: 'recycle' | 'clear-cache',
  flags: AdminFlags,
  extra: Record<string, unknown> = {},
): Promise<void> {
  const pid = positiveInt('--worker', flags.worker);
  const args = { ...(pid === undefined ? {} : { pid }), ...extra };
  const value = (await withClient(context, (client) =>
    client.admin(command, Object.keys(args).length === 0 ? undefined : args),
  )) as { recycled: number[]; workers?: Array<{ oldPid: number }> };
  if (context.json) return context.out(JSON.stringify(value));
  if (extra.mode === 'light') {
    const pids = (value.workers ?? []).map((w) => w.oldPid);
    context.out(
      pids.length
        ? `released ${String(extra.model)} in place on workers ${pids.join(', ')}`
        : `no worker holds ${String(extra.model)}`,
    );
  } else
    context.out(
      value.recycled.length ? `recycled workers ${value.recycled.join(', ')}` : 'no worker recycled',
    );
  printFreed(context, value);
}

/** clear-cache [--worker PID] [--model NAME [--mode light]]. */
export function clearCache(context: CliContext, flags: AdminFlags): Promise<void> {
  if (flags.model === '') throw new UsageError('--model needs a model name');
  if (flags.mode !== undefined && flags.mode !== 'light' && flags.mode !== 'recycle')
    throw new UsageError('--mode is light or recycle');
  if (flags.mode === 'light' && flags.model === undefined)
    throw new UsageError('--mode light needs --model NAME');
  const extra = {
    ...(flags.model === undefined ? {} : { model: flags.model }),
    ...(flags.mode === undefined ? {} : { mode: flags.mode }),
  };
  return recycle(context, 'clear-cache', flags, extra);
}

/** The seed's one line, "RAM: x -> y (freed ~z); GPU: ...", when the daemon's answer carries it. */
function printFreed(context: CliContext, answer: unknown): void {
  const figures = cleanupFiguresOf(answer);
  if (figures) context.out(formatAdminCleanup(figures));
}

export async function clearHistory(context: CliContext): Promise<void> {
  const value = (await withClient(context, (client) => client.admin('clear-history'))) as {
    removed: unknown;
    recycled: number[];
  };
  if (context.json) return context.out(JSON.stringify(value));
  const removed = typeof value.removed === 'number' ? value.removed : JSON.stringify(value.removed);
  context.out(
    `removed ${removed} history records; recycled workers ${value.recycled.join(', ') || '(none)'}`,
  );
  printFreed(context, value);
}

interface TaskRow {
  id: string;
  model?: string;
  workerPid?: number;
  ok: boolean;
  code?: string;
  queueMs: number;
  runMs?: number;
  at: number;
}

export async function history(context: CliContext, flags: AdminFlags): Promise<void> {
  const last = positiveInt('--last', flags.last);
  const value = (await withClient(context, (client) =>
    client.admin('history', last === undefined ? undefined : { last }),
  )) as { tasks: TaskRow[] };
  if (context.json) return context.out(JSON.stringify(value, null, 2));
  if (value.tasks.length === 0) return context.out('no tasks recorded');
  context.out(
    table(
      ['AT', 'ID', 'MODEL', 'WORKER', 'RESULT', 'QUEUE MS', 'RUN MS'],
      value.tasks.map((t) => [
        new Date(t.at).toISOString(),
        t.id,
        t.model,
        t.workerPid,
        t.ok ? 'ok' : t.code,
        t.queueMs,
        t.runMs,
      ]),
    ),
  );
}

export async function report(context: CliContext, flags: AdminFlags): Promise<void> {
  if (flags.svg === '') throw new UsageError('--svg needs a file name');
  const value = (await withClient(context, (client) =>
    client.admin('report', flags.svg === undefined ? undefined : { svg: true }),
  )) as { report: unknown; text: string; svg?: string };
  if (flags.svg !== undefined) {
    if (typeof value.svg !== 'string') throw new Error('the supervisor returned no SVG');
    writeFileSync(flags.svg, value.svg);
  }
  if (context.json) return context.out(JSON.stringify(value.report, null, 2));
  context.out(value.text);
  if (flags.svg !== undefined) context.out(`memory timeline written to ${flags.svg}`);
}
