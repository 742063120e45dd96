import { createRequire } from 'node:module';

/**
 * The slice of better-sqlite3 the history store uses, typed here because the package ships no
 * types (and @types/better-sqlite3 is not a dependency). Loaded through createRequire: it is CommonJS.
 */
export interface Statement<Params extends unknown[] = unknown[]> {
  run(...params: Params): { changes: number; lastInsertRowid: number | bigint };
  get(...params: Params): unknown;
  all(...params: Params): unknown[];
  iterate(...params: Params): IterableIterator<unknown>;
}

export interface Database {
  readonly open: boolean;
  prepare<Params extends unknown[] = unknown[]>(sql: string): Statement<Params>;
  exec(sql: string): Database;
  pragma(source: string, options?: { simple?: boolean }): unknown;
  transaction<Args extends unknown[], R>(fn: (...args: Args) => R): (...args: Args) => R;
  close(): Database;
}

interface DatabaseOptions {
  readonly?: boolean;
  fileMustExist?: boolean;
  /** Milliseconds a statement waits on a lock before SQLITE_BUSY. */
  timeout?: number;
}

type DatabaseConstructor = new (path: string, options?: DatabaseOptions) => Database;

const require = createRequire(import.meta.url);

export function openDatabase(path: string, options: DatabaseOptions = {}): Database {
  const Ctor = require('better-sqlite3') as DatabaseConstructor;
  return new Ctor(path, options);
}

/** better-sqlite3's SqliteError carries SQLite's code (SQLITE_BUSY, ...); fs errors carry errno names. */
export function errorCode(error: unknown): string {
  const code = (error as { code?: unknown } | null)?.code;
  return typeof code === 'string' ? code : 'UNKNOWN';
}
