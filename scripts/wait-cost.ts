/**
 * What `WAIT 1` would cost the commits that matter: the store's call commit
 * (COMMIT_CALL, one script) on a real master with one replica, with and
 * without a `WAIT 1 <timeout>` after it (the commit returns only once the
 * replica has it, so a failover cannot lose it). Starts its own master,
 * replica and sentinels (test/support/sentinel.ts), stops them by PID.
 *
 * Usage: node --conditions=source --import tsx scripts/wait-cost.ts [commits=3000] [concurrency=1,16]
 */
import { randomUUID } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import type { CallId, SessionId, UserId } from '@switchboard/protocol';
import { NO_FLAGS, type CallRecord } from '../packages/server/src/calls/types.js';
import { RedisStore } from '../packages/server/src/store/redis-store.js';
import { redisTargetOf, resolveRedisTarget } from '../packages/server/src/store/redis-target.js';
import { SENTINEL_MASTER, SentinelGroup } from '../test/support/sentinel.js';

const COMMITS = Number(process.argv[2] ?? 3000);
const CONCURRENCY = (process.argv[3] ?? '1,16').split(',').map(Number);
const WAIT_TIMEOUT_MS = 100;

function callRecord(id: string): CallRecord {
  const party = (user: string) => ({ userId: user as UserId, name: user, sessionId: `${user}-s` as SessionId, flags: { ...NO_FLAGS }, reconnecting: false });
  return {
    id: id as CallId,
    tenant: '',
    state: 'ringing',
    caller: party(`a-${id}`),
    callee: party(`b-${id}`),
    ringing: [`b-${id}-s` as SessionId],
    media: { audio: true, video: false },
    createdAt: Date.now(),
    answeredAt: null,
    endedAt: null,
    ringDeadline: Date.now() + 30_000,
    outcome: null,
    endReason: null,
    endedBy: null,
  };
}

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

async function run(store: RedisStore, wait: boolean, concurrency: number): Promise<{ perSecond: number; p50: number; p99: number; replicated: number }> {
  const latencies: number[] = [];
  let next = 0;
  let replicated = 0;
  const client = (store as unknown as { client: import('ioredis').Redis }).client;
  const started = performance.now();
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next < COMMITS) {
        next++;
        const t = performance.now();
        const ok = await store.commitCall({ call: callRecord(randomUUID()), expectVersion: 0, claims: [], ttlMs: 60_000 });
        if (!ok) throw new Error('a commit was refused');
        if (wait && (await client.wait(1, WAIT_TIMEOUT_MS)) >= 1) replicated++;
        latencies.push(performance.now() - t);
      }
    }),
  );
  const seconds = (performance.now() - started) / 1000;
  latencies.sort((a, b) => a - b);
  return { perSecond: COMMITS / seconds, p50: percentile(latencies, 50), p99: percentile(latencies, 99), replicated };
}

const group = await SentinelGroup.start();
try {
  const target = await resolveRedisTarget(
    redisTargetOf({ redisUrl: null, redisClusterNodes: [], redisSentinels: group.sentinelList.split(','), redisSentinelMaster: SENTINEL_MASTER, redisUsername: null, redisPassword: null }),
  );
  const store = new RedisStore({ target: target!, prefix: `sbwait:${randomUUID().slice(0, 8)}:` });
  await run(store, false, 4); // warm up
  console.log(`WAIT 1 after COMMIT_CALL: ${COMMITS} commits each, master + 1 replica on this machine (loopback)`);
  for (const concurrency of CONCURRENCY) {
    for (const wait of [false, true]) {
      const r = await run(store, wait, concurrency);
      console.log(
        `  concurrency ${String(concurrency).padStart(2)} ${wait ? 'with WAIT 1   ' : 'without WAIT  '}: ${r.perSecond.toFixed(0)} commits/s, p50 ${r.p50.toFixed(3)} ms, p99 ${r.p99.toFixed(3)} ms${wait ? `, acknowledged by the replica ${r.replicated}/${COMMITS}` : ''}`,
      );
    }
  }
  await store.close();
} finally {
  await group.stop();
}
