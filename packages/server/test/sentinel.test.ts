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
import { RedisStore } from '../src/store/redis-store.js';
import { redisTargetOf, resolveRedisTarget } from '../src/store/redis-target.js';
import { freshPrefix } from '../../../test/support/redis.js';
import { SENTINEL_MASTER, SentinelGroup } from '../../../test/support/sentinel.js';
import { describeCallStore } from './store-contract.js';
import { failoverMidCall } from './failover.js';
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
      redisTargetOf({ redisUrl: null, redisClusterNodes: [], redisSentinels: group.sentinelList.split(','), redisSentinelMaster: SENTINEL_MASTER, redisUsername: null, redisPassword: PASSWORD }),
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
    await failoverMidCall(t, group.env, () => group.killMaster().then((port) => `port ${port}`));
  });
});
