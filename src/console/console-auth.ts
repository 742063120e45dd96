import type { IncomingMessage } from 'node:http';
import type { SessionStore } from './sessions.js';

export const SESSION_COOKIE = 'gpu_supervisor_session';

/** What a request may do: act (signed in), look (the read-only views, when public), or nothing. */
export type Access = 'admin' | 'read' | 'none';

export type BearerVerdict = 'ok' | 'missing' | 'wrong';

/**
 * Who is asking: a bearer token (curl, scripts) or the console's session cookie (the page). The
 * bearer check is the HTTP front's own (constant time), passed in so both fronts judge alike.
 */
export class ConsoleAuth {
  constructor(
    private readonly token: string | null,
    private readonly isPublic: boolean,
    readonly sessions: SessionStore,
    private readonly checkBearer: (header: string | undefined, token: string) => BearerVerdict,
  ) {}

  get tokenConfigured(): boolean {
    return this.token !== null;
  }

  get public(): boolean {
    return this.isPublic;
  }

  tokenMatches(given: string): boolean {
    return this.token !== null && this.checkBearer(`Bearer ${given}`, this.token) === 'ok';
  }

  /** 'bearer' or 'session' when the request is signed in, else undefined. */
  signedInBy(req: IncomingMessage): 'bearer' | 'session' | undefined {
    if (this.token === null) return undefined;
    if (this.checkBearer(req.headers.authorization, this.token) === 'ok') return 'bearer';
    return this.sessions.valid(sessionIdOf(req)) ? 'session' : undefined;
  }

  access(req: IncomingMessage): Access {
    if (this.signedInBy(req) !== undefined) return 'admin';
    return this.isPublic ? 'read' : 'none';
  }

  sessionCookie(id: string): string {
    const maxAge = Math.floor(this.sessions.ttlMs / 1000);
    return `${SESSION_COOKIE}=${id}; HttpOnly; SameSite=Strict; Path=/; Max-Age=${maxAge}`;
  }

  clearedCookie(): string {
    return `${SESSION_COOKIE}=; HttpOnly; SameSite=Strict; Path=/; Max-Age=0`;
  }
}

export function sessionIdOf(req: IncomingMessage): string | undefined {
  for (const part of (req.headers.cookie ?? '').split(';')) {
    const eq = part.indexOf('=');
    if (eq > 0 && part.slice(0, eq).trim() === SESSION_COOKIE) return part.slice(eq + 1).trim();
  }
  return undefined;
}

/**
 * Why a cookie-carried POST may be forged, or undefined when it may not. A cross-site form can send
 * only form or text bodies, and a cross-site fetch with `application/json` needs a CORS preflight
 * this server never grants; the browser's Origin and Sec-Fetch-Site headers are checked as well.
 * (A bearer-carried POST needs no check: no other site can make a browser attach that header.)
 */
export function forgeryRisk(req: IncomingMessage): string | undefined {
  const type = req.headers['content-type'] ?? '';
  if (!/^application\/json\s*(;|$)/i.test(type)) {
    return 'a console action must be sent with content-type application/json';
  }
  const site = req.headers['sec-fetch-site'];
  if (site !== undefined && site !== 'same-origin' && site !== 'none') {
    return `refused a ${site} request`;
  }
  const origin = req.headers.origin;
  if (origin !== undefined) {
    let host: string | undefined;
    try {
      host = new URL(origin).host;
    } catch {
      host = undefined;
    }
    if (host === undefined || host !== req.headers.host) return `refused a request from origin ${origin}`;
  }
  return undefined;
}
