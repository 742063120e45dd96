/**
 * Socket-only messages, on top of the fork channel's contract (src/protocol/messages.ts). A socket
 * client may open with `hello` (carrying the admin token, if it has one) and is answered `ready`;
 * a client that skips it is served unauthenticated.
 */
export interface HelloMessage {
  type: 'hello';
  token?: string;
}

export interface SocketReadyMessage {
  type: 'ready';
  pid: number;
  workers: number;
  /** The largest frame the supervisor accepts: a client can refuse a larger message itself. */
  maxMessageBytes: number;
  /** Whether the hello carried the right token (admin commands and, with requireToken, tasks need it). */
  authenticated: boolean;
}
