/**
 * Measures how much Redis memory Switchboard's state takes: per session and
 * per active call (with its claims), from the `used_memory` delta of a real
 * Redis. Usage: node --conditions=source --import tsx scripts/redis-footprint.ts [sessions=20000] [tenants=1]
 * Uses REDIS_URL or redis://127.0.0.1:6379, under a fresh prefix it deletes
 * afterwards; with `--cluster`, a Redis Cluster of three masters it starts
 * and stops (`used_memory` summed over the masters). Users are spread over
 * `tenants` tenants (their key groups).
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { Redis } from 'ioredis';
import { RedisCluster } from '../test/support/redis-cluster.js';
import { sessionIdPrefix } from '../packages/server/src/store/redis-keys.js';
import type { CallId, SessionId, UserId } from '@switchboard/protocol';
import { applyCallEvent } from '../packages/server/src/calls/machine.js';
import { userKey } from '../packages/server/src/calls/types.js';
import { RedisStore } from '../packages/server/src/store/redis-store.js';

const args = process.argv.slice(2).filter((a) => a !== '--cluster');
const onCluster = process.argv.includes('--cluster');
const sessions = Number(args[0] ?? 20_000);
const tenants = Number(args[1] ?? 1);
/** User 2k and 2k + 1 (a caller and its callee) share a tenant. */
const tenantOf = (user: number) => (tenants === 1 ? '' : `tenant-${Math.floor(user / 2) % tenants}`);
const prefix = `sbfoot:${randomUUID().slice(0, 8)}:`;
const cluster = onCluster ? await RedisCluster.start({ replicas: 0 }) : null;
const url = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';
const admins = cluster ? (await cluster.masters()).map((m) => new Redis(m.port)) : [new Redis(url)];
const store = cluster
  ? new RedisStore({ target: { kind: 'cluster', nodes: cluster.seeds.split(',').map((s) => ({ host: '127.0.0.1', port: Number(s.split(':')[1]) })) }, prefix })
  : new RedisStore({ url, prefix });

async function usedMemory(): Promise<number> {
  let sum = 0;
  for (const admin of admins) sum += Number(/used_memory:(\d+)/.exec(await admin.info('memory'))![1]);
  return sum;
}

async function drop(): Promise<void> {
  for (const admin of admins) {
    let cursor = '0';
    do {
      const [next, keys] = await admin.scan(cursor, 'MATCH', `${prefix}*`, 'COUNT', 1000);
      cursor = next;
      for (const key of keys) await admin.del(key);
    } while (cursor !== '0');
  }
}

const sessionIds: SessionId[] = [];
const base = await usedMemory();
const now = Date.now();
for (let i = 0; i < sessions; i += 500) {
  await Promise.all(
    Array.from({ length: Math.min(500, sessions - i) }, (_, j) => {
      const id = `${sessionIdPrefix(tenantOf(i + j))}${randomBytes(18).toString('base64url')}` as SessionId;
      sessionIds.push(id);
      return store.addSession({
        id,
        tenant: tenantOf(i + j),
        userId: `user-${i + j}` as UserId,
        name: `User ${i + j}`,
        contacts: null,
        nodeId: 'node-a',
        connected: true,
        graceUntil: null,
        resumes: 0,
        resumeWindowStart: now,
        createdAt: now,
      });
    }),
  );
}
const afterSessions = await usedMemory();
const calls = Math.floor(sessions / 2);
for (let i = 0; i < calls; i += 500) {
  await Promise.all(
    Array.from({ length: Math.min(500, calls - i) }, async (_, j) => {
      const k = i + j;
      const tenant = tenantOf(2 * k);
      const caller = { tenant, userId: `user-${2 * k}` as UserId, name: `User ${2 * k}`, sessionId: sessionIds[2 * k]! };
      const callee = { tenant, userId: `user-${2 * k + 1}` as UserId, name: `User ${2 * k + 1}`, sessionId: sessionIds[2 * k + 1]! };
      const callId = randomUUID() as CallId;
      const ringing = applyCallEvent(
        { type: 'request', callId, tenant, caller, callee, calleeSessions: [callee.sessionId], media: { audio: true, video: false } },
        { now, ringTimeoutMs: 30_000, call: undefined },
      );
      if (!ringing.ok || !ringing.call) throw new Error('request failed');
      const active = applyCallEvent({ type: 'accept', callId, by: callee }, { now, ringTimeoutMs: 30_000, call: ringing.call });
      if (!active.ok || !active.call) throw new Error('accept failed');
      await store.commitCall({
        call: active.call,
        expectVersion: 0,
        ttlMs: null,
        claims: [
          { op: 'take', key: userKey(tenant, caller.userId), expect: null, callId },
          { op: 'take', key: userKey(tenant, callee.userId), expect: null, callId },
        ],
      });
    }),
  );
}
const afterCalls = await usedMemory();
const entries = 10_000;
for (let i = 0; i < entries; i += 500) {
  await Promise.all(
    Array.from({ length: Math.min(500, entries - i) }, (_, j) =>
      store.appendHistory([{ key: userKey(tenantOf((i + j) % 1000), `user-${(i + j) % 1000}`), entry: {
        callId: randomUUID() as CallId,
        direction: 'outgoing',
        peer: { id: 'bob' as UserId, name: 'Bob' },
        outcome: 'completed',
        reason: 'hangup',
        createdAt: now,
        answeredAt: now + 2000,
        endedAt: now + 60_000,
        durationMs: 58_000,
      } }]),
    ),
  );
}
const afterHistory = await usedMemory();
const perSession = (afterSessions - base) / sessions;
const perCall = (afterCalls - afterSessions) / calls;
const perEntry = (afterHistory - afterCalls) / entries;
console.log(JSON.stringify({ topology: cluster ? 'cluster (3 masters)' : 'one Redis', tenants, sessions, calls, bytesPerSession: Math.round(perSession), bytesPerActiveCall: Math.round(perCall), bytesPerHistoryEntry: Math.round(perEntry) }));
console.log(`per history entry: ${perEntry.toFixed(0)} B`);
console.log(`per session: ${(perSession / 1024).toFixed(2)} KiB; per active call (record + 2 claims): ${(perCall / 1024).toFixed(2)} KiB`);
console.log(`1 GiB of Redis holds ~${Math.floor(2 ** 30 / (perSession * 2 + perCall)).toLocaleString('en')} concurrent calls with their 2 sessions, before history`);
await drop();
await store.close();
admins.forEach((a) => a.disconnect());
await cluster?.stop();
