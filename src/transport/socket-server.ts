import { chmodSync, lstatSync, mkdirSync, unlinkSync } from 'node:fs';
import { createConnection, createServer, type Server, type Socket } from 'node:net';
import { dirname } from 'node:path';
import type { Logger } from '../logging/logger.js';
import { tryListen } from '../net/try-listen.js';
import { ErrorCode } from '../protocol/errors.js';
import { encodeFrame } from './frame-codec.js';
import type { Front, FrontContext } from './front.js';
import { SocketPeer } from './socket-peer.js';
import { defaultSocketPath, isNamedPipe, resolveSocketPath } from './socket-path.js';

/** How long a refused connection may stay open after its refusal was written. */
const REFUSED_LINGER_MS = 1000;

/**
 * The local socket front (a Unix domain socket; a named pipe on Windows): the fork channel's messages
 * in length-prefixed binary frames, for processes that did not fork the supervisor (the CLI, other
 * apps). The socket is 0600 in a 0700 directory, so only its owner can connect.
 */
export async function startSocketFront(context: FrontContext): Promise<Front | undefined> {
  const { supervisor, config, log, forked } = context;
  const path = resolveSocketPath(config.socket, forked);
  if (path === undefined) return undefined;
  if (config.requireToken && config.adminToken === null)
    log.warn('requireToken is set but no adminToken is configured: socket tasks will be refused');

  const peers = new Set<SocketPeer>();
  /** Connections refused for maxClients, told why and not yet closed by their client. */
  const refused = new Set<Socket>();
  let connections = 0;
  const server = createServer((socket) => {
    if (peers.size >= config.maxClients) {
      log.warn({ maxClients: config.maxClients }, 'socket client refused: too many clients');
      const error = {
        code: ErrorCode.QUEUE_FULL,
        message: `too many clients (maxClients ${config.maxClients})`,
      };
      socket.on('error', () => undefined);
      socket.end(encodeFrame({ type: 'error', error }));
      // A refused client that keeps its end open must hold neither a descriptor nor the shutdown.
      refused.add(socket);
      socket.once('close', () => refused.delete(socket));
      setTimeout(() => socket.destroy(), REFUSED_LINGER_MS).unref();
      return;
    }
    const peer = new SocketPeer(socket, supervisor, config, log, ++connections);
    peers.add(peer);
    socket.once('close', () => peers.delete(peer));
  });

  if (!isNamedPipe(path)) prepareDirectory(path, config.socket === 'auto' || path === defaultSocketPath());
  await listen(server, path, log);
  if (!isNamedPipe(path)) chmodSync(path, 0o600);
  log.info({ path, maxClients: config.maxClients }, 'socket listening');

  return {
    name: 'socket',
    close: async () => {
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      for (const socket of refused) socket.destroy();
      for (const peer of peers) peer.end();
      // A client that does not hang up its end is not allowed to hold the shutdown.
      const timer = setTimeout(() => {
        for (const peer of peers) peer.destroy();
      }, 1000);
      await closed;
      clearTimeout(timer);
      // net removes the socket file on close; a leftover would only look stale to the next start.
      removeIfSocket(path);
    },
  };
}

/**
 * The socket's directory is made 0700. The default one is ours alone: if it exists it must belong to us,
 * and its mode is tightened. A directory the user named that already exists is left as it is.
 */
function prepareDirectory(path: string, ours: boolean): void {
  const dir = dirname(path);
  let existed = true;
  try {
    lstatSync(dir);
  } catch {
    existed = false;
  }
  if (!existed) {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    chmodSync(dir, 0o700);
    return;
  }
  if (!ours) return;
  const stat = lstatSync(dir);
  const uid = process.getuid?.();
  if (!stat.isDirectory() || (uid !== undefined && stat.uid !== uid))
    throw new Error(`socket directory ${dir} is not a directory owned by this user`);
  if ((stat.mode & 0o077) !== 0) chmodSync(dir, 0o700);
}

async function listen(server: Server, path: string, log: Logger): Promise<void> {
  try {
    await tryListen(server, { path });
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'EADDRINUSE' || isNamedPipe(path)) throw error;
    if (!isSocketFile(path))
      throw new Error(`cannot listen on ${path}: a file that is not a socket is there`);
    if (await someoneListens(path))
      throw new Error(`another supervisor is already listening on ${path} (stop it, or pick --socket PATH)`);
    log.info({ path }, 'replacing a stale socket file');
    unlinkSync(path);
    await tryListen(server, { path });
  }
}

function someoneListens(path: string): Promise<boolean> {
  return new Promise((resolve) => {
    const probe: Socket = createConnection(path);
    probe.once('connect', () => {
      probe.destroy();
      resolve(true);
    });
    probe.once('error', () => resolve(false));
  });
}

function isSocketFile(path: string): boolean {
  try {
    return lstatSync(path).isSocket();
  } catch {
    return false;
  }
}

function removeIfSocket(path: string): void {
  if (isNamedPipe(path) || !isSocketFile(path)) return;
  try {
    unlinkSync(path);
  } catch {
    // already gone
  }
}
