import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { skipUnlessCiAllows } from './fixtures/ci-skip.js';

const MISSING =
  "redis-server not installed: install Debian's redis-server to run the BullMQ tests; CI installs it";

/**
 * The reason to skip Redis-backed tests (`describe(name, { skip: redisSkip }, ...)`), or false to run
 * them. Only a developer machine without redis-server skips; under CI (env CI set) a missing server
 * is a broken set-up, so the tests run and TestRedis.start fails loudly.
 */
export const redisSkip: string | false = skipReason();

function skipReason(): string | false {
  if (process.env.REDIS_URL) return false;
  const probe = spawnSync('redis-server', ['--version'], { stdio: 'ignore' });
  const missing = (probe.error as NodeJS.ErrnoException | undefined)?.code === 'ENOENT';
  return skipUnlessCiAllows(missing && MISSING);
}

/** A free loopback port: bind port 0, read what the kernel gave, release it. */
export async function freePort(): Promise<number> {
  const server = createServer();
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as { port: number };
  await new Promise((resolve) => server.close(resolve));
  return port;
}

/** One Redis command over a raw socket (inline protocol); resolves with the first reply line. */
export async function redisCommand(port: number, command: string, timeoutMs = 1_000): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1');
    const timer = setTimeout(() => socket.destroy(new Error('redis did not answer')), timeoutMs);
    let data = '';
    socket.on('connect', () => socket.write(`${command}\r\n`));
    socket.on('data', (chunk) => {
      data += chunk.toString();
      if (data.includes('\r\n')) {
        clearTimeout(timer);
        socket.end();
        resolve(data.split('\r\n')[0] ?? '');
      }
    });
    socket.on('error', (error) => {
      clearTimeout(timer);
      reject(error);
    });
  });
}

/**
 * A redis-server for tests, in a temp dir on a free loopback port; or the one REDIS_URL names (then
 * `restart` is not possible and `external` is true). `persist` keeps data across a restart (AOF), as
 * a production Redis would; without it a restart empties the queue.
 */
export class TestRedis {
  private child: ChildProcess | undefined;
  private readonly dir: string | undefined;

  private constructor(
    readonly url: string,
    readonly port: number,
    readonly external: boolean,
    private readonly persist: boolean,
  ) {
    if (!external) this.dir = mkdtempSync(join(tmpdir(), 'gs-redis-'));
  }

  static async start(options: { persist?: boolean } = {}): Promise<TestRedis> {
    const external = process.env.REDIS_URL;
    if (external) return new TestRedis(external, Number(new URL(external).port || 6379), true, false);
    const port = await freePort();
    const redis = new TestRedis(`redis://127.0.0.1:${port}`, port, false, options.persist ?? false);
    await redis.launch();
    return redis;
  }

  private async launch(): Promise<void> {
    const args = ['--port', String(this.port), '--bind', '127.0.0.1', '--save', '', '--dir', this.dir!];
    args.push(
      ...(this.persist ? ['--appendonly', 'yes', '--appendfsync', 'always'] : ['--appendonly', 'no']),
    );
    const child = spawn('redis-server', args, { stdio: ['ignore', 'ignore', 'pipe'] });
    this.child = child;
    let spawnError: NodeJS.ErrnoException | undefined;
    child.on('error', (error) => (spawnError = error));
    const deadline = Date.now() + 10_000;
    for (;;) {
      if (spawnError?.code === 'ENOENT')
        throw new Error(
          process.env.CI
            ? "redis-server not installed, and CI is set: CI must install Debian's redis-server"
            : MISSING,
        );
      if (spawnError) throw new Error(`cannot start redis-server: ${spawnError.message}`);
      if (child.exitCode !== null) throw new Error(`redis-server exited with code ${child.exitCode}`);
      const reply = await redisCommand(this.port, 'PING').catch(() => '');
      if (reply === '+PONG') return;
      if (Date.now() > deadline) throw new Error('redis-server did not answer PING within 10 s');
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  /** SIGTERM (Redis flushes its AOF and exits), then start it again on the same port and dir. */
  async restart(downMs = 500): Promise<void> {
    if (this.external) throw new Error('cannot restart an external Redis (REDIS_URL)');
    await this.kill('SIGTERM');
    await new Promise((r) => setTimeout(r, downMs));
    await this.launch();
  }

  private async kill(signal: NodeJS.Signals): Promise<void> {
    const child = this.child;
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    const exited = once(child, 'exit');
    child.kill(signal);
    const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
    await exited;
    clearTimeout(timer);
  }

  async stop(): Promise<void> {
    await this.kill('SIGTERM');
    if (this.dir) rmSync(this.dir, { recursive: true, force: true });
  }
}
