/**
 * Runs the `CallStore` contract against the memory store, and against the
 * Redis store on a real Redis: REDIS_URL when set, else 127.0.0.1:6379 when it
 * answers, else a private `redis-server` started for this file. Every Redis
 * test works under a fresh random key prefix, deleted at the end. Then the
 * Redis store's own promises: key lifetimes and behaviour during an outage
 * (always on a private server, which these tests stop and start).
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import type { Socket } from 'node:net';
import { after, before, describe, test } from 'node:test';
import { Redis } from 'ioredis';
import type { CallId, SessionId, UserId } from '@switchboard/protocol';
import { NO_FLAGS, ringTimerId, userKey } from '../src/calls/types.js';
import { groupOf, sessionIdPrefix } from '../src/store/redis-keys.js';
import type { CallRecord } from '../src/calls/types.js';
import { describeCallStore } from './store-contract.js';
import { freePort } from '../../../test/support/ports.js';
import { OwnedRedis, recordCommands, sharedRedis } from '../../../test/support/redis.js';
import { pollUntil as waitFor } from '../../../test/support/wait.js';
import { MemoryStore } from '../src/store/memory-store.js';
import { failFastOptions, RedisStore } from '../src/store/redis-store.js';
import { closeRedis, openRedis } from '../src/store/redis-target.js';
import type { HistoryAppend, SessionRecord } from '../src/store/types.js';


describeCallStore('MemoryStore', async () => {
  const store = new MemoryStore();
  return { store, cleanup: () => store.close() };
});

test('the memory store refuses a commit with messages to publish: every delivery of one process is its own', async () => {
  const store = new MemoryStore();
  try {
    await assert.rejects(
      store.commitCall({ call: call('ringing'), expectVersion: 0, claims: [], ttlMs: null, publish: [{ channel: 'c', before: '[1,', after: ']' }] }),
      /the memory store publishes nothing/,
    );
    assert.equal(await store.getCall(TENANT, 'c1' as CallId), undefined, 'nothing written');
  } finally {
    await store.close();
  }
});


async function deleteKeys(client: Redis, pattern: string): Promise<void> {
  let cursor = '0';
  do {
    const [next, keys] = await client.scan(cursor, 'MATCH', pattern, 'COUNT', 1000);
    cursor = next;
    if (keys.length > 0) await client.unlink(...keys);
  } while (cursor !== '0');
}

async function keysUnder(client: Redis, prefix: string): Promise<Map<string, number>> {
  const found = new Map<string, number>();
  let cursor = '0';
  do {
    const [next, keys] = await client.scan(cursor, 'MATCH', `${prefix}*`, 'COUNT', 1000);
    cursor = next;
    for (const key of keys) found.set(key.slice(prefix.length), await client.pttl(key));
  } while (cursor !== '0');
  return found;
}

const TENANT = 'acme';
const alice = userKey(TENANT, 'alice');
const bob = userKey(TENANT, 'bob');
/** The key group (hash tag) of TENANT's keys, after the prefix. */
const G = `{g${groupOf(TENANT)}}:`;
/** A session id of TENANT, as the server makes them. */
const sid = (id: string) => `${sessionIdPrefix(TENANT)}${id}` as SessionId;
/** The ring timer of TENANT's call c1, and its member in the timers set. */
const RING_C1 = ringTimerId(TENANT, 'c1' as CallId);

function call(state: CallRecord['state']): CallRecord {
  const party = (id: string) => ({ userId: id as UserId, name: id, sessionId: `${id}-s` as SessionId, flags: { ...NO_FLAGS }, reconnecting: false });
  return {
    id: 'c1' as CallId,
    tenant: TENANT,
    state,
    caller: party('alice'),
    callee: party('bob'),
    ringing: [],
    media: { audio: true, video: false },
    createdAt: 1,
    answeredAt: null,
    endedAt: state === 'ended' ? 2 : null,
    ringDeadline: 3,
    outcome: state === 'ended' ? 'cancelled' : null,
    endReason: null,
    endedBy: null,
  };
}

/** The history entries of `call('ended')`, one per party. */
function endedEntries(): HistoryAppend[] {
  const entry = { callId: 'c1' as CallId, outcome: 'cancelled', reason: 'cancelled', createdAt: 1, answeredAt: null, endedAt: 2, durationMs: 0 } as const;
  return [
    { key: alice, entry: { ...entry, direction: 'outgoing', peer: { id: 'bob' as UserId, name: 'bob' } } },
    { key: bob, entry: { ...entry, direction: 'incoming', peer: { id: 'alice' as UserId, name: 'alice' }, outcome: 'missed' } },
  ];
}

function session(id: string, userId: string, patch: Partial<SessionRecord> = {}): SessionRecord {
  return {
    id: sid(id),
    tenant: TENANT,
    userId: userId as UserId,
    name: userId,
    contacts: null,
    nodeId: 'n1',
    connected: true,
    graceUntil: null,
    resumes: 0,
    resumeWindowStart: 0,
    createdAt: 0,
    ...patch,
  };
}

describe('MemoryStore tombstones', () => {
  test('ended calls are kept as long as their TTL, but at most maxTombstones of them, the oldest forgotten first; live calls are never dropped', async () => {
    let now = 1_000_000;
    const store = new MemoryStore({ maxTombstones: 3, now: () => now });
    try {
      const ids = ['t1', 't2', 't3', 't4', 't5'].map((id) => id as CallId);
      const live = { ...call('ringing'), id: 'live' as CallId };
      assert.ok(await store.commitCall({ call: live, expectVersion: 0, claims: [], ttlMs: null }));
      for (const id of ids) {
        assert.ok(await store.commitCall({ call: { ...call('ended'), id }, expectVersion: 0, claims: [], ttlMs: 60_000 }));
      }
      const kept = async () => (await Promise.all(ids.map((id) => store.getCall(TENANT, id)))).map((c) => c?.value.id ?? null);
      assert.deepEqual(await kept(), [null, null, 't3', 't4', 't5'], 'the two oldest went to make room');
      assert.deepEqual((await store.getCall(TENANT, 't5' as CallId))?.value, { ...call('ended'), id: 't5' }, 'a tombstone reads back whole');
      assert.equal((await store.getCall(TENANT, live.id))?.value.state, 'ringing', 'a live call is not a tombstone');
      now += 60_001;
      assert.deepEqual(await kept(), [null, null, null, null, null], 'and all are gone after their TTL');
      assert.equal((await store.getCall(TENANT, live.id))?.version, 1);
    } finally {
      await store.close();
    }
  });
});

describe('RedisStore on a real Redis', () => {
  const runPrefix = `sbtest:${randomBytes(8).toString('hex')}:`;
  let url = '';
  let shared: Awaited<ReturnType<typeof sharedRedis>> | undefined;
  let admin: Redis;
  let stores = 0;
  const freshPrefix = () => `${runPrefix}${++stores}:`;

  before(async () => {
    shared = await sharedRedis();
    url = shared.url;
    admin = new Redis(url, { maxRetriesPerRequest: 1 });
  });
  after(async () => {
    if (admin) {
      await deleteKeys(admin, `${runPrefix}*`);
      assert.equal((await keysUnder(admin, runPrefix)).size, 0);
      await admin.quit();
    }
    await shared?.release();
  });

  describeCallStore('RedisStore', async () => {
    const prefix = freshPrefix();
    const store = new RedisStore({ url, prefix });
    return {
      store,
      cleanup: async () => {
        await store.close();
        await deleteKeys(admin, `${prefix}*`);
      },
    };
  });

  test('a store on a client it was given leaves that client open on close', async () => {
    const prefix = freshPrefix();
    const store = new RedisStore({ client: admin, prefix });
    await store.schedule('ring', RING_C1, 5);
    assert.equal(await admin.zscore(`${prefix}${G}timers`, `ring:${RING_C1}`), '5');
    await store.close();
    assert.equal(await admin.ping(), 'PONG');
  });

  test("a connection's commands of one turn leave in one write, and no auto-pipeline holds them", async () => {
    // Even when asked for auto-pipelining: openRedis never turns it on.
    const client = openRedis({ kind: 'single', url }, { ...failFastOptions(), enableAutoPipelining: true });
    const prefix = freshPrefix();
    try {
      if (client.status !== 'ready') await once(client, 'ready');
      const socket = client.stream as Socket;
      for (let turn = 0; turn < 20; turn++) {
        const replies = Promise.all([client.set(`${prefix}a`, String(turn)), client.incr(`${prefix}n`), client.get(`${prefix}a`)]);
        assert.equal(socket.writableCorked, 1, 'the socket is held for the rest of the turn');
        assert.ok(socket.writableLength > 0, 'the three commands wait in it, to leave in one write');
        assert.equal(client.autoPipelineQueueSize, 0, 'not in a Pipeline (whose batch V8 would promote)');
        assert.deepEqual(await replies, ['OK', turn + 1, String(turn)], 'each its own answer, in order');
        assert.equal(socket.writableCorked, 0, 'let go once the turn is over');
      }
    } finally {
      await client.del(`${prefix}a`, `${prefix}n`);
      await closeRedis(client);
    }
  });

  test('a prefix with a hash tag is refused: the keys carry their own', () => {
    assert.throws(() => new RedisStore({ client: admin, prefix: `${runPrefix}{${++stores}}:` }), /hash tag/);
  });

  test('a commit with its timer, and the history of an ended call, take one round trip each', async () => {
    const prefix = freshPrefix();
    const client = new Redis(url, { ...failFastOptions(), enableAutoPipelining: false });
    const sent = recordCommands(client);
    const store = new RedisStore({ client, prefix });
    const releases = [alice, bob].map((key) => ({ op: 'release' as const, key, callId: 'c1' as CallId }));
    try {
      // The first use of a script on a server may cost a NOSCRIPT answer and an EVAL: load both.
      await store.commitCall({ call: { ...call('ringing'), id: 'warm-up' as CallId }, expectVersion: 0, claims: [], ttlMs: 1000 });
      await store.appendHistory([{ key: userKey(TENANT, 'warm-up'), entry: endedEntries()[0]!.entry }]);

      sent.length = 0;
      const claims = [alice, bob].map((key) => ({ op: 'take' as const, key, expect: null, callId: 'c1' as CallId }));
      const ring = { op: 'schedule' as const, kind: 'ring' as const, id: RING_C1, dueAt: 1_700_000_030_000 };
      assert.equal(await store.commitCall({ call: call('ringing'), expectVersion: 0, claims, ttlMs: null, timer: ring }), true);
      assert.deepEqual(sent, ['evalsha']);
      assert.equal(await admin.zscore(`${prefix}${G}timers`, `ring:${RING_C1}`), '1700000030000');
      assert.equal(await admin.get(`${prefix}${G}claim:${bob}`), 'c1');

      sent.length = 0;
      const unring = { op: 'unschedule' as const, kind: 'ring' as const, id: RING_C1 };
      assert.equal(await store.commitCall({ call: call('ended'), expectVersion: 1, claims: releases, ttlMs: 300_000, timer: unring }), true);
      await store.appendHistory(endedEntries());
      await store.appendHistory([]);
      assert.deepEqual(sent, ['evalsha', 'evalsha'], 'one commit, one append of both entries, nothing for an empty list');
      assert.equal(await admin.zscore(`${prefix}${G}timers`, `ring:${RING_C1}`), null);
      for (const key of [alice, bob]) {
        assert.equal(await admin.zcard(`${prefix}${G}history:${key}`), 1);
        assert.ok((await admin.pttl(`${prefix}${G}history:${key}`)) > 0, 'each history touched gets its retention');
      }
      const [forAlice] = (await store.listHistory(alice, 10, null)).calls;
      const [forBob] = (await store.listHistory(bob, 10, null)).calls;
      assert.deepEqual([forAlice, forBob], endedEntries().map((e) => e.entry));
    } finally {
      await store.close();
      await client.quit();
    }
  });

  test("a user's sessions are read in one round trip: SORT's GET, or a script for a prefix its pattern cannot express, alike", async () => {
    for (const [prefix, expected] of [
      [freshPrefix(), ['sort_ro']],
      [`${runPrefix}*${++stores}:`, ['evalsha']],
    ] as const) {
      const client = new Redis(url, { ...failFastOptions(), enableAutoPipelining: false });
      const sent = recordCommands(client);
      const store = new RedisStore({ client, prefix });
      try {
        const records = [session('s1', 'alice'), session('s2', 'alice', { connected: false, graceUntil: 1_700_000_060_000 }), session('s3', 'bob')];
        for (const r of records) await store.addSession(r);
        await client.del(`${prefix}${G}session:${sid('s2')}`);
        sent.length = 0;
        const found = await store.sessionsOf(alice);
        assert.deepEqual(sent.slice(0, expected.length), expected, prefix);
        assert.ok(!sent.includes('smembers') && !sent.includes('mget'), `no separate set and record reads: ${sent.join(', ')}`);
        assert.deepEqual(found, [records[0]], 'the records the set still names, without the expired one');
        assert.deepEqual(await client.smembers(`${prefix}${G}user-sessions:${alice}`), [sid('s1')], 'the expired member is pruned');
        assert.deepEqual(await store.sessionsOf(userKey(TENANT, 'nobody')), []);
      } finally {
        await store.close();
        await client.quit();
      }
    }
  });

  test('a commit publishes its messages, in order, if and only if it is written (a stale commit publishes nothing)', async () => {
    const prefix = freshPrefix();
    const store = new RedisStore({ url, prefix });
    const sub = new Redis(url);
    const channel = `${prefix}io#/#s:{g${groupOf(TENANT)}}${sid('s1')}#`;
    const heard: string[] = [];
    sub.on('smessage', (_channel: string, message: string) => heard.push(message));
    try {
      await sub.ssubscribe(channel);
      const takes = [alice, bob].map((key) => ({ op: 'take' as const, key, expect: null, callId: 'c1' as CallId }));
      const commit = (message: string, expectVersion: number, state: CallRecord['state']) =>
        store.commitCall({
          call: call(state),
          expectVersion,
          claims: expectVersion === 0 ? takes : [],
          ttlMs: null,
          publish: [{ channel, before: `[${message},"a",`, after: ']' }, { channel, before: `[${message},"b",`, after: ']' }],
        });
      assert.equal(await commit('1', 0, 'ringing'), true);
      assert.equal(await commit('"stale"', 0, 'ringing'), false, 'the call exists: not written');
      assert.equal(await commit('2', 1, 'active'), true);
      await waitFor('the messages of both commits', () => heard.length >= 4);
      // Each with the call in it as that commit wrote it.
      assert.deepEqual(
        heard.map((m) => JSON.parse(m) as [number, string, CallRecord]).map(([n, part, written]) => `${n}${part} ${written.state}`),
        ['1a ringing', '1b ringing', '2a active', '2b active'],
      );
      assert.deepEqual(JSON.parse(heard[3]!), [2, 'b', call('active')]);
      await assert.rejects(
        store.commitCall({ call: call('ended'), expectVersion: 2, claims: [], ttlMs: 1000, publish: [{ channel: `${prefix}io#/#s:{g${(groupOf(TENANT) + 1) % 16}}x#`, before: '[', after: ']' }] }),
        /not in its key group/,
      );
    } finally {
      sub.disconnect();
      await store.close();
    }
  });

  test('a batch with several entries of one user trims that history to historyLimit once all are in', async () => {
    const prefix = freshPrefix();
    const store = new RedisStore({ url, prefix, historyLimit: 3 });
    try {
      const [ofAlice, ofBob] = endedEntries();
      const batch = Array.from({ length: 5 }, (_, i) => [
        { key: alice, entry: { ...ofAlice!.entry, callId: `a${i}` as CallId } },
        { key: bob, entry: { ...ofBob!.entry, callId: `b${i}` as CallId } },
      ]).flat();
      await store.appendHistory(batch);
      assert.deepEqual((await store.listHistory(alice, 10, null)).calls.map((c) => c.callId), ['a4', 'a3', 'a2']);
      assert.deepEqual((await store.listHistory(bob, 10, null)).calls.map((c) => c.callId), ['b4', 'b3', 'b2']);
      assert.equal(await admin.get(`${prefix}${G}history-seq`), '10', 'one sequence number per entry');
    } finally {
      await store.close();
    }
  });

  describe('key lifetimes', () => {
    test('while a call rings nothing expires; once it is over only TTL-bound keys and the history sequence remain', async () => {
      const prefix = freshPrefix();
      const store = new RedisStore({ url, prefix });
      try {
        await store.addSession(session('s1', 'alice'));
        await store.addSession(session('s2', 'bob'));
        const claims = [alice, bob].map((key) => ({ op: 'take' as const, key, expect: null, callId: 'c1' as CallId }));
        const timer = { op: 'schedule' as const, kind: 'ring' as const, id: RING_C1, dueAt: Date.now() + 30_000 };
        assert.equal(await store.commitCall({ call: call('ringing'), expectVersion: 0, claims, ttlMs: null, timer }), true);

        const ringing = await keysUnder(admin, prefix);
        assert.deepEqual(
          [...ringing.keys()].sort(),
          [
            `call:${TENANT.length}:${TENANT}:c1`,
            `claim:${alice}`,
            `claim:${bob}`,
            'node-sessions:n1',
            `online:${TENANT.length}:${TENANT}`,
            `session:${sid('s1')}`,
            `session:${sid('s2')}`,
            'timers',
            `user-sessions:${alice}`,
            `user-sessions:${bob}`,
          ]
            .map((k) => G + k)
            .sort(),
        );
        assert.ok([...ringing.values()].every((ttl) => ttl === -1), 'a ringing call and its parts have no TTL: their owners end them');

        const releases = [alice, bob].map((key) => ({ op: 'release' as const, key, callId: 'c1' as CallId }));
        assert.equal(await store.commitCall({ call: call('ended'), expectVersion: 1, claims: releases, ttlMs: 300_000 }), true);
        const lease = await store.claimTimer('ring', RING_C1, Date.now() + 30_000, 10_000);
        assert.ok(lease);
        await store.completeTimer(lease);
        await store.appendHistory(endedEntries());
        assert.equal((await store.removeSession(sid('s1')))?.last, true);
        assert.equal((await store.removeSession(sid('s2')))?.last, true);

        const over = await keysUnder(admin, prefix + G);
        assert.deepEqual([...over.keys()].sort(), [`call:${TENANT.length}:${TENANT}:c1`, `history:${alice}`, `history:${bob}`, 'history-seq'].sort());
        assert.deepEqual([...(await keysUnder(admin, prefix)).keys()].sort(), [...over.keys()].map((k) => G + k).sort(), 'nothing outside the group');
        const tombstone = over.get(`call:${TENANT.length}:${TENANT}:c1`)!;
        assert.ok(tombstone > 290_000 && tombstone <= 300_000, `tombstone TTL ${tombstone}`);
        assert.ok(over.get(`history:${alice}`)! > 0 && over.get(`history:${bob}`)! > 0, 'history expires after its retention');
        assert.equal(over.get('history-seq'), -1, 'the cursor sequence is the one key kept for good');
      } finally {
        await store.close();
      }
    });

    test('a disconnected session carries a safety TTL past its grace, dropped when it reconnects', async () => {
      const prefix = freshPrefix();
      const store = new RedisStore({ url, prefix, sessionSafetyMs: 60_000 });
      try {
        await store.addSession(session('s1', 'alice'));
        assert.equal(await admin.pttl(`${prefix}${G}session:${sid('s1')}`), -1);
        const graceUntil = Date.now() + 30_000;
        await store.updateSession(session('s1', 'alice', { connected: false, graceUntil }));
        const ttl = await admin.pttl(`${prefix}${G}session:${sid('s1')}`);
        assert.ok(ttl > 80_000 && ttl <= 90_000, `session TTL ${ttl}`);
        await store.updateSession(session('s1', 'alice', { connected: true, graceUntil: null }));
        assert.equal(await admin.pttl(`${prefix}${G}session:${sid('s1')}`), -1);
      } finally {
        await store.close();
      }
    });

    test('a session whose key expired is pruned from its user and from presence', async () => {
      const prefix = freshPrefix();
      const store = new RedisStore({ url, prefix, sessionSafetyMs: 0 });
      try {
        const lapse = (id: string, userId: string) =>
          store.updateSession(session(id, userId, { connected: false, graceUntil: Date.now() + 100 }));
        await store.addSession(session('a1', 'alice'));
        await store.addSession(session('a2', 'alice'));
        await store.addSession(session('b1', 'bob'));
        await store.addSession(session('c1', 'carol'));
        await Promise.all([lapse('a1', 'alice'), lapse('b1', 'bob'), lapse('c1', 'carol')]);
        await waitFor('the lapsed session keys to expire', async () => (await admin.exists(`${prefix}${G}session:${sid('a1')}`, `${prefix}${G}session:${sid('b1')}`, `${prefix}${G}session:${sid('c1')}`)) === 0);

        assert.deepEqual((await store.sessionsOfNode('n1')).map((s) => s.id), [sid('a2')]);
        assert.deepEqual(await admin.smembers(`${prefix}${G}node-sessions:n1`), [sid('a2')], 'expired sessions are pruned from their node set');
        assert.deepEqual((await store.sessionsOf(alice)).map((s) => s.id), [sid('a2')]);
        assert.deepEqual(await store.sessionsOf(bob), []);
        assert.deepEqual((await store.onlineUsers(TENANT)).map((u) => u.id).sort(), ['alice', 'carol']);
        assert.deepEqual(await store.addSession(session('c2', 'carol')), { first: true }, 'the expired session does not count');
        assert.deepEqual(await store.removeSession(sid('a2')), { session: session('a2', 'alice'), last: true });
        assert.deepEqual(await admin.exists(`${prefix}${G}user-sessions:${alice}`, `${prefix}${G}user-sessions:${bob}`), 0);
      } finally {
        await store.close();
      }
    });
  });
});

describe('RedisStore while Redis is away', () => {
  let server: OwnedRedis;
  before(async () => {
    server = await OwnedRedis.start({ persist: false });
  });
  after(async () => {
    await server?.destroy();
  });

  test('a store whose Redis never answers rejects within its command timeout', async () => {
    const store = new RedisStore({ url: `redis://127.0.0.1:${await freePort()}`, commandTimeoutMs: 300 });
    try {
      const started = Date.now();
      await assert.rejects(store.ping());
      await assert.rejects(store.getCall(TENANT, 'c1' as CallId));
      assert.ok(Date.now() - started < 2000, `took ${Date.now() - started} ms`);
    } finally {
      await store.close();
    }
  });

  test('commands fail fast while Redis is down, and the store recovers by itself when it returns', async () => {
    const store = new RedisStore({ url: server.url, prefix: 'outage:', commandTimeoutMs: 500 });
    try {
      assert.equal(await store.commitCall({ call: call('ringing'), expectVersion: 0, claims: [], ttlMs: null }), true);
      await store.ping();

      await server.stop('SIGKILL');
      for (const attempt of [() => store.ping(), () => store.getCall(TENANT, 'c1' as CallId), () => store.commitCall({ call: call('active'), expectVersion: 1, claims: [], ttlMs: null })]) {
        const started = Date.now();
        await assert.rejects(attempt());
        assert.ok(Date.now() - started < 1500, `a command took ${Date.now() - started} ms to fail`);
      }

      await server.resume();
      await waitFor('the store to reconnect', () => store.ping().then(() => true, () => false), 15_000);
      // The restarted server persisted nothing: the call is gone and may be made again.
      assert.equal(await store.getCall(TENANT, 'c1' as CallId), undefined);
      assert.equal(await store.commitCall({ call: call('ringing'), expectVersion: 0, claims: [], ttlMs: null }), true);
    } finally {
      await store.close();
    }
  });
});
