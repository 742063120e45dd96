import type { ConnectionOptions } from 'bullmq';
import { ErrorCode, SupervisorError } from '../protocol/errors.js';

/** What callers may pass as a connection: a redis:// or rediss:// URL, or BullMQ's own options. */
export type RedisConnection = string | ConnectionOptions;

/**
 * redis://[user:password@]host[:port][/db] (rediss:// for TLS) -> ioredis options. BullMQ takes
 * options rather than a URL, and adds its own reconnect strategy to them.
 */
export function connectionOptions(connection: RedisConnection): ConnectionOptions {
  if (typeof connection !== 'string') return connection;
  let url: URL;
  try {
    url = new URL(connection);
  } catch {
    throw new SupervisorError(
      ErrorCode.BAD_REQUEST,
      `not a Redis URL: ${JSON.stringify(redact(connection))}`,
    );
  }
  if (url.protocol !== 'redis:' && url.protocol !== 'rediss:') {
    throw new SupervisorError(ErrorCode.BAD_REQUEST, `Redis URL must start redis:// or rediss://`);
  }
  const db = url.pathname.replace(/^\//, '');
  if (db !== '' && !/^\d+$/.test(db)) {
    throw new SupervisorError(ErrorCode.BAD_REQUEST, `Redis URL database must be a number, got ${db}`);
  }
  return {
    host: url.hostname.replace(/^\[|\]$/g, '') || '127.0.0.1',
    port: url.port ? Number(url.port) : 6379,
    ...(url.username ? { username: decodeURIComponent(url.username) } : {}),
    ...(url.password ? { password: decodeURIComponent(url.password) } : {}),
    ...(db ? { db: Number(db) } : {}),
    ...(url.protocol === 'rediss:' ? { tls: {} } : {}),
  };
}

/** The URL without its password, for logs. */
export function redact(connection: RedisConnection): string {
  if (typeof connection !== 'string') return '(connection options)';
  return connection.replace(/\/\/([^:@/]*):[^@/]*@/, '//$1:***@');
}
