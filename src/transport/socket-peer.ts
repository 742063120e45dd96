import type { Socket } from 'node:net';
import type { SupervisorConfig } from '../config/schema.js';
import type { Logger } from '../logging/logger.js';
import { ErrorCode, type ErrorShape } from '../protocol/errors.js';
import type { ClientMessage, SupervisorMessage } from '../protocol/messages.js';
import type { Supervisor } from '../service/facade.js';
import { tokenMatches } from './auth.js';
import { encodeFrame } from './frame-codec.js';
import { FrameDecoder } from './frame-decoder.js';
import { ClientSession, socketTaskId, validateClientMessage } from './session.js';
import type { SocketReadyMessage } from './socket-protocol.js';

/** Bad frames logged per connection at warn; the rest are counted and summed up when it closes. */
const LOGGED_BAD_FRAMES = 10;

/**
 * One socket connection: frames in, the fork channel's messages through a ClientSession, frames out.
 * Tensors travel as raw bytes both ways, so answers always keep their TypedArrays.
 */
export class SocketPeer {
  private readonly decoder: FrameDecoder;
  private readonly session: ClientSession;
  private readonly log: Logger;
  private authenticated = false;
  private closed = false;
  /** Refused (a wrong token): nothing more it sent is read, even frames already buffered. */
  private refused = false;
  /** Answers are waiting for the client to read them: stop reading its requests until it has. */
  private backpressured = false;
  private badFrames = 0;

  constructor(
    private readonly socket: Socket,
    private readonly supervisor: Supervisor,
    private readonly config: SupervisorConfig,
    log: Logger,
    readonly connection: number,
  ) {
    this.log = log.child({ connection });
    this.decoder = new FrameDecoder(config.maxMessageBytes);
    this.session = new ClientSession(supervisor, this.log, {
      taskId: (id) => socketTaskId(connection, id),
      jsonOnly: () => false,
      authorize: (message) => this.authorize(message),
      send: (message) => this.send(message),
    });
    socket.on('data', (chunk: Buffer) => this.receive(chunk));
    socket.on('error', (error) => this.log.debug({ err: error }, 'socket client error'));
    socket.once('close', () => this.onClose());
  }

  /** Ends the connection after what was written has been flushed. */
  end(): void {
    this.socket.end();
  }

  destroy(): void {
    this.socket.destroy();
  }

  private receive(chunk: Buffer): void {
    this.decoder.feed(chunk);
    this.pump();
  }

  /**
   * Handles frames one at a time while the client keeps up with its answers. Each bad frame is answered,
   * so a client sending 4-byte frames it never reads answers to would otherwise make us buffer 25 times
   * what it sends; now we stop at one socket buffer's worth and the rest waits, unread, in the kernel.
   */
  private pump(): void {
    while (!this.closed && !this.refused && !this.backpressured) {
      const item = this.decoder.next();
      if (item === undefined) return;
      if (item.kind === 'message') {
        const raw = item.message;
        if (isHello(raw)) this.hello(raw.token);
        else this.session.handle(validateClientMessage(raw));
        continue;
      }
      // An oversized frame's bytes are skipped as they arrive (never buffered): the stream stays in
      // step and the connection usable. Its id was never read, so the answer is a bare error.
      if (++this.badFrames <= LOGGED_BAD_FRAMES)
        this.log.warn({ kind: item.kind, reason: item.error.message }, 'bad frame');
      this.session.refuse(undefined, undefined, { code: ErrorCode.BAD_REQUEST, message: item.error.message });
    }
  }

  private waitForDrain(): void {
    if (this.backpressured) return;
    this.backpressured = true;
    this.socket.pause();
    this.socket.once('drain', () => {
      this.backpressured = false;
      this.socket.resume();
      this.pump();
    });
  }

  private hello(token: unknown): void {
    if (token !== undefined && typeof token !== 'string') {
      this.session.refuse(undefined, undefined, {
        code: ErrorCode.BAD_REQUEST,
        message: '"token" must be a string',
      });
      return;
    }
    const expected = this.config.adminToken;
    if (token !== undefined && expected !== null) {
      if (!tokenMatches(expected, token)) {
        // Never log the token itself: only that it was wrong.
        this.log.warn({ reason: 'wrong token' }, 'unauthorized');
        this.send({ type: 'error', error: { code: ErrorCode.UNAUTHORIZED, message: 'wrong token' } });
        // Frames sent behind the wrong hello (another guess, a command) are never carried out.
        this.refused = true;
        this.socket.pause();
        this.socket.destroySoon();
        return;
      }
      this.authenticated = true;
    }
    const ready: SocketReadyMessage = {
      type: 'ready',
      pid: process.pid,
      workers: this.supervisor.workers,
      maxMessageBytes: this.config.maxMessageBytes,
      authenticated: this.authenticated,
    };
    this.write(ready);
  }

  private authorize(message: ClientMessage): ErrorShape | undefined {
    if (this.authenticated) return undefined;
    const { adminToken, requireToken } = this.config;
    // Without an admin token the socket's 0600 mode is the guard: only its owner can connect.
    const needed = message.type === 'admin' ? adminToken !== null : requireToken;
    if (!needed) return undefined;
    const what =
      message.type === 'admin' ? `admin command ${message.command} needs` : `${message.type} messages need`;
    this.log.warn({ kind: message.type, id: message.id, reason: 'missing token' }, 'unauthorized');
    return { code: ErrorCode.UNAUTHORIZED, message: `${what} the admin token (send it in hello)` };
  }

  private send(message: SupervisorMessage): void {
    this.write(message);
  }

  /** Encoding errors propagate (the session answers them); a gone client drops the message. */
  private write(message: SupervisorMessage | SocketReadyMessage): void {
    const frame = encodeFrame(message);
    if (this.closed || this.socket.destroyed || !this.socket.writable) return;
    if (!this.socket.write(frame)) this.waitForDrain();
  }

  private onClose(): void {
    this.closed = true;
    const cancelled = this.session.cancelAll();
    if (this.badFrames > LOGGED_BAD_FRAMES)
      this.log.warn(
        { badFrames: this.badFrames, logged: LOGGED_BAD_FRAMES },
        'socket client sent bad frames',
      );
    if (cancelled > 0) this.log.info({ cancelled }, 'socket client left: its tasks cancelled');
    else this.log.debug('socket client left');
  }
}

function isHello(raw: unknown): raw is { type: 'hello'; token?: unknown } {
  return typeof raw === 'object' && raw !== null && (raw as { type?: unknown }).type === 'hello';
}
