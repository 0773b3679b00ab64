/** The default reconnect policy: a table of delays, jitter after the first two, then null. */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { DEFAULT_RECONNECT_DELAYS_MS, DefaultReconnectPolicy } from './index.js';

describe('DefaultReconnectPolicy', () => {
  test('follows its table, adds jitter only from the third attempt, and gives up after the last', () => {
    const policy = new DefaultReconnectPolicy({ random: () => 0.5, maxJitterMs: 1000 });
    const delays = DEFAULT_RECONNECT_DELAYS_MS.map((_, retryCount) => policy.nextDelay({ retryCount, elapsedMs: 0 }));
    assert.deepEqual(delays.slice(0, 2), [0, 300], 'the first retry at once, the second soon');
    assert.deepEqual(
      delays.slice(2),
      DEFAULT_RECONNECT_DELAYS_MS.slice(2).map((d) => d + 500),
    );
    assert.equal(policy.nextDelay({ retryCount: DEFAULT_RECONNECT_DELAYS_MS.length, elapsedMs: 60_000 }), null);
  });

  test('takes its own table', () => {
    const policy = new DefaultReconnectPolicy({ delaysMs: [5, 10], maxJitterMs: 0 });
    assert.deepEqual([0, 1, 2].map((retryCount) => policy.nextDelay({ retryCount, elapsedMs: 0 })), [5, 10, null]);
  });

  test('the default table outlasts the server default reconnect grace of 30 s', () => {
    const total = DEFAULT_RECONNECT_DELAYS_MS.reduce((a, b) => a + b, 0);
    assert.ok(total > 30_000, `${total} ms`);
  });
});
