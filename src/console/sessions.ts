import { createHash, randomBytes } from 'node:crypto';

/**
 * Console sign-ins: the token is typed once and exchanged for a random session id kept in an
 * HttpOnly cookie, so the page's script never holds the token. Ids are stored hashed (a heap dump
 * shows no usable id), expire after `ttlMs`, and at most `max` live at once (the oldest goes first).
 */
export class SessionStore {
  private readonly expiries = new Map<string, number>();

  constructor(
    readonly ttlMs: number,
    private readonly max = 1000,
    private readonly now: () => number = Date.now,
  ) {}

  create(): string {
    const id = randomBytes(32).toString('base64url');
    this.prune();
    while (this.expiries.size >= this.max) this.expiries.delete(this.expiries.keys().next().value!);
    this.expiries.set(hash(id), this.now() + this.ttlMs);
    return id;
  }

  valid(id: string | undefined): boolean {
    if (id === undefined || id === '') return false;
    const key = hash(id);
    const expires = this.expiries.get(key);
    if (expires === undefined) return false;
    if (expires > this.now()) return true;
    this.expiries.delete(key);
    return false;
  }

  revoke(id: string | undefined): void {
    if (id !== undefined) this.expiries.delete(hash(id));
  }

  get size(): number {
    return this.expiries.size;
  }

  private prune(): void {
    const now = this.now();
    for (const [key, expires] of this.expiries) if (expires <= now) this.expiries.delete(key);
  }
}

function hash(id: string): string {
  return createHash('sha256').update(id).digest('base64url');
}
