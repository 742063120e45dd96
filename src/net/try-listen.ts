import type { ListenOptions, Server } from 'node:net';

/**
 * `server.listen(options)`, settled by whichever of 'listening' and 'error' comes first. The other
 * listener is taken off, so a later error goes to the server's own 'error' handler, not to a promise
 * that is long settled. Any net.Server: the HTTP front (port, host) and the socket front (path).
 */
export function tryListen(server: Server, options: ListenOptions): Promise<void> {
  return new Promise((resolve, reject) => {
    const onError = (error: Error): void => {
      server.off('listening', onListening);
      reject(error);
    };
    const onListening = (): void => {
      server.off('error', onError);
      resolve();
    };
    server.once('error', onError).once('listening', onListening);
    server.listen(options);
  });
}
