import type { ServerResponse } from 'node:http';

export interface EventStreamOptions {
  maxClients: number;
  /**
   * Bytes a client may leave unread (in our buffers and the socket's) before it is dropped. Every
   * frame goes to every client, so a client that stops reading would otherwise grow without bound.
   */
  maxBufferedBytes: number;
  onDrop?: (why: string) => void;
}

/**
 * Server-Sent Event streams shared by every open console: each frame is serialized once and written
 * to all of them. At most `maxClients`; a client too slow to keep up is cut, never buffered for.
 */
export class EventStreamHub {
  /** Each stream, and what says whether its reader may still read (a session that may end). */
  private readonly clients = new Map<ServerResponse, (() => boolean) | undefined>();

  constructor(private readonly options: EventStreamOptions) {}

  get size(): number {
    return this.clients.size;
  }

  get full(): boolean {
    return this.clients.size >= this.options.maxClients;
  }

  /**
   * Starts a stream on `res` with `first` as its opening frames; false when the hub is full. With
   * `allowed`, the stream ends at the first frame after it says no (a sign-out, an expired session).
   */
  add(res: ServerResponse, headers: Record<string, string>, first: string, allowed?: () => boolean): boolean {
    if (this.full) return false;
    res.writeHead(200, {
      ...headers,
      'content-type': 'text/event-stream; charset=utf-8',
      'cache-control': 'no-store',
      // A reverse proxy (nginx) must pass each frame on as it comes.
      'x-accel-buffering': 'no',
    });
    this.clients.set(res, allowed);
    res.on('close', () => this.clients.delete(res));
    // The browser reconnects by itself after 3 s if the stream breaks.
    this.write(res, `retry: 3000\n\n${first}`);
    return true;
  }

  broadcast(event: string, data: unknown): void {
    if (this.clients.size === 0) return;
    const frame = frameOf(event, data);
    for (const [res, allowed] of this.clients) {
      if (allowed && !allowed()) {
        this.clients.delete(res);
        res.end();
      } else this.write(res, frame);
    }
  }

  /** Ends every stream (the front is closing). */
  close(): void {
    for (const res of this.clients.keys()) res.end();
    this.clients.clear();
  }

  private write(res: ServerResponse, frame: string): void {
    if (res.destroyed) return void this.clients.delete(res);
    res.write(frame);
    // writableLength counts what the response and its socket still hold: unread by the client.
    if (res.writableLength > this.options.maxBufferedBytes) {
      this.clients.delete(res);
      this.options.onDrop?.(`${res.writableLength} bytes unread`);
      res.destroy();
    }
  }
}

/** One SSE frame; JSON never contains a raw newline, so `data:` stays one line. */
export function frameOf(event: string, data: unknown): string {
  return `event: ${event}\ndata: ${JSON.stringify(data, jsonSafe)}\n\n`;
}

/** Counters may be bigints (history row ids); JSON has no such type. */
export function jsonSafe(_key: string, value: unknown): unknown {
  return typeof value === 'bigint' ? Number(value) : value;
}

/** A JSON answer (BigInts as numbers); nothing if the headers already went out. */
export function writeJson(
  res: ServerResponse,
  status: number,
  body: unknown,
  headers: Record<string, string> = {},
): void {
  if (res.headersSent) return void res.end();
  const text = JSON.stringify(body, jsonSafe);
  res.writeHead(status, { ...headers, 'content-type': 'application/json; charset=utf-8' });
  res.end(text);
}
