/**
 * When and how often the phone tries to get its session back after a
 * transport loss. Swappable (pass `reconnectPolicy` to the phone) and
 * testable on its own, like livekit's `ReconnectPolicy`.
 */

/** What a policy knows when it picks the next delay. */
export interface ReconnectContext {
  /** Attempts already made since the transport was lost: 0 before the first. */
  readonly retryCount: number;
  /** Milliseconds since the transport was lost. */
  readonly elapsedMs: number;
  /** Why the previous attempt failed, when there was one. */
  readonly retryReason?: Error;
}

/**
 * Decides the delay before each attempt to resume the session after a
 * transport loss, or that the phone should stop trying.
 *
 * @example
 * ```ts
 * // Retry every second for two minutes, then give up.
 * const everySecond: ReconnectPolicy = {
 *   nextDelay: ({ elapsedMs }) => (elapsedMs < 120_000 ? 1000 : null),
 * };
 * const phone = new Phone({ url, token, reconnectPolicy: everySecond });
 * ```
 */
export interface ReconnectPolicy {
  /** Milliseconds to wait before the next attempt, or `null` to give up (the phone's calls then end with `connection_lost`). */
  nextDelay(context: ReconnectContext): number | null;
}

/**
 * Back-off of the default policy: the first retry at once (most losses are a
 * blip), then slower; about 48 s in all, longer than the server's default
 * 30 s reconnect grace, after which a resumption could not succeed anyway.
 */
export const DEFAULT_RECONNECT_DELAYS_MS: readonly number[] = [0, 300, 1200, 2700, 4800, 7000, 7000, 7000, 7000, 7000];

export interface DefaultReconnectPolicyOptions {
  /** The delay before each attempt; its length is the number of attempts. @default DEFAULT_RECONNECT_DELAYS_MS */
  delaysMs?: readonly number[];
  /** Random extra delay, up to this, added from the third attempt on so that many clients do not retry in step. @default 1000 */
  maxJitterMs?: number;
  /** Source of randomness in [0, 1). @default Math.random */
  random?: () => number;
}

/** Follows a fixed table of delays, with jitter after the first two, then gives up. */
export class DefaultReconnectPolicy implements ReconnectPolicy {
  private readonly delaysMs: readonly number[];
  private readonly maxJitterMs: number;
  private readonly random: () => number;

  constructor(options: DefaultReconnectPolicyOptions = {}) {
    this.delaysMs = options.delaysMs ?? DEFAULT_RECONNECT_DELAYS_MS;
    this.maxJitterMs = options.maxJitterMs ?? 1000;
    this.random = options.random ?? Math.random;
  }

  nextDelay(context: ReconnectContext): number | null {
    const base = this.delaysMs[context.retryCount];
    if (base === undefined) return null;
    const jitter = context.retryCount >= 2 ? Math.floor(this.random() * this.maxJitterMs) : 0;
    return base + jitter;
  }
}
