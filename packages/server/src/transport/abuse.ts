/**
 * Limits that keep one client, user or address from hurting everyone else:
 * unauthenticated sockets per address, per-user token buckets (across a user's
 * sockets on this node), and slow readers whose unsent packets pile up.
 * All of them are off with RATE_LIMITS=off.
 */
import { RateLimiter } from './rate-limit.js';

interface Closable {
  once(event: 'close', listener: () => void): unknown;
}

/**
 * Counts connections per remote address that have not authenticated yet. A
 * connection counts from its Engine.IO handshake (where `admit` is asked) until
 * it authenticates or closes, whichever comes first — so a burst of handshakes
 * cannot slip past the cap, and a refused socket gives its slot back.
 */
export class AddressGate {
  private readonly pending = new Map<string, number>();
  private readonly counted = new WeakMap<object, string>();
  constructor(private readonly max: number) {}

  admit(address: string): boolean {
    return (this.pending.get(address) ?? 0) < this.max;
  }

  /** An Engine.IO connection opened from `address`. */
  track(connection: Closable, address: string): void {
    this.pending.set(address, (this.pending.get(address) ?? 0) + 1);
    this.counted.set(connection, address);
    connection.once('close', () => this.release(connection));
  }

  /** The connection authenticated (or closed): it no longer counts. */
  release(connection: object): void {
    const address = this.counted.get(connection);
    if (address === undefined) return;
    this.counted.delete(connection);
    const n = (this.pending.get(address) ?? 0) - 1;
    if (n > 0) this.pending.set(address, n);
    else this.pending.delete(address);
  }
}

/** How long an idle user's buckets are kept. */
const USER_LIMITER_IDLE_MS = 60_000;
/** A user's buckets are this many times a single socket's: a few devices, not a botnet. */
export const USER_BUCKET_FACTOR = 3;

export class UserLimiters {
  private readonly limiters = new Map<string, { limiter: RateLimiter; lastUsed: number }>();
  private readonly sweeper: NodeJS.Timeout;

  constructor(private readonly now: () => number) {
    this.sweeper = setInterval(() => this.sweep(), USER_LIMITER_IDLE_MS);
    this.sweeper.unref();
  }

  take(user: string, event: string): 'ok' | 'refused' | 'abusive' {
    const now = this.now();
    let entry = this.limiters.get(user);
    if (!entry) this.limiters.set(user, (entry = { limiter: new RateLimiter(USER_BUCKET_FACTOR), lastUsed: now }));
    entry.lastUsed = now;
    return entry.limiter.take(event, now);
  }

  close(): void {
    clearInterval(this.sweeper);
  }

  private sweep(): void {
    const cutoff = this.now() - USER_LIMITER_IDLE_MS;
    for (const [user, entry] of this.limiters) if (entry.lastUsed < cutoff) this.limiters.delete(user);
  }
}

/** Packets waiting for a socket that does not read; past this it is cut as a lost transport. */
export const MAX_BUFFERED_PACKETS = 1000;
