/** What both stores refuse about timers, alike, before anything is written. */

/**
 * A commit's timer must have a finite due time: Redis would otherwise fail the
 * script on a NaN score, where the memory store would keep a timer that never comes due.
 */
export function checkDueAt(dueAt: number): void {
  if (!Number.isFinite(dueAt)) throw new RangeError(`a timer's due time must be a finite number of ms, not ${dueAt}`);
}

/** When a lease taken at `now` runs out (a timer's, a dead node's); a lease must be positive, or what it leases would stay claimable by everyone. */
export function leaseEnd(now: number, leaseMs: number): number {
  if (!(leaseMs > 0) || !Number.isFinite(leaseMs)) throw new RangeError(`a lease must be a positive number of ms, not ${leaseMs}`);
  return now + leaseMs;
}
