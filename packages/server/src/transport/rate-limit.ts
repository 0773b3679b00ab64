/**
 * Per-session token buckets. Each client event belongs to one bucket class;
 * the sizes let a real client through (a burst of 30 ICE candidates, a re-offer
 * now and then) and stop a flood (call:request in a loop).
 */
import type { ClientEventName } from '@switchboard/protocol';

export type BucketClass = 'auth' | 'call' | 'relay' | 'control' | 'quality' | 'query' | 'unknown';

/** Capacity (burst) and refill per second of each class. */
export const BUCKET_LIMITS: Record<BucketClass, { burst: number; perSecond: number }> = {
  auth: { burst: 5, perSecond: 1 },
  call: { burst: 10, perSecond: 2 },
  relay: { burst: 200, perSecond: 50 },
  control: { burst: 20, perSecond: 5 },
  /** `call:quality`: once a second is the rule (faster reports are dropped); a client well past it is refused. */
  quality: { burst: 5, perSecond: 2 },
  query: { burst: 5, perSecond: 1 },
  unknown: { burst: 5, perSecond: 1 },
};

/** A socket refused this many times in a row is disconnected. */
export const MAX_CONSECUTIVE_REFUSALS = 50;

export function bucketClassOf(event: ClientEventName | string): BucketClass {
  if (event === 'auth:handshake' || event === 'reconnect:attempt') return 'auth';
  if (event.startsWith('webrtc:')) return 'relay';
  if (event === 'user:list') return 'query';
  if (event === 'call:request' || event === 'call:accept' || event === 'call:reject' || event === 'call:cancel' || event === 'call:end') {
    return 'call';
  }
  if (event === 'call:quality') return 'quality';
  if (event.startsWith('call:')) return 'control';
  return 'unknown';
}

export class TokenBucket {
  private tokens: number;
  private last: number;
  constructor(
    private readonly burst: number,
    private readonly perSecond: number,
    now: number,
  ) {
    this.tokens = burst;
    this.last = now;
  }

  take(now: number): boolean {
    const elapsed = now - this.last;
    if (elapsed > 0) {
      this.tokens = Math.min(this.burst, this.tokens + (elapsed * this.perSecond) / 1000);
      this.last = now;
    }
    if (this.tokens < 1) return false;
    this.tokens -= 1;
    return true;
  }
}

export class RateLimiter {
  private readonly buckets = new Map<BucketClass, TokenBucket>();
  private refusals = 0;

  /** `scale` multiplies every bucket (a user's buckets are a few sockets' worth). */
  constructor(private readonly scale = 1) {}

  /** Returns 'ok', 'refused', or 'abusive' once a socket keeps going after being refused. */
  take(event: string, now: number): 'ok' | 'refused' | 'abusive' {
    const cls = bucketClassOf(event);
    let bucket = this.buckets.get(cls);
    if (!bucket) {
      const { burst, perSecond } = BUCKET_LIMITS[cls];
      this.buckets.set(cls, (bucket = new TokenBucket(burst * this.scale, perSecond * this.scale, now)));
    }
    if (bucket.take(now)) {
      this.refusals = 0;
      return 'ok';
    }
    return ++this.refusals > MAX_CONSECUTIVE_REFUSALS ? 'abusive' : 'refused';
  }
}
