/**
 * Several server processes sharing one real Redis behave as one server (the
 * suites of `suites.ts`), and survive that Redis restarting.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { Redis } from 'ioredis';
import { errorCode, expectOk, ring, signIn, type TestClient } from '../helpers.js';
import { dropPrefix, freshPrefix, OwnedRedis, sharedRedis, startNode } from './harness.js';
import { describeDyingNodes, describePushedCalls, describeSharedNodes, FAST, type BackendUse } from './suites.js';

/** The shared Redis, under a fresh prefix dropped afterwards. */
async function oneRedis(): Promise<BackendUse> {
  const redis = await sharedRedis();
  const prefix = freshPrefix();
  return {
    env: { REDIS_URL: redis.url, REDIS_PREFIX: prefix },
    async release() {
      await dropPrefix(redis.url, prefix);
      await redis.release();
    },
  };
}

describeSharedNodes('three nodes on one Redis', oneRedis);
describeDyingNodes('nodes that die', oneRedis);
describePushedCalls('pushed calls across nodes (RING_OFFLINE=webhook)', oneRedis);

describe('Redis trouble', () => {
  test('a Redis restart mid-call: /readyz goes 503 then 200, no node crashes, the call goes on', async () => {
    const redis = await OwnedRedis.start();
    const prefix = freshPrefix();
    const nodes = await Promise.all([1, 2].map(() => startNode({ ...FAST, NODE_TIMEOUT_MS: '10000', REDIS_URL: redis.url, REDIS_PREFIX: prefix })));
    const clients: TestClient[] = [];
    try {
      const alice = await signIn(nodes[0]!, 'outage-a');
      const bob = await signIn(nodes[1]!, 'outage-b');
      clients.push(alice, bob);
      const callId = await ring(alice, [bob], 'outage-b');
      expectOk(await bob.request('call:accept', { callId }));
      await alice.next('call:accepted');

      await redis.stop();
      const readyDown = await waitForStatus(`${nodes[0]!.url}/readyz`, 503);
      assert.equal(readyDown, 503);
      const during = await alice.request('call:mute', { callId }, 5000);
      assert.equal(errorCode(during), 'internal', 'requests fail with internal, never hang');

      await redis.resume();
      assert.equal(await waitForStatus(`${nodes[0]!.url}/readyz`, 200), 200);
      assert.equal(await waitForStatus(`${nodes[1]!.url}/readyz`, 200), 200);
      expectOk(await alice.request('call:mute', { callId }));
      assert.deepEqual(await bob.next('call:mute'), { callId, userId: 'outage-a' });
      alice.socket.emit('webrtc:offer', { callId, sdp: 'v=0 after the outage' });
      assert.equal((await bob.next('webrtc:offer')).sdp, 'v=0 after the outage');
      expectOk(await bob.request('call:end', { callId }));
      assert.equal((await alice.next('call:ended')).reason, 'hangup');
      for (const n of nodes) assert.equal(n.child.exitCode, null, 'no node crashed');
    } finally {
      clients.forEach((c) => c.close());
      await Promise.all(nodes.map((n) => n.kill('SIGKILL')));
      await redis.destroy();
    }
  });
});

describe('a call on one node', () => {
  test('crosses no Redis channel: ringing, answer, relay, mute and hangup between two sockets of one node publish nothing', async () => {
    const redis = await OwnedRedis.start();
    const prefix = freshPrefix();
    const nodes = await Promise.all([1, 2].map(() => startNode({ ...FAST, REDIS_URL: redis.url, REDIS_PREFIX: prefix })));
    const admin = new Redis(redis.url);
    const clients: TestClient[] = [];
    const publishes = async () => Number(/cmdstat_spublish:calls=(\d+)/.exec(await admin.info('commandstats'))?.[1] ?? 0);
    try {
      const alice = await signIn(nodes[0]!, 'same-a');
      const bob = await signIn(nodes[0]!, 'same-b');
      clients.push(alice, bob);
      for (let round = 0; round < 3; round++) {
        const before = await publishes();
        const callId = await ring(alice, [bob], 'same-b');
        expectOk(await bob.request('call:accept', { callId }));
        await alice.next('call:accepted');
        alice.socket.emit('webrtc:offer', { callId, sdp: `v=0 offer ${round}` });
        assert.equal((await bob.next('webrtc:offer')).sdp, `v=0 offer ${round}`);
        bob.socket.emit('webrtc:answer', { callId, sdp: `v=0 answer ${round}` });
        assert.equal((await alice.next('webrtc:answer')).sdp, `v=0 answer ${round}`);
        expectOk(await alice.request('call:mute', { callId }));
        assert.deepEqual(await bob.next('call:mute'), { callId, userId: 'same-a' });
        expectOk(await alice.request('call:end', { callId }));
        assert.equal((await bob.next('call:ended')).reason, 'hangup');
        assert.equal((await publishes()) - before, 0, `round ${round}: every event stayed on the node`);
      }
    } finally {
      clients.forEach((c) => c.close());
      admin.disconnect();
      await Promise.all(nodes.map((n) => n.kill('SIGKILL')));
      await redis.destroy();
    }
  });
});

/** Polls `url` until it answers `status` (bounded), and returns the last status seen. */
async function waitForStatus(url: string, status: number, timeoutMs = 10_000): Promise<number> {
  const deadline = Date.now() + timeoutMs;
  let last = 0;
  while (Date.now() < deadline) {
    last = await fetch(url).then((r) => r.status, () => 0);
    if (last === status) return last;
    await new Promise((r) => setTimeout(r, 100));
  }
  return last;
}
