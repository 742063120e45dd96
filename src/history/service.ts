import { homedir } from 'node:os';
import { join, resolve } from 'node:path';
import type { SupervisorEvents } from '../events.js';
import { attachHistory } from './recorder.js';
import { buildReport, type HistoryReport } from './report.js';
import { reportText } from './report-text.js';
import type { TaskRow } from './schema.js';
import type { HistoryLog } from './history-log.js';
import { HistoryStore, type HistoryHealth } from './store.js';
import { timelineSvg } from './timeline-svg.js';

export interface HistoryConfig {
  path: string;
  maxAgeDays: number;
  maxRows: number;
  flushMs: number;
}

/**
 * Where history.db goes: 'off' -> nowhere; 'auto' -> $XDG_STATE_HOME/gpu-supervisor/history.db,
 * else ~/.local/state/gpu-supervisor/history.db; anything else is a file path (resolved).
 */
export function resolveHistoryPath(path: string, env: NodeJS.ProcessEnv = process.env): string | undefined {
  if (path === 'off') return undefined;
  if (path !== 'auto') return resolve(path);
  const state =
    env.XDG_STATE_HOME && env.XDG_STATE_HOME.startsWith('/')
      ? env.XDG_STATE_HOME
      : join(homedir(), '.local', 'state');
  return join(state, 'gpu-supervisor', 'history.db');
}

/** The few calls the supervisor's admin commands need: a store, fed by the events, and its report. */
export class HistoryService {
  private readonly detach: () => void;

  private constructor(
    readonly store: HistoryStore,
    events: SupervisorEvents,
  ) {
    this.detach = attachHistory(events, store);
  }

  /** undefined when config.path is 'off'. A database that cannot be opened degrades, never throws. */
  static open(config: HistoryConfig, log: HistoryLog, events: SupervisorEvents): HistoryService | undefined {
    const path = resolveHistoryPath(config.path);
    if (path === undefined) return undefined;
    const store = HistoryStore.open({
      path,
      flushMs: config.flushMs,
      maxAgeDays: config.maxAgeDays,
      maxRows: config.maxRows,
      log,
    });
    return new HistoryService(store, events);
  }

  get path(): string {
    return this.store.path;
  }

  /** Newest first; undefined while the database cannot be read (fall back to the in-memory ring). */
  recentTasks(last?: number): TaskRow[] | undefined {
    return this.store.recentTasks(last);
  }

  /** The admin `report` answer; throws when the database cannot be read. */
  report(options: { svg?: boolean } = {}): { report: HistoryReport; text: string; svg?: string } {
    const report = buildReport(this.store);
    if (!report) {
      const e = this.store.health().lastError;
      throw new Error(`history database unavailable (${e?.code ?? 'unknown'}: ${e?.message ?? ''})`);
    }
    const text = reportText(report);
    if (!options.svg) return { report, text };
    return { report, text, svg: timelineSvg(this.store.memoryEvents() ?? []) };
  }

  /** Rows removed (tasks + memory events). Throws when the database cannot be written. */
  clear(): number {
    return this.store.clear();
  }

  health(): HistoryHealth {
    return this.store.health();
  }

  /** Stops listening, writes what is buffered, closes the database. */
  close(): void {
    this.detach();
    this.store.close();
  }
}
