/**
 * Limits that keep one client, user or address from hurting everyone else:
 * unauthenticated sockets per address, per-user token buckets (across a user's
 * sockets on this node), and slow readers whose unsent packets pile up.
 * All of them are off with RATE_LIMITS=off.
 */
import type { UserKey } from '../calls/types.js';
import type { LimitStore, RateRule } from '../store/types.js';
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

/**
 * Sign-ins (`auth:handshake`, handshake `auth`, `reconnect:attempt`) of one
 * user, across every socket and node: a real client signs in a few times a
 * minute at most.
 */
export const USER_SIGN_INS: RateRule = { kind: 'bucket', burst: 10, perSecond: 1 };

/**
 * Sign-ins from one address, across every node. They scale with
 * `MAX_UNAUTHENTICATED_PER_ADDRESS`, the one knob for what one address may do
 * (raised behind a reverse proxy, where every client shares its address):
 * twice that many at once, then a fifth of it a second (200, then 20/s by default).
 */
export function addressSignIns(maxUnauthenticatedPerAddress: number): RateRule {
  return { kind: 'bucket', burst: 2 * maxUnauthenticatedPerAddress, perSecond: maxUnauthenticatedPerAddress / 5 };
}

/** Calls one caller may request of one callee (each busy one leaves a record in both histories). */
export const PAIR_REQUESTS = { kind: 'window', limit: 6, windowMs: 60_000 } as const satisfies RateRule;

/** The name of a limit about one caller and one callee (a user id may hold any character: the caller's key is length-prefixed). */
export function pairKey(kind: string, caller: UserKey, callee: string): string {
  return `${kind}:${caller.length}:${caller}${callee}`;
}

/** The sign-in limits, counted in the store so that they hold across nodes. */
export class SignInLimits {
  constructor(
    private readonly store: LimitStore,
    private readonly addressRule: RateRule,
    private readonly now: () => number,
  ) {}

  /** Counts one sign-in of `user` from `address`; false when either is over its limit. */
  async admit(user: UserKey, address: string): Promise<boolean> {
    const now = this.now();
    const [byUser, byAddress] = await Promise.all([
      this.store.admit(`sign-in:${user}`, USER_SIGN_INS, now),
      this.store.admit(`sign-in-from:${address}`, this.addressRule, now),
    ]);
    return byUser && byAddress;
  }
}
