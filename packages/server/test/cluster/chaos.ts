/**
 * The chaos run, on any replicated Redis topology: three server processes,
 * twelve users calling each other at random (answering, declining, letting it
 * ring, hanging up), devices dropping and signing in again on any node, a node
 * SIGKILLed and replaced every few seconds, and the Redis master holding the
 * calls killed once (its replica promoted). For CHAOS_SECONDS (default 60, a minute in CI),
 * then everyone leaves, and once the timers have run out the invariants must
 * hold: nobody busy, online or holding a session with no device left; no
 * device rang twice for one call; every call the store knows has ended; and
 * every ended call has exactly one history record per party.
 * `chaos.test.ts` runs it behind Sentinel, `chaos-cluster.test.ts` on a Redis Cluster.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { CallId } from '@switchboard/protocol';
import { userKey } from '../../src/calls/types.js';
import { RedisStore } from '../../src/store/redis-store.js';
import type { RedisTarget } from '../../src/store/redis-target.js';
import type { HistoryEntry, SessionRecord } from '../../src/store/types.js';
import { pollUntil } from '../../../../test/support/wait.js';
import { signIn, type TestClient } from '../helpers.js';
import { freshPrefix, startNode, type NodeProcess } from './harness.js';

/** A replicated Redis for one chaos run. */
export interface ChaosBackend {
  /** The server variables that reach it. */
  env: Record<string, string>;
  /** Kills the master holding the calls, waits for its replica to take over, and starts the old one again. */
  killMaster(): Promise<void>;
  /** Where a test's own store connects, to check the invariants. */
  target(): Promise<RedisTarget>;
  stop(): Promise<void>;
}

const CHAOS_MS = Number(process.env.CHAOS_SECONDS ?? 60) * 1000;
const USERS = Array.from({ length: 12 }, (_, i) => `chaos${i}`);
const FAST = { RING_TIMEOUT_MS: '1500', RECONNECT_GRACE_MS: '1500', NODE_TIMEOUT_MS: '1000', RATE_LIMITS: 'off' };
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** A seeded generator: a failing run can be told apart from another. */
function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => ((s = (s * 1664525 + 1013904223) >>> 0) / 2 ** 32);
}

export function describeChaos(title: string, start: () => Promise<ChaosBackend>): void {
  describe(title, () => {
    let backend: ChaosBackend;
    const prefix = freshPrefix();
    const nodes: NodeProcess[] = [];
    /** Every node the run started, killed ones too: their logs explain a failure. */
    const everyNode: NodeProcess[] = [];
    let env: Record<string, string>;

    before(async () => {
      backend = await start();
      env = { ...FAST, ...backend.env, REDIS_PREFIX: prefix };
      nodes.push(...(await Promise.all([1, 2, 3].map(() => startNode(env)))));
      everyNode.push(...nodes);
    });
    after(async () => {
      await Promise.all(nodes.map((n) => n.kill('SIGKILL')));
      await backend?.stop();
    });

    test(`${CHAOS_MS / 1000} s of calls, churn, node kills and a master failover leave nothing stuck`, async (t) => {
      const seed = Number(process.env.CHAOS_SEED ?? Date.now() % 100_000);
      const random = rng(seed);
      const pick = <T>(items: readonly T[]): T => items[Math.floor(random() * items.length)]!;
      t.diagnostic(`seed ${seed} (CHAOS_SEED to replay the same choices)`);

      const devices = new Map<string, TestClient | null>(USERS.map((u) => [u, null]));
      const allClients: TestClient[] = [];
      const callIds = new Set<string>();
      /** How often each device heard `call:incoming` for each call: more than once is a double ring. */
      const rings = new Map<string, number>();
      const counts = { calls: 0, accepted: 0, rejected: 0, churned: 0, nodeKills: 0, refused: 0 };
      let stopping = false;

      const connect = async (user: string) => {
        const alive = nodes.filter((n) => n.child.exitCode === null && n.child.signalCode === null);
        if (alive.length === 0) return;
        let client: TestClient;
        try {
          client = await signIn(pick(alive), user);
        } catch {
          return; // a node going down, or Redis away: try again later
        }
        allClients.push(client);
        devices.set(user, client);
        client.socket.on('disconnect', () => devices.get(user) === client && devices.set(user, null));
        client.socket.on('call:incoming', (p) => {
          callIds.add(p.callId);
          const key = `${client.socket.id} ${p.callId}`;
          rings.set(key, (rings.get(key) ?? 0) + 1);
          const roll = random();
          if (stopping || roll > 0.8) return; // let it ring out
          setTimeout(() => {
            client.socket.emit(roll < 0.55 ? 'call:accept' : 'call:reject', { callId: p.callId });
            counts[roll < 0.55 ? 'accepted' : 'rejected']++;
          }, random() * 600);
        });
        client.socket.on('call:accepted', (p) => {
          setTimeout(() => client.socket.emit('call:end', { callId: p.callId }), 300 + random() * 1500);
        });
      };

      await Promise.all(USERS.map(connect));
      const started = Date.now();
      let masterKilled = false;
      let nextNodeKill = started + 5000;
      const chores: Promise<unknown>[] = [];
      while (Date.now() - started < CHAOS_MS) {
        const roll = random();
        const user = pick(USERS);
        const device = devices.get(user);
        if (!device) {
          chores.push(connect(user));
        } else if (roll < 0.5) {
          const callee = pick(USERS.filter((u) => u !== user));
          counts.calls++;
          chores.push(
            device.request<{ callId: string }>('call:request', { to: callee }, 5000).then(
              (ack) => (ack.ok ? callIds.add(ack.callId) : counts.refused++),
              () => counts.refused++,
            ),
          );
        } else if (roll < 0.62) {
          counts.churned++;
          devices.set(user, null);
          // Half lose their transport (a network drop), half leave on purpose.
          if (random() < 0.5) device.socket.io.engine.close();
          else device.close();
        }
        if (Date.now() >= nextNodeKill) {
          nextNodeKill = Date.now() + 6000;
          const victim = pick(nodes);
          counts.nodeKills++;
          chores.push(
            victim.kill('SIGKILL').then(async () => {
              nodes.splice(nodes.indexOf(victim), 1);
              // A node starting while the master is down exits (Redis unusable): try again, as a service manager would.
              for (let attempt = 0; attempt < 10; attempt++) {
                try {
                  const node = await startNode(env);
                  nodes.push(node);
                  everyNode.push(node);
                  return;
                } catch {
                  await sleep(1000);
                }
              }
            }),
          );
        }
        if (!masterKilled && Date.now() - started > CHAOS_MS * 0.4) {
          masterKilled = true;
          chores.push(backend.killMaster());
        }
        await sleep(100 + random() * 100);
      }
      stopping = true;
      await Promise.allSettled(chores);
      for (const client of allClients) client.close();
      t.diagnostic(JSON.stringify({ ...counts, callIds: callIds.size }));

      const store = new RedisStore({ target: await backend.target(), prefix });
      try {
        const doubleRings = [...rings].filter(([, n]) => n > 1);
        assert.deepEqual(doubleRings, [], 'no device rang twice for one call');

        // Once every grace, ring timeout and dead node has been dealt with, nothing may be left.
        let problems: string[] = [];
        let checked = 0;
        const settled = await pollUntil(
          'the invariants to hold',
          async () => {
            ({ problems, checked } = await violations(store, callIds, everyNode));
            return problems.length === 0;
          },
          30_000,
          500,
        ).catch(() => false);
        assert.ok(settled, `invariants broken:\n  ${problems.slice(0, 20).join('\n  ')}`);
        assert.ok(callIds.size > 20, `enough calls were made to mean something (${callIds.size})`);
        assert.ok(checked > 20, `enough ended calls were checked for their history records (${checked})`);
        t.diagnostic(`${checked} ended calls checked: one history record per party each`);
      } finally {
        await store.close();
      }
    });
  });
}

/** A session left behind, with what the run knows of its node: enough to tell which path missed it. */
function whyLeft(session: SessionRecord, everyNode: readonly NodeProcess[]): string {
  const owner = everyNode.find((n) => n.id === session.nodeId);
  const state = !owner ? 'a node this run never started' : owner.child.exitCode === null && owner.child.signalCode === null ? 'running' : `gone (${owner.child.signalCode ?? owner.child.exitCode})`;
  const grace = session.connected ? 'connected' : `in grace until ${session.graceUntil}`;
  const mentions = everyNode.flatMap((n) =>
    n.logs.filter((l) => JSON.stringify(l).includes(session.id) || (l.deadNode === session.nodeId)).map((l) => `${n.id}: ${JSON.stringify(l)}`),
  );
  return `${session.id.slice(0, 12)}… ${grace} on ${session.nodeId} (${state}); logs: ${mentions.slice(-6).join(' | ') || 'none'}`;
}

/** What is wrong with the store now, if anything, and how many ended calls were checked. */
async function violations(store: RedisStore, callIds: ReadonlySet<string>, everyNode: readonly NodeProcess[]): Promise<{ problems: string[]; checked: number }> {
  const problems: string[] = [];
  let checked = 0;
  const keys = USERS.map((u) => userKey('', u));
  const claims = await store.getClaims(keys);
  claims.forEach((claim, i) => claim !== null && problems.push(`${USERS[i]} is still busy with ${claim}`));
  for (const [i, key] of keys.entries()) {
    const sessions = await store.sessionsOf(key);
    if (sessions.length > 0) problems.push(`${USERS[i]} still has ${sessions.length} session(s): ${sessions.map((s) => whyLeft(s, everyNode)).join('; ')}`);
  }
  const online = await store.onlineUsers('');
  if (online.length > 0) problems.push(`online with no device: ${online.map((u) => u.id).join(', ')}`);
  const histories = new Map<string, Map<string, HistoryEntry[]>>();
  for (const [i, key] of keys.entries()) {
    const seen = new Map<string, HistoryEntry[]>();
    let cursor: string | null = null;
    do {
      const page = await store.listHistory(key, 100, cursor);
      for (const entry of page.calls) seen.set(entry.callId, [...(seen.get(entry.callId) ?? []), entry]);
      cursor = page.next;
    } while (cursor !== null);
    histories.set(USERS[i]!, seen);
  }
  for (const id of callIds) {
    const found = await store.getCall('', id as CallId);
    if (found && found.value.state !== 'ended') {
      problems.push(`call ${id.slice(0, 8)} is still ${found.value.state}`);
      continue;
    }
    if (!found) continue; // its tombstone is gone, or a failover lost it before it rang anywhere that answered
    const call = found.value;
    checked++;
    for (const party of [call.caller.userId, call.callee.userId]) {
      const records = histories.get(party)?.get(id) ?? [];
      if (records.length !== 1) {
        const each = records.map((r) => `${r.outcome}/${r.reason} ended ${r.endedAt - call.createdAt} ms after it began`).join('; ');
        problems.push(`call ${id.slice(0, 8)} (${call.outcome}, ended ${call.endedAt! - call.createdAt} ms after it began) has ${records.length} history records for ${party}: ${each}`);
      }
    }
  }
  return { problems, checked };
}
