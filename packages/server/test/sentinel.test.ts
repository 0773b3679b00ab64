/**
 * Redis behind Sentinel (v1.1), on real processes started by the test: a
 * master, a replica and three sentinels, with passwords on the data nodes and
 * on the sentinels. The store contract suite runs on it; `switchboard check`
 * names the topology; and the master is killed in the middle of a call
 * between two nodes: an event sent during the outage is answered within 10 s,
 * `/readyz` says 503 and recovers, the call's parties still relay and hang up,
 * a new call across the nodes works, and no node was declared dead.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { userKey } from '../src/calls/types.js';
import type { SwitchboardServer } from '../src/index.js';
import { RedisStore } from '../src/store/redis-store.js';
import { redisTargetOf, resolveRedisTarget } from '../src/store/redis-target.js';
import { freshPrefix } from '../../../test/support/redis.js';
import { SENTINEL_MASTER, SentinelGroup } from '../../../test/support/sentinel.js';
import { pollUntil } from '../../../test/support/wait.js';
import { describeCallStore } from './store-contract.js';
import { errorCode, establish, expectOk, signIn, startTestServer, type TestClient } from './helpers.js';
import { runCli } from './ops-helpers.js';

const PASSWORD = 'sentinel-test-password-0123456789';

describe('Redis behind Sentinel', () => {
  let group: SentinelGroup;
  before(async () => {
    group = await SentinelGroup.start({ password: PASSWORD, sentinelAuth: true });
  });
  after(async () => {
    await group?.stop();
  });

  const target = async () =>
    (await resolveRedisTarget(
      redisTargetOf({ redisUrl: null, redisSentinels: group.sentinelList.split(','), redisSentinelMaster: SENTINEL_MASTER, redisUsername: null, redisPassword: PASSWORD }),
    ))!;

  test('the sentinels’ password is found to be needed, and used', async () => {
    const resolved = await target();
    assert.equal(resolved.kind, 'sentinel');
    assert.equal(resolved.kind === 'sentinel' && resolved.sentinelAuth, true);
  });

  describeCallStore('RedisStore behind Sentinel', async () => {
    const store = new RedisStore({ target: await target(), prefix: freshPrefix() });
    // The group (and every key) goes away with the file.
    return { store, cleanup: () => store.close() };
  });

  test('switchboard check names the Sentinel topology, the master and each sentinel', async () => {
    const { code, stdout, stderr } = await runCli(['check'], { ...group.env, JWT_SECRET: 'x'.repeat(32) });
    assert.equal(code, 0, stderr);
    assert.match(stdout, new RegExp(`redis: Sentinel topology: master "${SENTINEL_MASTER}" at 127\\.0\\.0\\.1:${await group.masterPort()} \\(Redis 7`));
    assert.match(stdout, /1 replica\(s\) connected/);
    assert.equal(stdout.match(/ {2}sentinel 127\.0\.0\.1:\d+: master at 127\.0\.0\.1:\d+/g)?.length, 3, stdout);
    assert.match(stdout, /REDIS_PASSWORD\s+\*{3}/, 'the password is masked');
    assert.doesNotMatch(stdout, new RegExp(PASSWORD));
  });

  test('the master dies mid-call: events are answered within 10 s, /readyz goes 503 and back, the call goes on and ends, a new call works', async (t) => {
    const env = { ...group.env, REDIS_PREFIX: freshPrefix(), NODE_TIMEOUT_MS: '2000', RECONNECT_GRACE_MS: '20000' };
    const nodes: SwitchboardServer[] = [await startTestServer(env), await startTestServer(env)];
    const clients: TestClient[] = [];
    try {
      const user = async (id: string, node: number) => {
        const c = await signIn(nodes[node]!, id);
        clients.push(c);
        return c;
      };
      const alice = await user('alice', 0);
      const bob = await user('bob', 1);
      const callId = await establish(alice, bob, 'bob');
      const ready = async (node: SwitchboardServer) => (await fetch(`${node.url}/readyz`)).status;

      const killed = Date.now();
      const promoted = group.killMaster();
      // During the outage the nodes say they are not ready, and an event is answered (ok or internal), never left hanging.
      await pollUntil('/readyz to answer 503', async () => (await ready(nodes[0]!)) === 503, 5000, 50);
      const sent = Date.now();
      const answered = await alice.request('call:mute', { callId }, 10_000);
      const answeredMs = Date.now() - sent;
      assert.ok(answered.ok || errorCode(answered) === 'internal', JSON.stringify(answered));
      const newMaster = await promoted;
      const promotedMs = Date.now() - killed;
      await pollUntil('both nodes ready again', async () => (await ready(nodes[0]!)) === 200 && (await ready(nodes[1]!)) === 200, 15_000, 100);
      t.diagnostic(`a mute sent during the outage (${sent - killed} ms after the kill) answered ${answered.ok ? 'ok' : 'internal'} in ${answeredMs} ms; replica promoted (port ${newMaster}) ${promotedMs} ms after the kill; both nodes ready ${Date.now() - killed} ms after`);

      // The call's parties still relay (the binding needs no store) and everything that needs the store works again.
      alice.raw('webrtc:offer', { callId, sdp: 'v=0 after failover' });
      assert.equal((await bob.next('webrtc:offer')).sdp, 'v=0 after failover');
      await pollUntil('a control to be carried out again', async () => (await alice.request('call:hold', { callId })).ok, 10_000, 200);
      assert.deepEqual(await bob.next('call:hold'), { callId, userId: 'alice' });
      expectOk(await alice.request('call:end', { callId }));
      assert.equal((await bob.next('call:ended')).reason, 'hangup');

      const carol = await user('carol', 0);
      const dave = await user('dave', 1);
      const second = await establish(carol, dave, 'dave');
      expectOk(await dave.request('call:end', { callId: second }));
      await carol.next('call:ended');

      // No node declared the other dead: every session is still connected where it was.
      for (const id of ['alice', 'bob']) {
        const [session] = await nodes[0]!.store.sessionsOf(userKey('', id));
        assert.equal(session?.connected, true, `${id}'s session is still connected`);
      }
      for (const node of nodes) assert.equal(node.store.kind, 'redis');
    } finally {
      clients.forEach((c) => c.close());
      await Promise.all(nodes.map((n) => n.close()));
    }
  });
});
