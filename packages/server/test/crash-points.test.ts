/**
 * A node can die between any two of its store writes (SIGKILL, an OOM, a
 * machine gone), and what it wrote so far is all the other nodes will ever
 * see. So at every such point the store must hold something the survivors
 * can finish: a session that lost its transport is either still `connected`
 * (the dead node's sessions are handed over by whoever claims it: NodeLiveness)
 * or in its grace **with a grace timer** that will end it. A session in grace
 * with no timer would stay, online, for the store's 24 h safety TTL.
 *
 * And a call whose party's session is gone must have ended: the grace timer
 * that ends a call finds nothing to do once the session is gone.
 *
 * The test kills the node at each write in turn of a session's loss, grace
 * expiry, resume and sign-out: the store stops answering at that write (it never
 * returns, as for a process that is gone) and the state is read from the store
 * directly.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { CallId, SessionId } from '@switchboard/protocol';
import { MemoryStore } from '../src/store/memory-store.js';
import type { CallStore, SessionRecord } from '../src/store/types.js';
import { establish, openSocket, signIn, startTestServer, tokenFor, type TestClient } from './helpers.js';
import { pollUntil } from '../../../test/support/wait.js';

/** The store calls that write. */
const WRITES = new Set<keyof CallStore>(['addSession', 'updateSession', 'removeSession', 'schedule', 'unschedule', 'commitCall', 'commitCallCounting', 'appendHistory', 'saveQuality']);

/** A memory store that, once armed, stops answering from its `at`-th write on: the node died there. */
class DiesAtWrite {
  private writes = 0;
  private at = Number.POSITIVE_INFINITY;
  /** Settles when the node dies. */
  died!: Promise<string>;
  private reportDeath!: (method: string) => void;
  private readonly hung: (() => void)[] = [];
  readonly store: CallStore;

  constructor(readonly inner: MemoryStore) {
    this.store = new Proxy(inner, {
      get: (target, prop, receiver) => {
        const value = Reflect.get(target, prop, receiver) as unknown;
        if (typeof value !== 'function') return value;
        return (...args: unknown[]) => {
          const isWrite = WRITES.has(prop as keyof CallStore);
          if (isWrite && ++this.writes === this.at) this.reportDeath(String(prop));
          if (this.writes >= this.at) return new Promise((_resolve, reject) => this.hung.push(() => reject(new Error('the node is dead'))));
          return (value as (...a: unknown[]) => unknown).apply(target, args);
        };
      },
    });
  }

  /** The node dies at the `at`-th write from now. */
  arm(at: number): void {
    this.writes = 0;
    this.at = at;
    this.died = new Promise((resolve) => (this.reportDeath = resolve));
  }

  /** After the check: every hung call fails, so the server can be closed. */
  release(): void {
    this.at = Number.POSITIVE_INFINITY;
    this.hung.splice(0).forEach((fail) => fail());
  }
}

/** What is wrong with a session the survivors must finish, if anything. */
async function unfinishable(store: MemoryStore, id: SessionId): Promise<string | null> {
  const session: SessionRecord | undefined = await store.getSession(id);
  if (!session || session.connected) return null; // gone, or handed over when its node is claimed dead
  // In grace: its grace timer must be in the store (due by the end of the grace, or leased by a claimer that died: due when the lease runs out).
  const due = await store.claimDue(Number.MAX_SAFE_INTEGER - 1, 1000, 1);
  return due.some((t) => t.kind === 'grace' && t.id === id) ? null : `session in grace until ${session.graceUntil} with no grace timer`;
}

/** What the survivors could not finish: the lost session, and a call that has not ended whose party has no session to end it. */
async function stuck(store: MemoryStore, lost: SessionId, callId: string | null): Promise<string[]> {
  const problems: string[] = [];
  const call = callId === null ? undefined : (await store.getCall('', callId as CallId))?.value;
  if (call && call.state !== 'ended') {
    for (const party of [call.caller, call.callee]) {
      if (party.sessionId === null) continue;
      if (!(await store.getSession(party.sessionId))) problems.push(`${party.userId}'s session is gone, its call still ${call.state}`);
    }
  }
  const session = await unfinishable(store, lost);
  if (session) problems.push(session);
  return problems;
}

interface Scenario {
  name: string;
  /** Before the node is armed to die: a call to lose, or not. */
  setup(alice: TestClient, bob: TestClient): Promise<string | null>;
  /** What alice does once it is armed (a new socket it opens is returned, to be closed with the test). */
  act(alice: TestClient, server: { url: string }): Promise<TestClient | void> | void;
  /** Settles once the whole of it is written (when the node did not die first). */
  handled(alice: TestClient, bob: TestClient, inner: MemoryStore): Promise<unknown>;
}

const lostInGrace = async (alice: TestClient, inner: MemoryStore) =>
  pollUntil('the loss to be written', async () => (await inner.getSession(alice.auth!.sessionId))?.connected === false, 5000, 20);

/** A call whose caller, alice, lost her transport: she is in her grace, and bob has heard it. */
const inGraceMidCall = async (alice: TestClient, bob: TestClient) => {
  const callId = await establish(alice, bob, 'bob');
  alice.socket.io.engine.close();
  await bob.next('call:reconnecting');
  return callId;
};

const SCENARIOS: Scenario[] = [
  {
    name: 'a transport loss (idle)',
    setup: async () => null,
    act: (alice) => void alice.socket.io.engine.close(),
    handled: (alice, _bob, inner) => lostInGrace(alice, inner),
  },
  {
    name: 'a transport loss mid-call',
    setup: (alice, bob) => establish(alice, bob, 'bob'),
    act: (alice) => void alice.socket.io.engine.close(),
    handled: (_alice, bob) => bob.next('call:reconnecting'),
  },
  {
    name: 'the grace running out mid-call',
    setup: inGraceMidCall,
    act: () => undefined, // the grace timer does it
    handled: (_alice, bob) => bob.next('call:ended'),
  },
  {
    name: 'a resume mid-call',
    setup: inGraceMidCall,
    act: async (alice, server) => {
      const back = await openSocket(server, { via: 'none' });
      back.socket.emit('reconnect:attempt', { token: await tokenFor('alice'), sessionId: alice.auth!.sessionId });
      return back;
    },
    handled: (_alice, bob) => bob.next('call:reconnected'),
  },
  {
    name: 'a sign-out mid-call',
    setup: (alice, bob) => establish(alice, bob, 'bob'),
    act: (alice) => alice.close(),
    handled: (_alice, bob) => bob.next('call:ended'),
  },
];

describe('a node that dies at any store write of a session\'s end leaves what it wrote finishable by the nodes that remain', () => {
  for (const scenario of SCENARIOS) {
    test(`${scenario.name}: at every write, the session is connected, in grace with its timer, or gone, and its call has its sessions or has ended`, async (t) => {
      const deaths: string[] = [];
      for (let at = 1; at <= 12; at++) {
        const dying = new DiesAtWrite(new MemoryStore());
        const server = await startTestServer({ RECONNECT_GRACE_MS: '400', RATE_LIMITS: 'off' }, { store: dying.store });
        const clients: TestClient[] = [];
        try {
          const alice = await signIn(server, 'alice');
          const bob = await signIn(server, 'bob');
          clients.push(alice, bob);
          const callId = await scenario.setup(alice, bob);
          const lost = alice.auth!.sessionId;
          dying.arm(at);
          const opened = await scenario.act(alice, server);
          if (opened) clients.push(opened);
          // Either the node dies at this write, or the whole of it is handled in fewer writes than `at`.
          const died = await Promise.race([dying.died, scenario.handled(alice, bob, dying.inner).then(() => null)]);
          const problems = await stuck(dying.inner, lost, callId);
          if (died === null) {
            assert.deepEqual(problems, [], `after the whole of it (${at - 1} writes)`);
            break;
          }
          deaths.push(died);
          assert.deepEqual(problems, [], `dead at write ${at} (${died})`);
        } finally {
          dying.release();
          clients.forEach((c) => c.close());
          await server.close().catch(() => undefined);
        }
      }
      t.diagnostic(`died at each of ${deaths.length} writes: ${deaths.join(', ')}`);
      assert.ok(deaths.length >= 2, `the node died at ${deaths.length} writes`);
    });
  }
});
