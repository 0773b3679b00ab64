/**
 * The arithmetic of the shared rate limits (`CallStore.admit`), one function
 * per rule, on the state one limit keeps: the memory store runs these, and the
 * Redis store's `ADMIT` script does the same steps in Lua.
 */
import type { RateRule } from './types.js';

/**
 * A token bucket as GCRA: the state is the theoretical arrival time `tat` of
 * the next event at the steady rate; an event is admitted while `tat` is at
 * most `burst - 1` intervals ahead of `now`.
 */
export function bucketParams(rule: Extract<RateRule, { kind: 'bucket' }>): { intervalMs: number; toleranceMs: number } {
  checkRule(rule.burst >= 1 && rule.perSecond > 0, rule);
  const intervalMs = 1000 / rule.perSecond;
  return { intervalMs, toleranceMs: (rule.burst - 1) * intervalMs };
}

/** The bucket's next state when an event at `now` is admitted, or null when it is over. */
export function admitBucket(rule: Extract<RateRule, { kind: 'bucket' }>, tat: number | undefined, now: number): number | null {
  const { intervalMs, toleranceMs } = bucketParams(rule);
  const from = Math.max(tat ?? now, now);
  return from - now > toleranceMs ? null : from + intervalMs;
}

/**
 * A sliding log: the times of the last `limit` events admitted, newest first.
 * An event is over the limit when the `limit`-th newest is still inside the window.
 */
export function windowParams(rule: Extract<RateRule, { kind: 'window' }>): { limit: number; windowMs: number } {
  checkRule(Number.isInteger(rule.limit) && rule.limit >= 1 && rule.windowMs > 0, rule);
  return { limit: rule.limit, windowMs: rule.windowMs };
}

export function admitWindow(rule: Extract<RateRule, { kind: 'window' }>, log: number[], now: number): number[] | null {
  windowParams(rule);
  const oldest = log[rule.limit - 1];
  if (oldest !== undefined && oldest > now - rule.windowMs) return null;
  return [now, ...log.slice(0, rule.limit - 1)];
}

/** How long the state of `rule` must be kept after an event admitted at `now`. */
export function keepMs(rule: RateRule, state: number | number[], now: number): number {
  return rule.kind === 'bucket' ? Math.max(1, Math.ceil((state as number) - now)) : rule.windowMs;
}

function checkRule(ok: boolean, rule: RateRule): void {
  if (!ok) throw new RangeError(`not a usable rate rule: ${JSON.stringify(rule)}`);
}
