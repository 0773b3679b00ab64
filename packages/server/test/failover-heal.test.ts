/**
 * What a Redis failover can lose and how it heals (Redis mode): the new
 * master may lack the last writes the old one acknowledged, a sign-in among
 * them. The loss is made here as the failover would leave it — the session's
 * keys gone from Redis while its socket stays signed in — and the node must
 * write the session again on its next reconcile, so the user is online and
 * callable again without reconnecting.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { Redis } from 'ioredis';
import { userKey } from '../src/calls/types.js';
import type { SwitchboardServer } from '../src/index.js';
import { groupOfSession, redisKeys } from '../src/store/redis-keys.js';
import { dropPrefix, freshPrefix, sharedRedis } from '../../../test/support/redis.js';
import { pollUntil } from '../../../test/support/wait.js';
import { establish, signIn, startTestServer, type TestClient } from './helpers.js';

describe('a session the store lost (Redis mode)', () => {
  let redis: { url: string; release(): Promise<void> };
  let admin: Redis;
  let server: SwitchboardServer;
  const prefix = freshPrefix();
  const clients: TestClient[] = [];

  before(async () => {
    redis = await sharedRedis();
    admin = new Redis(redis.url, { maxRetriesPerRequest: 1 });
    server = await startTestServer({ REDIS_URL: redis.url, REDIS_PREFIX: prefix, NODE_TIMEOUT_MS: '1000', RATE_LIMITS: 'off' });
  });
  after(async () => {
    clients.forEach((c) => c.close());
    await server?.close();
    await admin?.quit();
    await dropPrefix(redis.url, prefix);
    await redis?.release();
  });

  test('is written again while its socket is signed in: online and callable again, without reconnecting', async () => {
    const alice = await signIn(server, 'alice');
    const bob = await signIn(server, 'bob');
    clients.push(alice, bob);
    const sessionId = alice.auth!.sessionId;
    const key = userKey('', 'alice');
    // The failover's loss: every write of alice's sign-in gone.
    const keys = redisKeys(prefix);
    await admin.del(keys.session(sessionId), keys.userSessions(key));
    await admin.hdel(keys.online(''), 'alice');
    await admin.srem(keys.nodeSessions(groupOfSession(sessionId), server.config.nodeId), sessionId);
    assert.deepEqual(await server.store.sessionsOf(key), [], 'lost');

    bob.clear();
    const held = await pollUntil('the node to write the session again', async () => {
      const found = await server.store.sessionsOf(key);
      return found.length > 0 ? found : null;
    }, 5000, 50);
    const restored = held?.[0];
    assert.equal(restored?.id, sessionId, 'the same session, as the socket knows it');
    assert.equal(restored?.connected, true);
    assert.deepEqual((await bob.next('user:online')).user, { id: 'alice', name: 'Alice' }, 'presence hears alice again');
    const callId = await establish(bob, alice, 'alice');
    assert.ok(callId, 'and she can be called');
  });
});
