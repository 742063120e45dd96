import type { ErrorShape } from '../protocol/errors.js';
import type { ClientMessage, SupervisorMessage } from '../protocol/messages.js';

/**
 * What SupervisorClient needs from a way of talking to a supervisor (the fork channel, the local
 * socket): post messages, hear answers, learn when it is gone. Both are already past `ready`.
 */
export interface Connection {
  /** The supervisor's pid and worker count, from its `ready` message. */
  readonly pid: number;
  readonly workers: number;
  /** Distinguishes this client's ids from others' where the supervisor sees them. */
  readonly idPrefix: string;
  readonly closed: boolean;
  /** Sends a message; throws a SupervisorError when it cannot be sent (too large, unserializable). */
  post(message: ClientMessage): void;
  onMessage(handler: (message: SupervisorMessage) => void): void;
  /** Called once when the connection is gone; the error answers whatever was still pending. */
  onClose(handler: (error: ErrorShape) => void): void;
  /** Ends the connection (the fork connection also stops the supervisor it started). */
  close(client: { shutdown(): Promise<unknown> }): Promise<void>;
  /** The supervisor's stdout when this process forked it with stdio 'pipe'; null otherwise. */
  readonly stdout: NodeJS.ReadableStream | null;
}
