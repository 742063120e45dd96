import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { ConsoleRoutes } from '../console/console-routes.js';
import { writeJson } from '../console/event-stream.js';
import type { Logger } from '../logging/logger.js';
import { tryListen } from '../net/try-listen.js';
import { ErrorCode } from '../protocol/errors.js';
import type { Supervisor } from '../service/facade.js';
import type { Front, FrontContext } from '../transport/front.js';
import { liveness, ReadinessCheck } from './health.js';
import { checkBearer, HttpError, httpErrorOf, isHttpAdminCommand, readArgs } from './http-admin.js';
import { createMetrics, type MetricsOptions, type SupervisorMetrics } from './registry.js';

export interface HttpFront extends Front {
  readonly host: string;
  /** The bound port: the configured one, or the one the OS picked for `http.port: 0`. */
  readonly port: number;
  readonly url: string;
  readonly metrics: SupervisorMetrics;
}

export interface HttpFrontOptions extends MetricsOptions {
  /** Largest request body accepted (admin arguments), bytes. */
  maxBodyBytes?: number;
  /** How long close() lets requests in progress finish before cutting their connections. */
  closeGraceMs?: number;
}

const DEFAULTS = { maxBodyBytes: 1024 * 1024, closeGraceMs: 5_000, processMetrics: true };
const GET_ROUTES = new Set(['/metrics', '/healthz', '/readyz']);

/**
 * The metrics and health HTTP front: /metrics (Prometheus text), /healthz, /readyz, and POST
 * /admin/<command> behind the bearer token. Off unless `http.port` is set. Unlike the 0600 socket,
 * any local user can reach a TCP port, so admin answers 403 when no admin token is configured.
 */
export async function startHttpFront(
  context: FrontContext,
  options: HttpFrontOptions = {},
): Promise<HttpFront | undefined> {
  const { supervisor, config, log: parentLog } = context;
  const { port, host } = config.http;
  if (port === null) return undefined;
  const opts = { ...DEFAULTS, ...options };
  const log = parentLog.child({ front: 'http' });
  const metrics = createMetrics(supervisor, { processMetrics: opts.processMetrics });
  const readiness = new ReadinessCheck(supervisor, metrics);
  const consoleRoutes = new ConsoleRoutes({
    supervisor,
    config,
    log: log.child({ part: 'console' }),
    readinessOf: (workers) => readiness.of(workers),
    degradedReason: () => metrics.degradedReason,
    checkBearer,
  });
  const handler = new Handler(
    supervisor,
    metrics,
    readiness,
    consoleRoutes,
    config.adminToken,
    opts.maxBodyBytes,
    log,
  );

  const server = createServer((req, res) => {
    // While closing, each answer also ends its keep-alive connection, so close() need not wait.
    if (handler.closing) res.setHeader('connection', 'close');
    res.on('finish', () => handler.closing && server.closeIdleConnections());
    void handler.handle(req, res);
  });
  // A slow or stuck client must not hold a connection open forever.
  server.requestTimeout = 30_000;
  server.headersTimeout = 10_000;
  try {
    await tryListen(server, { port, host });
  } catch (error) {
    consoleRoutes.close();
    metrics.close();
    throw new Error(`http: cannot listen on ${host}:${port}: ${(error as Error).message}`, { cause: error });
  }
  server.on('error', (error) => log.error({ err: error }, 'http server error'));
  const bound = (server.address() as AddressInfo).port;
  log.info({ host, port: bound }, 'http listening');
  const url = `http://${host.includes(':') ? `[${host}]` : host}:${bound}`;
  let closing: Promise<void> | undefined;
  return {
    name: 'http',
    host,
    port: bound,
    url,
    metrics,
    close: () => {
      handler.closing = true;
      // Console streams never end by themselves: end them first so close() need not wait out its grace.
      consoleRoutes.close();
      return (closing ??= closeServer(server, opts.closeGraceMs, log).finally(() => metrics.close()));
    },
  };
}

/** Stops accepting, ends idle keep-alive connections now and busy ones once answered (or after grace). */
async function closeServer(server: Server, graceMs: number, log: Logger): Promise<void> {
  const closed = new Promise<void>((resolve) => server.close(() => resolve()));
  server.closeIdleConnections();
  const timer = setTimeout(() => {
    log.warn({ graceMs }, 'http: requests still open at close; cutting their connections');
    server.closeAllConnections();
  }, graceMs);
  timer.unref();
  await closed;
  clearTimeout(timer);
  log.info('http closed');
}

class Handler {
  closing = false;

  constructor(
    private readonly supervisor: Supervisor,
    private readonly metrics: SupervisorMetrics,
    private readonly readiness: ReadinessCheck,
    private readonly console: ConsoleRoutes,
    private readonly adminToken: string | null,
    private readonly maxBodyBytes: number,
    private readonly log: Logger,
  ) {}

  async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const started = performance.now();
    let path = req.url ?? '/';
    try {
      path = new URL(path, 'http://localhost').pathname;
      await this.route(req, res, path);
    } catch (error) {
      const http = httpErrorOf(error);
      if (http.status >= 500) this.log.error({ err: error, path }, 'http request failed');
      writeJson(res, http.status, { error: http.shape }, http.headers);
    }
    this.log.debug(
      { method: req.method, path, status: res.statusCode, ms: Math.round(performance.now() - started) },
      'http request',
    );
  }

  private async route(req: IncomingMessage, res: ServerResponse, path: string): Promise<void> {
    const method = req.method ?? 'GET';
    if (GET_ROUTES.has(path)) {
      if (method !== 'GET' && method !== 'HEAD') throw methodNotAllowed('GET, HEAD');
      if (path === '/healthz') return writeJson(res, 200, liveness());
      if (path === '/readyz') {
        const { ready, body } = await this.readiness.check();
        return writeJson(res, ready ? 200 : 503, body);
      }
      const text = await this.metrics.metrics();
      res.writeHead(200, { 'content-type': this.metrics.contentType });
      res.end(text);
      return;
    }
    if (await this.console.handle(req, res, path)) return;
    const command = /^\/admin\/([\w-]+)$/.exec(path)?.[1];
    if (command === undefined || !isHttpAdminCommand(command)) {
      throw new HttpError(404, { code: ErrorCode.BAD_REQUEST, message: `no route ${path}` });
    }
    if (method !== 'POST') throw methodNotAllowed('POST');
    this.authorize(req, path);
    const args = await readArgs(req, this.maxBodyBytes);
    this.log.info({ command, args }, 'http admin command');
    writeJson(res, 200, await this.supervisor.admin(command, args));
  }

  private authorize(req: IncomingMessage, path: string): void {
    if (this.adminToken === null) {
      throw new HttpError(403, {
        code: ErrorCode.UNAUTHORIZED,
        message:
          'admin over HTTP is off: no admin token is configured (adminToken / GPU_SUPERVISOR_ADMIN_TOKEN)',
      });
    }
    const verdict = checkBearer(req.headers.authorization, this.adminToken);
    if (verdict === 'ok') return;
    // The console's session cookie: a browser sends it on its own, so the request must be proven same-site.
    const session = this.console.sessionAdmin(req);
    if (session.signedIn && session.refused === undefined) return;
    if (session.refused !== undefined) {
      this.log.warn({ path, remote: req.socket.remoteAddress, why: session.refused }, 'http admin refused');
      throw new HttpError(403, { code: ErrorCode.UNAUTHORIZED, message: session.refused });
    }
    // The header's value is never logged: a wrong token may be a right one for something else.
    this.log.warn(
      { path, remote: req.socket.remoteAddress, token: verdict },
      'http admin refused: bad token',
    );
    throw new HttpError(
      401,
      {
        code: ErrorCode.UNAUTHORIZED,
        message: verdict === 'missing' ? 'missing Authorization: Bearer <token>' : 'wrong admin token',
      },
      { 'www-authenticate': 'Bearer' },
    );
  }
}

function methodNotAllowed(allow: string): HttpError {
  return new HttpError(
    405,
    { code: ErrorCode.BAD_REQUEST, message: `method not allowed; use ${allow}` },
    { allow },
  );
}
