/**
 * Node liveness across a store outage (a Redis failover, a master down for
 * longer than NODE_TIMEOUT_MS): no live node is declared dead because nobody
 * could beat meanwhile, while a node that really stopped still is, once the
 * store is back. Heartbeats go by the store's clock, not the node's.
 */
import assert from 'node:assert/strict';
import { afterEach, beforeEach, mock, test } from 'node:test';
import { pino } from 'pino';
import type { SessionId, UserId } from '@switchboard/protocol';
import { MemoryStore } from '../store/memory-store.js';
import type { NodeStore, SessionRecord, SessionStore } from '../store/types.js';
import type { Config } from '../config.js';
import { NodeLiveness } from './cluster.js';

const TIMEOUT_MS = 1000;

/** The memory store behind a switch: while `down`, every call rejects as Redis would. */
function switchable(inner: MemoryStore, clockSkewMs = 0): { store: NodeStore & Pick<SessionStore, 'sessionsOfNode'>; down: { on: boolean } } {
  const down = { on: false };
  const guard = async <T>(work: () => Promise<T>): Promise<T> => {
    if (down.on) throw new Error('Redis is unavailable (reconnecting)');
    return work();
  };
  return {
    down,
    store: {
      clock: () => guard(async () => (await inner.clock()) + clockSkewMs),
      beat: (id, until) => guard(() => inner.beat(id, until)),
      claimDeadNodes: (now, leaseMs) => guard(() => inner.claimDeadNodes(now, leaseMs)),
      completeDeadNode: (claim) => guard(() => inner.completeDeadNode(claim)),
      removeNode: (id) => guard(() => inner.removeNode(id)),
      sessionsOfNode: (id) => guard(() => inner.sessionsOfNode(id)),
    },
  };
}

beforeEach(() => mock.timers.enable({ apis: ['setInterval', 'Date'], now: 1_700_000_000_000 }));
afterEach(() => mock.timers.reset());

/** A node's liveness; each session it hands over is recorded in `declared` (by its dead node), or handed to `markLost`. */
function liveness(
  nodeId: string,
  store: NodeStore & Pick<SessionStore, 'sessionsOfNode'>,
  declared: string[],
  markLost: (session: SessionId, deadNode: string) => Promise<void> = async (_session, dead) => void declared.push(dead),
): NodeLiveness {
  const deps = {
    config: { nodeId, nodeTimeoutMs: TIMEOUT_MS } as Config,
    logger: pino({ level: 'silent' }),
    now: () => Date.now(),
    store,
  };
  return new NodeLiveness(deps, markLost);
}

function sessionOn(nodeId: string): SessionRecord {
  return {
    id: `s-${nodeId}` as SessionId,
    tenant: '',
    userId: `user-${nodeId}` as UserId,
    name: nodeId,
    contacts: null,
    nodeId,
    connected: true,
    graceUntil: null,
    resumes: 0,
    resumeWindowStart: 0,
    createdAt: Date.now(),
  };
}

/** node-c beat once and crashed: its session is still connected in the store. */
async function crashedNodeC(inner: MemoryStore): Promise<void> {
  await inner.beat('node-c', Date.now() + TIMEOUT_MS);
  await inner.addSession(sessionOn('node-c'));
}

/** Moves the mock clock in small steps, letting the promises each timer starts settle. */
async function advance(ms: number): Promise<void> {
  for (let t = 0; t < ms; t += 10) {
    mock.timers.tick(10);
    for (let i = 0; i < 5; i++) await Promise.resolve();
  }
}

test('a store outage five times NODE_TIMEOUT_MS long declares no live node dead; a node that stopped during it is declared dead after', async () => {
  const inner = new MemoryStore({ now: () => Date.now() });
  const { store, down } = switchable(inner);
  const declaredByA: string[] = [];
  const declaredByB: string[] = [];
  const a = liveness('node-a', store, declaredByA);
  const b = liveness('node-b', store, declaredByB);
  const c = liveness('node-c', store, []);
  await Promise.all([a.start(), b.start(), c.start()]);
  // A dead node's connected sessions are what gets handed over (`markLost`): one on each node makes every declaration show.
  for (const node of ['a', 'b', 'c']) await inner.addSession(sessionOn(`node-${node}`));
  await advance(2 * TIMEOUT_MS);
  assert.deepEqual([declaredByA, declaredByB], [[], []], 'all alive, nobody declared');

  down.on = true;
  await c.stop(); // node-c goes away for good while the store is down (its removal fails too)
  await advance(5 * TIMEOUT_MS);
  down.on = false;
  await advance(3 * TIMEOUT_MS);
  assert.ok(![...declaredByA, ...declaredByB].includes('node-a') && ![...declaredByA, ...declaredByB].includes('node-b'), `no live node declared dead: ${[...declaredByA, ...declaredByB]}`);
  assert.deepEqual([...declaredByA, ...declaredByB], ['node-c'], 'the stopped node is, once, by one of them');
  await Promise.all([a.stop(), b.stop()]);
  await inner.close();
});

test('heartbeats go by the store’s clock: a node whose own clock runs 10 s behind is not declared dead', async () => {
  const inner = new MemoryStore({ now: () => Date.now() });
  const declared: string[] = [];
  // Both talk to one store; the liveness of "slow" lives 10 s in the past by its own clock.
  const { store } = switchable(inner);
  for (const node of ['fast', 'slow']) await inner.addSession(sessionOn(node));
  const fast = liveness('fast', store, declared);
  const slowDeps = switchable(inner);
  const slow = new NodeLiveness(
    { config: { nodeId: 'slow', nodeTimeoutMs: TIMEOUT_MS } as Config, logger: pino({ level: 'silent' }), now: () => Date.now() - 10_000, store: slowDeps.store },
    async (_s: SessionId, dead: string) => void declared.push(dead),
  );
  await Promise.all([fast.start(), slow.start()]);
  await advance(4 * TIMEOUT_MS);
  assert.deepEqual(declared, []);
  await Promise.all([fast.stop(), slow.stop()]);
  await inner.close();
});

test('a dead node whose sessions cannot be read when it is claimed (its group’s master away) is claimed again, and its sessions are handed over once they can be', async () => {
  const inner = new MemoryStore({ now: () => Date.now() });
  const { store } = switchable(inner);
  const reads = { fail: true, tries: 0 };
  const flaky = {
    ...store,
    sessionsOfNode: async (id: string) => {
      reads.tries++;
      if (reads.fail) throw new Error('CLUSTERDOWN The cluster is down');
      return store.sessionsOfNode(id);
    },
  };
  const declared: string[] = [];
  const a = liveness('node-a', flaky, declared);
  await a.start();
  await crashedNodeC(inner);
  await advance(4 * TIMEOUT_MS);
  assert.ok(reads.tries >= 2, `claimed again after a failed read (${reads.tries} reads)`);
  assert.deepEqual(declared, [], 'nothing handed over while the read fails');
  reads.fail = false;
  await advance(2 * TIMEOUT_MS);
  assert.deepEqual(declared, ['node-c'], 'handed over once the read works, and only once');
  await a.stop();
  await inner.close();
});

test('a node that dies after claiming a dead node, before handing its sessions over, leaves it to be claimed again: the sessions are handed over by another', async () => {
  const inner = new MemoryStore({ now: () => Date.now() });
  const { store } = switchable(inner);
  const declaredByB: string[] = [];
  // node-a claims first and hangs in the handover forever, as a claimer SIGKILLed halfway does.
  const a = liveness('node-a', store, [], () => new Promise<void>(() => undefined));
  await a.start();
  await crashedNodeC(inner);
  await advance(2 * TIMEOUT_MS);
  assert.equal(await inner.claimDeadNodes(Date.now(), 1).then((c) => c.length), 0, 'node-c is leased to node-a');
  // node-a dies (its timers stop, its heartbeat entry stays and goes stale) and node-b comes up.
  await a.stop();
  const b = liveness('node-b', store, declaredByB);
  await b.start();
  await advance(4 * TIMEOUT_MS);
  assert.deepEqual(declaredByB, ['node-c'], 'node-b handed node-c\'s session over once node-a\'s lease ran out');
  await advance(4 * TIMEOUT_MS);
  assert.deepEqual(declaredByB, ['node-c'], 'and only once: the completed claim forgot node-c');
  await b.stop();
  await inner.close();
});

test('a store that fails between the claim of a dead node and its handover (a failover) loses neither the node nor its sessions', async () => {
  const inner = new MemoryStore({ now: () => Date.now() });
  const { store, down } = switchable(inner);
  // The store goes away right after a claim hands node-c out: reading its sessions fails, and so does every other write for a while.
  const failed = { once: false };
  const failing = {
    ...store,
    claimDeadNodes: async (now: number, leaseMs: number) => {
      const claims = await store.claimDeadNodes(now, leaseMs);
      if (claims.some((c) => c.nodeId === 'node-c') && !failed.once) {
        failed.once = true;
        down.on = true;
      }
      return claims;
    },
  };
  const declared: string[] = [];
  const a = liveness('node-a', failing, declared);
  await a.start();
  await crashedNodeC(inner);
  await advance(2 * TIMEOUT_MS);
  assert.ok(failed.once, 'node-c was claimed, then the store went down');
  await advance(3 * TIMEOUT_MS);
  down.on = false;
  await advance(6 * TIMEOUT_MS);
  assert.deepEqual(declared, ['node-c'], 'handed over once the store was back, and only once');
  await a.stop();
  await inner.close();
});
