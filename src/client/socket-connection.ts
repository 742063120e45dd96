import { createConnection, type Socket } from 'node:net';
import { ErrorCode, SupervisorError, type ErrorShape } from '../protocol/errors.js';
import type { ClientMessage, SupervisorMessage } from '../protocol/messages.js';
import { encodeFrame, FRAME_PREFIX_BYTES, MAX_FRAME_BYTES } from '../transport/frame-codec.js';
import { FrameDecoder } from '../transport/frame-decoder.js';
import { defaultSocketPath } from '../transport/socket-path.js';
import type { HelloMessage, SocketReadyMessage } from '../transport/socket-protocol.js';
import type { Connection } from './connection.js';

export interface ConnectOptions {
  /** The admin token (needed for admin commands when the supervisor has one, and for tasks with requireToken). */
  token?: string;
  /** How long to wait for the connection and the `ready` answer (default 10 s). */
  timeoutMs?: number;
}

/** Connection errors that mean nobody is serving at the path. */
const NOT_RUNNING = new Set(['ENOENT', 'ECONNREFUSED', 'ENOTSOCK']);

/** A running supervisor's local socket, spoken to in binary frames (tensors as raw bytes). */
export class SocketConnection implements Connection {
  readonly idPrefix = `c${process.pid}-`;
  readonly stdout = null;
  private ended = false;
  private readonly handlers: Array<(message: SupervisorMessage) => void> = [];
  private readonly closeHandlers: Array<(error: ErrorShape) => void> = [];
  private readonly gone: Promise<void>;

  private constructor(
    private readonly socket: Socket,
    private readonly decoder: FrameDecoder,
    private readonly ready: SocketReadyMessage,
    readonly path: string,
  ) {
    this.gone = new Promise((resolve) => socket.once('close', () => resolve()));
    socket.on('data', (chunk: Buffer) => this.receive(chunk));
    socket.once('close', () => {
      this.ended = true;
      const error = {
        code: ErrorCode.SHUTTING_DOWN,
        message: `connection to the supervisor at ${path} closed`,
      };
      for (const handler of this.closeHandlers.splice(0)) handler(error);
    });
  }

  static async open(path = defaultSocketPath(), options: ConnectOptions = {}): Promise<SocketConnection> {
    const socket = createConnection(path);
    const decoder = new FrameDecoder(MAX_FRAME_BYTES);
    const ready = await new Promise<SocketReadyMessage>((resolve, reject) => {
      const fail = (error: SupervisorError): void => {
        finish();
        socket.destroy();
        reject(error);
      };
      const timer = setTimeout(
        () => fail(new SupervisorError(ErrorCode.NOT_RUNNING, `no answer from a supervisor at ${path}`)),
        options.timeoutMs ?? 10_000,
      );
      const onError = (error: NodeJS.ErrnoException): void => fail(connectError(path, error));
      const onConnect = (): void => {
        const hello: HelloMessage = { type: 'hello' };
        if (options.token !== undefined) hello.token = options.token;
        socket.write(encodeFrame(hello));
      };
      const onData = (chunk: Buffer): void => {
        for (const item of decoder.push(chunk)) {
          if (item.kind !== 'message') continue;
          const message = item.message as SupervisorMessage | SocketReadyMessage;
          if (message.type === 'ready') {
            finish();
            resolve(message as SocketReadyMessage);
            return;
          }
          if (message.type === 'error') return fail(SupervisorError.fromShape(message.error));
        }
      };
      const onClose = (): void =>
        fail(new SupervisorError(ErrorCode.NOT_RUNNING, `the supervisor at ${path} closed the connection`));
      const finish = (): void => {
        clearTimeout(timer);
        socket.off('error', onError);
        socket.off('connect', onConnect);
        socket.off('data', onData);
        socket.off('close', onClose);
      };
      socket.on('error', onError);
      socket.once('connect', onConnect);
      socket.on('data', onData);
      socket.once('close', onClose);
    });
    // Errors after `ready` end in 'close', which answers everything pending.
    socket.on('error', () => undefined);
    return new SocketConnection(socket, decoder, ready, path);
  }

  get pid(): number {
    return this.ready.pid;
  }

  get workers(): number {
    return this.ready.workers;
  }

  /** Whether the token was accepted. */
  get authenticated(): boolean {
    return this.ready.authenticated;
  }

  get closed(): boolean {
    return this.ended;
  }

  post(message: ClientMessage): void {
    if (this.ended) return;
    let frame: Buffer;
    try {
      frame = encodeFrame(message);
    } catch (error) {
      throw new SupervisorError(
        ErrorCode.BAD_REQUEST,
        `cannot encode the message: ${(error as Error).message}`,
      );
    }
    // Refused here rather than by the supervisor, which could only answer it without an id.
    if (frame.byteLength - FRAME_PREFIX_BYTES > this.ready.maxMessageBytes) {
      throw new SupervisorError(
        ErrorCode.BAD_REQUEST,
        `message of ${frame.byteLength - FRAME_PREFIX_BYTES} bytes exceeds the supervisor's maxMessageBytes (${this.ready.maxMessageBytes})`,
      );
    }
    this.socket.write(frame);
  }

  onMessage(handler: (message: SupervisorMessage) => void): void {
    this.handlers.push(handler);
  }

  onClose(handler: (error: ErrorShape) => void): void {
    if (this.ended)
      handler({
        code: ErrorCode.SHUTTING_DOWN,
        message: `connection to the supervisor at ${this.path} closed`,
      });
    else this.closeHandlers.push(handler);
  }

  /** Hangs up; the supervisor keeps running (and cancels whatever this client still had running). */
  async close(): Promise<void> {
    if (!this.ended) this.socket.end();
    await this.gone;
  }

  private receive(chunk: Buffer): void {
    for (const item of this.decoder.push(chunk)) {
      if (item.kind !== 'message') continue;
      for (const handler of this.handlers) handler(item.message as SupervisorMessage);
    }
  }
}

function connectError(path: string, error: NodeJS.ErrnoException): SupervisorError {
  if (error.code && NOT_RUNNING.has(error.code))
    return new SupervisorError(ErrorCode.NOT_RUNNING, `no supervisor is listening on ${path}`);
  if (error.code === 'EACCES' || error.code === 'EPERM')
    return new SupervisorError(ErrorCode.UNAUTHORIZED, `no permission to connect to ${path} (${error.code})`);
  return new SupervisorError(ErrorCode.NOT_RUNNING, `cannot connect to ${path}: ${error.message}`);
}
