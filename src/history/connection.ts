import { mkdirSync, statSync } from 'node:fs';
import { dirname } from 'node:path';
import {
  INSERT_EVENT,
  INSERT_TASK,
  SELECT_EVENTS,
  SELECT_TASKS,
  eventParams,
  migrate,
  taskParams,
} from './schema.js';
import { openDatabase, type Database, type Statement } from './sqlite.js';
import type { Pending } from './write-buffer.js';

/** An open, migrated database with the statements the store runs on every flush and read. */
export interface Connection {
  db: Database;
  path: string;
  /** The file it opened: SQLite goes on writing to it, unlinked, if the path is removed or replaced. */
  file: { dev: number; ino: number };
  insertAll: (items: Pending[]) => void;
  recentTasks: Statement<[number]>;
  events: Statement<[number]>;
}

/** Opens (creating the directory and schema as needed) or throws; a half-set-up connection is closed. */
export function openConnection(path: string, busyTimeoutMs: number): Connection {
  let db: Database | undefined;
  try {
    mkdirSync(dirname(path), { recursive: true });
    db = openDatabase(path, { timeout: busyTimeoutMs });
    db.pragma('journal_mode = WAL');
    db.pragma('synchronous = NORMAL');
    migrate(db);
    const insertTask = db.prepare(INSERT_TASK);
    const insertEvent = db.prepare(INSERT_EVENT);
    const insertAll = db.transaction((items: Pending[]) => {
      for (const item of items) {
        if (item.table === 'tasks') insertTask.run(...taskParams(item.row));
        else insertEvent.run(...eventParams(item.row));
      }
    });
    const { dev, ino } = statSync(path);
    return {
      db,
      path,
      file: { dev, ino },
      insertAll,
      recentTasks: db.prepare<[number]>(SELECT_TASKS),
      events: db.prepare<[number]>(SELECT_EVENTS),
    };
  } catch (error) {
    try {
      db?.close();
    } catch {
      // closing a connection that failed to set up: nothing more to learn
    }
    throw error;
  }
}

export function closeConnection(connection: Connection | undefined): void {
  try {
    connection?.db.close();
  } catch {
    // already unusable; the next connect() starts over
  }
}

/** The connection's file is still the one at its path (not deleted, not replaced by another). */
export function stillInPlace(connection: Connection): boolean {
  const now = statSync(connection.path, { throwIfNoEntry: false });
  return now !== undefined && now.dev === connection.file.dev && now.ino === connection.file.ino;
}
