/**
 * Measures how much Redis memory Switchboard's state takes: per session and
 * per active call (with its claims), from the `used_memory` delta of a real
 * Redis. Usage: node --conditions=source --import tsx scripts/redis-footprint.ts [sessions=20000]
 * Uses REDIS_URL or redis://127.0.0.1:6379, under a fresh prefix it deletes afterwards.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { Redis } from 'ioredis';
import type { CallId, SessionId, UserId } from '@switchboard/protocol';
import { applyCallEvent } from '../packages/server/src/calls/machine.js';
import { userKey } from '../packages/server/src/calls/types.js';
import { RedisStore } from '../packages/server/src/store/redis-store.js';

const url = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';
const sessions = Number(process.argv[2] ?? 20_000);
const prefix = `sbfoot:${randomUUID().slice(0, 8)}:`;
const admin = new Redis(url);
const store = new RedisStore({ url, prefix });

async function usedMemory(): Promise<number> {
  const info = await admin.info('memory');
  return Number(/used_memory:(\d+)/.exec(info)![1]);
}

async function drop(): Promise<void> {
  let cursor = '0';
  do {
    const [next, keys] = await admin.scan(cursor, 'MATCH', `${prefix}*`, 'COUNT', 1000);
    cursor = next;
    if (keys.length) await admin.del(...keys);
  } while (cursor !== '0');
}

const sessionIds: SessionId[] = [];
const base = await usedMemory();
const now = Date.now();
for (let i = 0; i < sessions; i += 500) {
  await Promise.all(
    Array.from({ length: Math.min(500, sessions - i) }, (_, j) => {
      const id = randomBytes(18).toString('base64url') as SessionId;
      sessionIds.push(id);
      return store.addSession({
        id,
        tenant: '',
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
      const caller = { tenant: '', userId: `user-${2 * k}` as UserId, name: `User ${2 * k}`, sessionId: sessionIds[2 * k]! };
      const callee = { tenant: '', userId: `user-${2 * k + 1}` as UserId, name: `User ${2 * k + 1}`, sessionId: sessionIds[2 * k + 1]! };
      const callId = randomUUID() as CallId;
      const ringing = applyCallEvent(
        { type: 'request', callId, tenant: '', caller, callee, calleeSessions: [callee.sessionId], media: { audio: true, video: false } },
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
          { op: 'take', key: userKey('', caller.userId), expect: null, callId },
          { op: 'take', key: userKey('', callee.userId), expect: null, callId },
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
      store.appendHistory([{ key: userKey('', `user-${(i + j) % 1000}`), entry: {
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
console.log(JSON.stringify({ sessions, calls, bytesPerSession: Math.round(perSession), bytesPerActiveCall: Math.round(perCall), bytesPerHistoryEntry: Math.round(perEntry) }));
console.log(`per history entry: ${perEntry.toFixed(0)} B`);
console.log(`per session: ${(perSession / 1024).toFixed(2)} KiB; per active call (record + 2 claims): ${(perCall / 1024).toFixed(2)} KiB`);
console.log(`1 GiB of Redis holds ~${Math.floor(2 ** 30 / (perSession * 2 + perCall)).toLocaleString('en')} concurrent calls with their 2 sessions, before history`);
await drop();
await store.close();
admin.disconnect();
