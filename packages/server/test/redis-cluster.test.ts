/**
 * Redis Cluster (v1.1), on real processes started by the test: three masters
 * and three replicas, with a password. The store contract suite runs on it
 * (every script's keys in one slot, or Redis refuses it with CROSSSLOT); a
 * deployment's keys land on more than one master (many tenants spread over
 * the key groups, and even one tenant's heartbeats and rate limits do);
 * `switchboard check` names the topology and each master; and the master
 * holding the calls is killed in the middle of a call between two nodes: an
 * event sent during the failover is answered within 10 s, `/readyz` says 503
 * and recovers, the call's parties still relay and hang up, a new call across
 * the nodes works, and no node was declared dead.
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import type { Socket } from 'node:net';
import { Cluster } from 'ioredis';
import { after, before, describe, test } from 'node:test';
import type { CallId, SessionId, UserId } from '@switchboard/protocol';
import { NO_FLAGS, userKey, type CallRecord } from '../src/calls/types.js';
import { groupOf, KEY_GROUPS, redisKeys, sessionIdPrefix } from '../src/store/redis-keys.js';
import { RedisStore } from '../src/store/redis-store.js';
import { closeRedis, openRedis, redisTargetOf } from '../src/store/redis-target.js';
import { failFastOptions } from '../src/store/redis-connection.js';
import { freshPrefix, recordCommands } from '../../../test/support/redis.js';
import { RedisCluster } from '../../../test/support/redis-cluster.js';
import { describeCallStore } from './store-contract.js';
import { failoverMidCall } from './failover.js';
import { runCli } from './ops-helpers.js';

const PASSWORD = 'cluster-test-password-0123456789';

describe('Redis Cluster', () => {
  let cluster: RedisCluster;
  before(async () => {
    cluster = await RedisCluster.start({ password: PASSWORD });
  });
  after(async () => {
    await cluster?.stop();
  });

  const target = () =>
    redisTargetOf({ redisUrl: null, redisClusterNodes: cluster.seeds.split(','), redisSentinels: [], redisSentinelMaster: null, redisUsername: null, redisPassword: PASSWORD })!;

  describeCallStore('RedisStore on a Redis Cluster', async () => {
    const store = new RedisStore({ target: target(), prefix: freshPrefix() });
    // The cluster (and every key) goes away with the file.
    return { store, cleanup: () => store.close() };
  });

  test("a deployment's keys spread over every master: tenants over the key groups, one tenant's timers, beats and limits too", async () => {
    const store = new RedisStore({ target: target(), prefix: freshPrefix() });
    const before = await cluster.keysPerMaster();
    try {
      const call = (tenant: string, id: string): CallRecord => ({
        id: id as CallId,
        tenant,
        state: 'ringing',
        caller: { userId: 'ann' as UserId, name: 'Ann', sessionId: null, flags: { ...NO_FLAGS }, reconnecting: false },
        callee: { userId: 'ben' as UserId, name: 'Ben', sessionId: null, flags: { ...NO_FLAGS }, reconnecting: false },
        ringing: [],
        media: { audio: true, video: false },
        createdAt: 1,
        answeredAt: null,
        endedAt: null,
        ringDeadline: 2,
        outcome: null,
        endReason: null,
        endedBy: null,
      });
      for (let t = 0; t < 48; t++) {
        const tenant = `tenant-${t}`;
        const claims = ['ann', 'ben'].map((u) => ({ op: 'take' as const, key: userKey(tenant, u), expect: null, callId: 'c1' as CallId }));
        assert.equal(await store.commitCall({ call: call(tenant, 'c1'), expectVersion: 0, claims, ttlMs: null }), true);
        const session = { id: `${sessionIdPrefix(tenant)}s1` as SessionId, tenant, userId: 'ann' as UserId, name: 'Ann', contacts: null, nodeId: 'n1', connected: true, graceUntil: null, resumes: 0, resumeWindowStart: 0, createdAt: 0 };
        assert.deepEqual(await store.addSession(session), { first: true });
      }
      const grown = (now: Map<number, number>) => [...now].filter(([port, n]) => n > (before.get(port) ?? 0)).length;
      assert.equal(grown(await cluster.keysPerMaster()), 3, 'calls and sessions of 48 tenants are on all three masters');

      // One tenant alone: its state is one group, but the deployment's other keys are not.
      const one = new RedisStore({ target: target(), prefix: freshPrefix() });
      const start = await cluster.keysPerMaster();
      try {
        for (let i = 0; i < 32; i++) {
          await one.schedule('grace', `${sessionIdPrefix('')}s${i}`, 1);
          await one.beat(`node-${i}`, Date.now() + 60_000);
          await one.admit(`user:${i}`, { kind: 'bucket', burst: 5, perSecond: 1 }, Date.now());
        }
        const after = await cluster.keysPerMaster();
        assert.equal([...after].filter(([port, n]) => n > (start.get(port) ?? 0)).length, 3, 'heartbeats and rate limits of one tenant still spread');
        assert.equal((await one.claimDue(2, 100, 1000)).length, 32, `claimDue finds the timers wherever they are (${KEY_GROUPS} groups)`);
      } finally {
        await one.close();
      }
    } finally {
      await store.close();
    }
  });

  test("a user's sessions and their records are one command on a cluster (which refuses SORT's GET): one script, the expired one left out and pruned", async () => {
    const client = cluster.client();
    const sent = recordCommands(client);
    const prefix = freshPrefix();
    const store = new RedisStore({ client, prefix });
    try {
      const tenant = 'tenant-sessions';
      const record = (id: string, userId: string) => ({ id: `${sessionIdPrefix(tenant)}${id}` as SessionId, tenant, userId: userId as UserId, name: userId, contacts: null, nodeId: 'n1', connected: true, graceUntil: null, resumes: 0, resumeWindowStart: 0, createdAt: 0 });
      const records = [record('s1', 'ann'), record('s2', 'ann'), record('s3', 'ben')];
      for (const r of records) await store.addSession(r);
      // s2's record gone behind the store's back (its safety TTL ran out): the set still names it.
      await client.del(redisKeys(prefix).session(records[1]!.id));
      sent.length = 0;
      const found = await store.sessionsOf(userKey(tenant, 'ann'));
      assert.deepEqual(found, [records[0]]);
      assert.deepEqual(sent.slice(0, 1), ['evalsha'], `one script reads the set and the records: ${sent.join(', ')}`);
      assert.ok(!sent.includes('smembers') && !sent.includes('mget'), sent.join(', '));
      assert.deepEqual(await client.smembers(redisKeys(prefix).userSessions(userKey(tenant, 'ann'))), [records[0]!.id], 'the expired member was pruned');
      assert.deepEqual(await store.sessionsOf(userKey(tenant, 'nobody')), []);
    } finally {
      await store.close();
      client.disconnect();
    }
  });

  test("a cluster connection's commands of one turn leave in one write per master, and no auto-pipeline holds them", async () => {
    const opened = openRedis(target(), failFastOptions());
    assert.ok(opened instanceof Cluster);
    const client: Cluster = opened;
    const prefix = freshPrefix();
    const keys: string[] = [];
    try {
      if (client.status !== 'ready') await once(client, 'ready');
      // One key on each master (by the slot map the client holds), each master answered once so its connection is open.
      const byMaster = new Map<string, string>();
      for (let g = 0; g < KEY_GROUPS; g++) {
        const key = `${prefix}{g${g}}:k`;
        const master = client.slots[(await client.cluster('KEYSLOT', key)) as number]![0]!;
        if (!byMaster.has(master)) byMaster.set(master, key);
      }
      keys.push(...byMaster.values());
      assert.equal(keys.length, 3, 'a key on each of the three masters');
      await Promise.all(keys.map((k) => client.get(k)));
      for (let turn = 0; turn < 20; turn++) {
        const replies = Promise.all(keys.map((k) => client.set(k, String(turn))));
        const sockets = client.nodes('all').filter((n) => n.status === 'ready').map((n) => n.stream as Socket);
        assert.ok(sockets.length >= 3);
        assert.ok(sockets.every((s) => s.writableCorked === 1), 'every node socket is held for the rest of the turn');
        assert.equal(sockets.filter((s) => s.writableLength > 0).length, 3, "each command waits in its master's socket");
        assert.equal(client.autoPipelineQueueSize, 0, 'not in a Pipeline');
        assert.deepEqual(await replies, ['OK', 'OK', 'OK']);
        assert.deepEqual(await Promise.all(keys.map((k) => client.get(k))), keys.map(() => String(turn)));
        assert.ok(sockets.every((s) => s.writableCorked === 0), 'let go once the turn is over');
      }
    } finally {
      await Promise.all(keys.map((k) => client.del(k)));
      await closeRedis(client);
    }
  });

  test('switchboard check names the Cluster topology and each master with its slots and replica', async () => {
    const { code, stdout, stderr } = await runCli(['check'], { ...cluster.env, JWT_SECRET: 'x'.repeat(32) });
    assert.equal(code, 0, stderr);
    assert.match(stdout, /redis: Cluster topology: 3 master\(s\) holding all 16384 slots \(Redis 7/);
    assert.equal(stdout.match(/ {2}master 127\.0\.0\.1:\d+: \d+ slots, 1 replica\(s\)/g)?.length, 3, stdout);
    assert.doesNotMatch(stdout, new RegExp(PASSWORD));
    const wrong = await runCli(['check'], { REDIS_CLUSTER_NODES: cluster.seeds, JWT_SECRET: 'x'.repeat(32) });
    assert.equal(wrong.code, 69, 'no password: unusable');
    assert.match(wrong.stderr, /Redis Cluster seeded by .* is unreachable or unusable: no seed node answers \(.*NOAUTH/);
  });

  test('the master holding the calls dies mid-call: events are answered within 10 s, /readyz goes 503 and back, the call goes on and ends, a new call works', async (t) => {
    // The default tenant's key group holds the call, the claims and the sessions: kill its master.
    const victim = await cluster.masterOfSlot(await cluster.slotOf(`{g${groupOf('')}}`));
    try {
      await failoverMidCall(t, cluster.env, () => cluster.killMaster(victim));
    } finally {
      await cluster.restartKilled();
    }
  });
});

describe('Redis Cluster with a master gone for good (no replica, no full coverage)', () => {
  test('sweeps over the key groups hand out what the masters that answer hold: dead nodes and due timers are not dropped with a failing group', async () => {
    const cluster = await RedisCluster.start({ replicas: 0, fullCoverage: false });
    const target = redisTargetOf({ redisUrl: null, redisClusterNodes: cluster.seeds.split(','), redisSentinels: [], redisSentinelMaster: null, redisUsername: null, redisPassword: null })!;
    const store = new RedisStore({ target, prefix: freshPrefix(), commandTimeoutMs: 500 });
    try {
      // 48 dead nodes and 48 due grace timers, spread over the 16 groups and so over the three masters.
      const nodes = Array.from({ length: 48 }, (_, i) => `dead-${i}`);
      const timers = Array.from({ length: 48 }, (_, i) => `g${i % KEY_GROUPS}.timer-${i}`);
      for (const id of nodes) await store.beat(id, 1);
      for (const id of timers) await store.schedule('grace', id, 1);
      // The master of group 0 goes for good: its groups fail, the others answer.
      await cluster.killForGood(await cluster.masterOfSlot(await cluster.slotOf('{g0}')));
      const dead = await store.claimDeadNodes(Date.now(), 60_000);
      assert.ok(dead.length > 0 && dead.length < nodes.length, `the dead nodes of the groups that answered (${dead.length} of ${nodes.length})`);
      const due = await store.claimDue(Date.now(), 100, 60_000);
      assert.ok(due.length > 0 && due.length < timers.length, `the due timers of the groups that answered (${due.length} of ${timers.length})`);
      assert.deepEqual(await store.claimDeadNodes(Date.now(), 60_000).catch(() => []), [], 'each handed out once');
    } finally {
      await store.close();
      await cluster.stop();
    }
  });
});
