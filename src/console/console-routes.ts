import type { IncomingMessage, ServerResponse } from 'node:http';
import type { SupervisorConfig } from '../config/schema.js';
import type { Logger } from '../logging/logger.js';
import { ErrorCode, SupervisorError } from '../protocol/errors.js';
import type { Supervisor } from '../service/facade.js';
import { ConsoleAuth, forgeryRisk, sessionIdOf, type Access, type BearerVerdict } from './console-auth.js';
import { ConsoleFeed, type ReadinessOf } from './console-feed.js';
import { consoleInfo } from './console-info.js';
import { EventStreamHub, frameOf, writeJson } from './event-stream.js';
import { SECURITY_HEADERS } from './security-headers.js';
import { SessionStore } from './sessions.js';
import { consoleAssets } from './static-assets.js';

export interface ConsoleOptions {
  supervisor: Supervisor;
  config: SupervisorConfig;
  log: Logger;
  readinessOf: ReadinessOf;
  degradedReason: () => string | undefined;
  checkBearer: (header: string | undefined, token: string) => BearerVerdict;
  /** How long a sign-in lasts (default 12 h). */
  sessionTtlMs?: number;
  /** Unread bytes after which a console stream is cut (default 1 MiB). */
  maxBufferedBytes?: number;
  snapshotMs?: number;
}

const LOGIN_BODY_LIMIT = 4096;
const HISTORY_ROWS = 20;

/**
 * The admin console on the HTTP front: the page and its files, sign-in, the live event stream and
 * the history views. Actions go through the front's POST /admin/<command> like any other client.
 */
export class ConsoleRoutes {
  readonly auth: ConsoleAuth;
  private readonly hub: EventStreamHub;
  private readonly feed: ConsoleFeed;

  constructor(private readonly o: ConsoleOptions) {
    const sessions = new SessionStore(o.sessionTtlMs ?? 12 * 3600_000);
    this.auth = new ConsoleAuth(
      o.config.adminToken,
      o.config.http.consolePublic === true,
      sessions,
      o.checkBearer,
    );
    this.hub = new EventStreamHub({
      maxClients: o.config.maxClients,
      maxBufferedBytes: o.maxBufferedBytes ?? 1024 * 1024,
      onDrop: (why) => o.log.warn({ why }, 'console stream dropped: client too slow'),
    });
    this.feed = new ConsoleFeed(o.supervisor, this.hub, o.readinessOf, o.degradedReason, {
      ...(o.snapshotMs === undefined ? {} : { snapshotMs: o.snapshotMs }),
    });
  }

  /** Open console streams (for tests and the log). */
  get streams(): number {
    return this.hub.size;
  }

  /**
   * Why a POST /admin/<command> carried by the console's cookie is refused, or undefined when it is
   * allowed (or carries no session: the front's bearer check then decides).
   */
  sessionAdmin(req: IncomingMessage): { signedIn: boolean; refused?: string } {
    if (!this.auth.tokenConfigured || this.auth.signedInBy(req) !== 'session') return { signedIn: false };
    const risk = forgeryRisk(req);
    return risk === undefined ? { signedIn: true } : { signedIn: true, refused: risk };
  }

  /** Answers the request when it is the console's; false leaves it to the front's other routes. */
  async handle(req: IncomingMessage, res: ServerResponse, path: string): Promise<boolean> {
    const method = req.method ?? 'GET';
    const get = method === 'GET' || method === 'HEAD';
    const asset = consoleAssets().get(path);
    if (asset && get) {
      const headers = { ...SECURITY_HEADERS, etag: asset.etag, 'cache-control': 'no-cache' };
      if (req.headers['if-none-match'] === asset.etag) res.writeHead(304, headers).end();
      else
        res
          .writeHead(200, { ...headers, 'content-type': asset.type })
          .end(method === 'HEAD' ? undefined : asset.body);
      return true;
    }
    switch (path) {
      case '/login':
        return this.only(method, 'POST', res) || this.login(req, res).then(() => true);
      case '/logout':
        return this.only(method, 'POST', res) || this.logout(req, res);
      case '/events':
        return this.only(method, 'GET', res) || this.events(req, res).then(() => true);
      case '/console/api/session':
        return this.only(method, 'GET', res) || this.session(req, res);
      case '/console/api/history':
      case '/console/api/report':
      case '/console/api/report.svg':
        return this.only(method, 'GET', res) || this.history(req, res, path).then(() => true);
      default:
        return false;
    }
  }

  close(): void {
    this.feed.close();
    this.hub.close();
  }

  /** Answers 405 and returns true when the method is not the one the route takes. */
  private only(method: string, allowed: 'GET' | 'POST', res: ServerResponse): boolean {
    if (method === allowed || (allowed === 'GET' && method === 'HEAD')) return false;
    sendError(res, 405, ErrorCode.BAD_REQUEST, `method not allowed; use ${allowed}`, { allow: allowed });
    return true;
  }

  private session(req: IncomingMessage, res: ServerResponse): true {
    const access = this.auth.access(req);
    sendJson(res, 200, {
      tokenConfigured: this.auth.tokenConfigured,
      public: this.auth.public,
      signedIn: access === 'admin',
      access,
    });
    return true;
  }

  private async login(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const risk = forgeryRisk(req);
    if (risk !== undefined) return sendError(res, 403, ErrorCode.UNAUTHORIZED, risk);
    if (!this.auth.tokenConfigured) {
      return sendError(res, 403, ErrorCode.UNAUTHORIZED, NO_TOKEN_MESSAGE);
    }
    const body = await readSmallJson(req, LOGIN_BODY_LIMIT);
    const token = typeof body?.token === 'string' ? body.token : '';
    if (!this.auth.tokenMatches(token)) {
      // The typed value is never logged: a wrong token may be a right one for something else.
      this.o.log.warn({ remote: req.socket.remoteAddress }, 'console sign-in refused: wrong token');
      return sendError(res, 401, ErrorCode.UNAUTHORIZED, 'wrong admin token');
    }
    const id = this.auth.sessions.create();
    this.o.log.info({ remote: req.socket.remoteAddress }, 'console sign-in');
    res.writeHead(204, { ...SECURITY_HEADERS, 'set-cookie': this.auth.sessionCookie(id) }).end();
  }

  private logout(req: IncomingMessage, res: ServerResponse): true {
    const risk = forgeryRisk(req);
    if (risk !== undefined) {
      sendError(res, 403, ErrorCode.UNAUTHORIZED, risk);
      return true;
    }
    this.auth.sessions.revoke(sessionIdOf(req));
    res.writeHead(204, { ...SECURITY_HEADERS, 'set-cookie': this.auth.clearedCookie() }).end();
    return true;
  }

  /** Refuses a reader without access; true when it may go on. */
  private mayRead(req: IncomingMessage, res: ServerResponse): Access | undefined {
    const access = this.auth.access(req);
    if (access !== 'none') return access;
    if (!this.auth.tokenConfigured) sendError(res, 403, ErrorCode.UNAUTHORIZED, NO_TOKEN_MESSAGE);
    else sendError(res, 401, ErrorCode.UNAUTHORIZED, 'sign in first (or set http.consolePublic)');
    return undefined;
  }

  private async events(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const access = this.mayRead(req, res);
    if (access === undefined) return;
    if (req.method === 'HEAD') {
      // The stream's headers and nothing more: a HEAD never holds one of the hub's places.
      res.writeHead(200, { ...SECURITY_HEADERS, 'content-type': 'text/event-stream; charset=utf-8' });
      res.end();
      return;
    }
    if (this.hub.full) {
      return sendError(
        res,
        503,
        ErrorCode.BAD_REQUEST,
        `too many console streams (maxClients ${this.o.config.maxClients})`,
      );
    }
    const opening = await this.feed.opening();
    if (res.destroyed) return;
    const info = consoleInfo(this.o.config, opening.snapshot.supervisor.uptimeMs);
    const first = frameOf('hello', { ...opening, info, access });
    // Read by a sign-in: the stream lasts as long as the sign-in does (sign-out, expiry).
    const allowed = access === 'admin' ? () => this.auth.access(req) !== 'none' : undefined;
    if (!this.hub.add(res, { ...SECURITY_HEADERS }, first, allowed)) {
      sendError(
        res,
        503,
        ErrorCode.BAD_REQUEST,
        `too many console streams (maxClients ${this.o.config.maxClients})`,
      );
    }
  }

  private async history(req: IncomingMessage, res: ServerResponse, path: string): Promise<void> {
    if (this.mayRead(req, res) === undefined) return;
    const { supervisor } = this.o;
    if (path === '/console/api/history') {
      return sendJson(res, 200, await supervisor.admin('history', { last: HISTORY_ROWS }));
    }
    try {
      const report = (await supervisor.admin('report', { svg: path.endsWith('.svg') })) as {
        report: unknown;
        text: string;
        svg?: string;
      };
      if (path.endsWith('.svg')) {
        res.writeHead(200, {
          ...SECURITY_HEADERS,
          'content-type': 'image/svg+xml',
          'cache-control': 'no-store',
        });
        res.end(report.svg ?? '');
        return;
      }
      sendJson(res, 200, { available: true, text: report.text, report: report.report });
    } catch (error) {
      // No history store (history.path off): the page says so instead of showing an error.
      if (error instanceof SupervisorError && error.code === ErrorCode.BAD_REQUEST) {
        if (path.endsWith('.svg')) return sendError(res, 404, ErrorCode.BAD_REQUEST, error.message);
        return sendJson(res, 200, { available: false, reason: error.message });
      }
      throw error;
    }
  }
}

export const NO_TOKEN_MESSAGE =
  'the console needs an admin token: start the supervisor with GPU_SUPERVISOR_ADMIN_TOKEN set (or adminTokenFile)';

function sendJson(
  res: ServerResponse,
  status: number,
  body: unknown,
  headers: Record<string, string> = {},
): void {
  writeJson(res, status, body, { ...SECURITY_HEADERS, ...headers, 'cache-control': 'no-store' });
}

function sendError(
  res: ServerResponse,
  status: number,
  code: ErrorCode,
  message: string,
  headers: Record<string, string> = {},
): void {
  sendJson(res, status, { error: { code, message } }, headers);
}

/** A sign-in body: a small JSON object, or undefined for anything else (answered as a wrong token). */
async function readSmallJson(
  req: IncomingMessage,
  limit: number,
): Promise<Record<string, unknown> | undefined> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > limit) return undefined;
    chunks.push(chunk);
  }
  try {
    const value: unknown = JSON.parse(Buffer.concat(chunks).toString('utf8'));
    return typeof value === 'object' && value !== null && !Array.isArray(value)
      ? (value as Record<string, unknown>)
      : undefined;
  } catch {
    return undefined;
  }
}
