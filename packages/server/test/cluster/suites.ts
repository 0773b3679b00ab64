/**
 * The multi-node suites, run on every Redis topology: three server processes
 * sharing one backend behave as one server (presence, a whole call across
 * nodes, busy and glare, a hundred calls to one callee ringing it once, two
 * devices accepting at once, a resume on another node), and nodes that die
 * (ring timeouts a dead node scheduled still fire, calls of a dead node end or
 * resume elsewhere). `cluster.test.ts` runs them on one Redis,
 * `on-redis-cluster.test.ts` on a Redis Cluster.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { CONTROL_EVENTS } from '@switchboard/protocol';
import { userKey } from '../../src/calls/types.js';
import { loadConfig } from '../../src/config.js';
import { closeRedis, openRedis, redisTargetOf, resolveRedisTarget } from '../../src/store/redis-target.js';
import { rooms } from '../../src/transport/context.js';
import { SessionMail } from '../../src/transport/session-mail.js';
import { errorCode, expectOk, openSocket, ring, signIn, tokenFor, type TestClient } from '../helpers.js';
import { Receiver } from '../ops-helpers.js';
import { startNode, type NodeProcess } from './harness.js';

const PUSH_SECRET = 'pushed-calls-secret-0123456789';

export const FAST = { RING_TIMEOUT_MS: '1500', RECONNECT_GRACE_MS: '1500', NODE_TIMEOUT_MS: '1000', RATE_LIMITS: 'off' };

/** A backend in use: the server variables that reach it (with a fresh key prefix), and how to let it go. */
export interface BackendUse {
  env: Record<string, string>;
  release(): Promise<void>;
}

/** Makes a backend ready for one suite. */
export type Backend = () => Promise<BackendUse>;

export function describeSharedNodes(title: string, backend: Backend): void {
  describe(title, () => {
    let redis: BackendUse;
    let nodes: NodeProcess[] = [];
    const clients: TestClient[] = [];
    const on = async (node: NodeProcess, userId: string, tenant?: string) => {
      const c = await signIn(node, userId, tenant === undefined ? {} : { tenant });
      clients.push(c);
      return c;
    };
    let n = 0;
    const names = (...roles: string[]) => roles.map((r) => `${r}${++n}`);

    before(async () => {
      redis = await backend();
      nodes = await Promise.all([1, 2, 3].map(() => startNode({ ...FAST, ...redis.env })));
    });
    after(async () => {
      clients.forEach((c) => c.close());
      await Promise.all(nodes.map((node) => node.kill('SIGTERM')));
      await redis?.release();
    });

    test('a call across nodes: presence, ring, accept, relay in order, every control, hangup, history', async () => {
      const [a, b] = names('a', 'b');
      const alice = await on(nodes[0]!, a!);
      const bob = await on(nodes[1]!, b!);
      await alice.next('user:online', (p) => p.user.id === b);
      const list = await alice.request<{ users: { id: string }[] }>('user:list');
      assert.ok(list.ok && list.users.some((u) => u.id === b), 'user:list shows users of other nodes');

      const callId = await ring(alice, [bob], b!);
      expectOk(await bob.request('call:accept', { callId }));
      await alice.next('call:accepted');
      for (let i = 0; i < 20; i++) alice.socket.emit('webrtc:ice-candidate', { callId, candidate: { candidate: `candidate:${i}` } });
      for (let i = 0; i < 20; i++) assert.equal((await bob.next('webrtc:ice-candidate')).candidate?.candidate, `candidate:${i}`);
      bob.socket.emit('webrtc:answer', { callId, sdp: 'v=0 answer' });
      assert.deepEqual(await alice.next('webrtc:answer'), { callId, from: b, sdp: 'v=0 answer' });
      for (const control of CONTROL_EVENTS) {
        expectOk(await bob.request(control, { callId }));
        assert.deepEqual(await alice.next(control), { callId, userId: b });
      }
      expectOk(await alice.request('call:end', { callId }));
      assert.equal((await bob.next('call:ended')).reason, 'hangup');
      const res = await fetch(`${nodes[2]!.url}/api/calls`, { headers: { authorization: `Bearer ${await tokenFor(b!)}` } });
      const body = (await res.json()) as { calls: { callId: string; outcome: string }[] };
      assert.deepEqual(body.calls.map((c) => [c.callId, c.outcome]), [[callId, 'completed']], 'history served by any node');
    });

    test('relay bindings end with the call on both nodes; events from both sides interleave; the next call binds afresh', async () => {
      const [a, b] = names('a', 'b');
      const alice = await on(nodes[0]!, a!);
      const bob = await on(nodes[1]!, b!);
      for (let round = 0; round < 2; round++) {
        const callId = await ring(alice, [bob], b!);
        expectOk(await bob.request('call:accept', { callId }));
        await alice.next('call:accepted');
        alice.socket.emit('webrtc:offer', { callId, sdp: `offer ${round}` });
        assert.equal((await bob.next('webrtc:offer')).sdp, `offer ${round}`);
        bob.socket.emit('webrtc:answer', { callId, sdp: `answer ${round}` });
        assert.equal((await alice.next('webrtc:answer')).sdp, `answer ${round}`);
        // Each node's last known version of the call goes stale as the other side acts: every event must still land.
        for (const [actor, peer, control] of [
          [bob, alice, 'call:mute'],
          [alice, bob, 'call:hold'],
          [bob, alice, 'call:unmute'],
          [alice, bob, 'call:resume'],
        ] as const) {
          expectOk(await actor.request(control, { callId }));
          assert.equal((await peer.next(control)).callId, callId);
        }
        // The end is committed on bob's node; alice's node hears it only through the call:ended it delivers.
        expectOk(await bob.request('call:end', { callId }));
        assert.equal((await alice.next('call:ended')).reason, 'hangup');
        assert.equal(errorCode(await alice.request('webrtc:ice-candidate', { callId, candidate: null })), 'invalid_state', 'no relay after the end (remote)');
        assert.equal(errorCode(await bob.request('webrtc:ice-candidate', { callId, candidate: null })), 'invalid_state', 'no relay after the end (local)');
        assert.equal(bob.received('webrtc:ice-candidate').length, 0);
        assert.equal(alice.received('webrtc:ice-candidate').length, 0);
      }
    });

    test('a call across two nodes reads no call from the store: each node learns it from the events the other sends', async () => {
      const [a, b] = names('a', 'b');
      const alice = await on(nodes[0]!, a!);
      const bob = await on(nodes[1]!, b!);
      const callReads = async () => {
        const counts = await Promise.all(
          nodes.slice(0, 2).map(async (node) => {
            const text = await (await fetch(`${node.url}/metrics`)).text();
            const line = text.split('\n').find((l) => l.startsWith('switchboard_redis_operation_seconds_count{op="getCall"'));
            return line ? Number(line.slice(line.lastIndexOf(' ') + 1)) : 0;
          }),
        );
        return counts;
      };
      const before = await callReads();
      const callId = await ring(alice, [bob], b!);
      // Bob's node heard of the call with call:incoming, so the accept commits without reading it first.
      expectOk(await bob.request('call:accept', { callId }));
      await alice.next('call:accepted');
      // Alice's node heard the answer with call:accepted: her first offer relays without a store check.
      alice.socket.emit('webrtc:offer', { callId, sdp: 'v=0 offer' });
      assert.equal((await bob.next('webrtc:offer')).sdp, 'v=0 offer');
      bob.socket.emit('webrtc:answer', { callId, sdp: 'v=0 answer' });
      assert.equal((await alice.next('webrtc:answer')).sdp, 'v=0 answer');
      expectOk(await alice.request('call:mute', { callId }));
      await bob.next('call:mute');
      expectOk(await bob.request('call:hold', { callId }));
      await alice.next('call:hold');
      expectOk(await alice.request('call:end', { callId }));
      assert.equal((await bob.next('call:ended')).reason, 'hangup');
      assert.deepEqual(await callReads(), before, 'no node read the call record');
      for (const node of nodes.slice(0, 2)) {
        const text = await (await fetch(`${node.url}/metrics`)).text();
        for (const direction of ['out', 'in']) {
          const line = new RegExp(`^switchboard_cross_node_messages_total\\{direction="${direction}",kind="session"\\} (\\d+)$`, 'm').exec(text);
          assert.ok(line && Number(line[1]) > 0, `${node.url} counts session mail ${direction}`);
        }
      }
    });

    test('presence across nodes: a watcher on a third node hears online, busy, available and offline in order; the parties hear no status of theirs', async () => {
      const [a, b, c] = names('a', 'b', 'c');
      const carol = await on(nodes[2]!, c!);
      const heard: string[] = [];
      carol.socket.onAny((event: string, p: { userId?: string; user?: { id: string }; status?: string }) => {
        const who = p?.userId ?? p?.user?.id;
        if (who === a || who === b) heard.push(`${event} ${who}${p.status ? ` ${p.status}` : ''}`);
      });
      const alice = await on(nodes[0]!, a!);
      await carol.next('user:online', (p) => p.user.id === a);
      const bob = await on(nodes[1]!, b!);
      await carol.next('user:online', (p) => p.user.id === b);
      const callId = await ring(alice, [bob], b!);
      await carol.next('user:status', (p) => p.userId === b && p.status === 'busy');
      expectOk(await bob.request('call:accept', { callId }));
      expectOk(await alice.request('call:end', { callId }));
      await carol.next('user:status', (p) => p.userId === b && p.status === 'available');
      bob.close();
      await carol.next('user:offline', (p) => p.userId === b);
      assert.deepEqual(heard, [
        `user:online ${a}`,
        `user:online ${b}`,
        `user:status ${a} busy`,
        `user:status ${b} busy`,
        `user:status ${a} available`,
        `user:status ${b} available`,
        `user:offline ${b}`,
      ]);
      await alice.sync();
      assert.deepEqual(alice.received('user:status').filter((p) => p.userId === a || p.userId === b), [], 'the parties hear no status of their own call');
    });

    test("presence that reaches a node late, after the user's presence changed again, is not told: a watcher is left with what the store says", async () => {
      const [d, e] = names('d', 'e');
      const carol = await on(nodes[2]!, names('c')[0]!);
      const heard: string[] = [];
      carol.socket.onAny((event: string, p: { userId?: string; user?: { id: string } }) => {
        const who = p?.userId ?? p?.user?.id;
        if (who === d || who === e) heard.push(`${event} ${who}`);
      });
      const dave = await on(nodes[0]!, d!);
      await carol.next('user:online', (p) => p.user.id === d);
      // What a slow node would publish late: dave offline (he has since signed in again: a first session elsewhere)
      // and erin online (she has since gone). Then a status, which is not checked, as a marker: the room's
      // messages are told in the order they came, so once carol has it the two before it were weighed.
      const config = loadConfig(redis.env);
      const client = openRedis((await resolveRedisTarget(redisTargetOf(config)))!, {});
      const channel = (room: string) => `${config.redisPrefix}io#/#${room}#`;
      const late = new SessionMail(
        { publish: async () => undefined, channelOf: channel, publishToRoom: (room, data) => client.spublish(channel(room), data) },
        { session: () => undefined, room: () => undefined },
        'a-slow-node',
        (err) => assert.fail(String(err)),
      );
      try {
        const tenant = rooms.tenant('');
        late.announce(tenant, [rooms.user(userKey('', d!))], 'user:offline', { userId: d, lastSeen: Date.now() }, userKey('', d!));
        late.announce(tenant, [rooms.user(userKey('', e!))], 'user:online', { user: { id: e, name: e } }, userKey('', e!));
        late.announce(tenant, [], 'user:status', { userId: d, status: 'available' });
        await carol.next('user:status', (p) => p.userId === d);
        assert.deepEqual(heard, [`user:online ${d}`, `user:status ${d}`], 'neither stale announcement was told');
      } finally {
        await closeRedis(client);
      }
      dave.close();
      await carol.next('user:offline', (p) => p.userId === d);
      assert.deepEqual(heard.at(-1), `user:offline ${d}`, 'a true one is told');
    });

    test('a call between the only two users of a tenant publishes no status; once a third is online, it hears busy and available', async () => {
      const tenant = `pair-${names('t')[0]}`;
      const [a, b, c] = names('a', 'b', 'c');
      const roomMessagesOut = async () => {
        let sum = 0;
        for (const node of nodes) {
          const text = await (await fetch(`${node.url}/metrics`)).text();
          const line = /^switchboard_cross_node_messages_total\{direction="out",kind="room"\} (\d+)$/m.exec(text);
          sum += line ? Number(line[1]) : 0;
        }
        return sum;
      };
      const alice = await on(nodes[0]!, a!, tenant);
      const bob = await on(nodes[1]!, b!, tenant);
      await alice.next('user:online', (p) => p.user.id === b);
      const alone = await roomMessagesOut();
      const first = await ring(alice, [bob], b!);
      expectOk(await bob.request('call:accept', { callId: first }));
      expectOk(await alice.request('call:end', { callId: first }));
      await bob.next('call:ended');
      assert.equal(await roomMessagesOut(), alone, 'no node published a status nobody else online could hear');

      const carol = await on(nodes[2]!, c!, tenant);
      const heard: string[] = [];
      carol.socket.on('user:status', (p: { userId: string; status: string }) => heard.push(`${p.userId} ${p.status}`));
      await alice.next('user:online', (p) => p.user.id === c);
      await bob.next('user:online', (p) => p.user.id === c);
      const watched = await roomMessagesOut();
      const second = await ring(alice, [bob], b!);
      await carol.next('user:status', (p) => p.userId === b && p.status === 'busy');
      expectOk(await bob.request('call:accept', { callId: second }));
      expectOk(await bob.request('call:end', { callId: second }));
      await carol.next('user:status', (p) => p.userId === a && p.status === 'available');
      await carol.next('user:status', (p) => p.userId === b && p.status === 'available');
      assert.deepEqual(heard, [`${a} busy`, `${b} busy`, `${a} available`, `${b} available`]);
      assert.ok((await roomMessagesOut()) > watched, 'with a third user online the statuses were published');
    });

    test('busy and glare across nodes, many rounds: exactly one call rings', async () => {
      for (let round = 0; round < 15; round++) {
        const [a, b] = names('a', 'b');
        const alice = await on(nodes[round % 3]!, a!);
        const bob = await on(nodes[(round + 1) % 3]!, b!);
        const [ackA, ackB] = await Promise.all([
          alice.request<{ callId: string }>('call:request', { to: b }),
          bob.request<{ callId: string }>('call:request', { to: a }),
        ]);
        expectOk(ackA);
        expectOk(ackB);
        const busy = await Promise.race([
          alice.next('call:busy', undefined, 3000).then(() => 'a'),
          bob.next('call:busy', undefined, 3000).then(() => 'b'),
        ]);
        const ringer = busy === 'a' ? alice : bob;
        await ringer.next('call:incoming', undefined, 3000);
        const other = busy === 'a' ? bob : alice;
        await other.sync();
        assert.equal(other.received('call:incoming').length, 0, `round ${round}: never two rings`);
        alice.close();
        bob.close();
      }
    });

    test('100 simultaneous calls to one callee through 3 nodes ring exactly once', async () => {
      const [callee] = names('callee');
      const target = await on(nodes[0]!, callee!);
      const callers = await Promise.all(Array.from({ length: 30 }, (_, i) => on(nodes[i % 3]!, `${callee}-caller${i}`)));
      const acks = await Promise.all(callers.flatMap((c) => [1, 2, 3].map(() => c.request<{ callId: string }>('call:request', { to: callee }))));
      const extra = await Promise.all(Array.from({ length: 10 }, (_, i) => callers[i]!.request('call:request', { to: callee })));
      const all = [...acks, ...extra];
      assert.equal(all.length, 100);
      const ok = all.filter((x) => x.ok).length;
      const inCall = all.filter((x) => errorCode(x) === 'already_in_call').length;
      assert.equal(ok + inCall, 100, 'every request is answered: ok (ringing or busy) or already_in_call');
      await target.next('call:incoming');
      await target.sync();
      assert.equal(target.received('call:incoming').length, 0, 'rings exactly once');
      callers.forEach((c) => c.close());
    });

    test('two devices on two nodes accepting at the same instant: exactly one wins', async () => {
      for (let round = 0; round < 10; round++) {
        const [a, b] = names('a', 'b');
        const alice = await on(nodes[0]!, a!);
        const phone = await on(nodes[1]!, b!);
        const laptop = await on(nodes[2]!, b!);
        const callId = await ring(alice, [phone, laptop], b!);
        const acks = await Promise.all([phone.request('call:accept', { callId }), laptop.request('call:accept', { callId })]);
        assert.equal(acks.filter((x) => x.ok).length, 1, `round ${round}`);
        assert.deepEqual(acks.filter((x) => !x.ok).map(errorCode), ['invalid_state']);
        const loser = acks[0]!.ok ? laptop : phone;
        assert.equal((await loser.next('call:cancelled')).reason, 'answered_elsewhere');
        [alice, phone, laptop].forEach((c) => c.close());
      }
    });

    test('10 times: a device signing in on a third node while its user is being called rings once, answers, and the first device hears answered_elsewhere', async () => {
      for (let round = 0; round < 10; round++) {
        const [a, b] = names('a', 'b');
        const alice = await on(nodes[0]!, a!);
        const phone = await on(nodes[1]!, b!);
        // The laptop signs in while the request is on its way: it rings once, wherever the race lands.
        const [ack, laptop] = await Promise.all([alice.request<{ callId: string }>('call:request', { to: b }), on(nodes[2]!, b!)]);
        expectOk(ack);
        await laptop.next('call:incoming', (p) => p.callId === ack.callId);
        expectOk(await laptop.request('call:accept', { callId: ack.callId }));
        assert.equal((await phone.next('call:cancelled', (p) => p.callId === ack.callId)).reason, 'answered_elsewhere');
        await laptop.sync();
        assert.equal(laptop.received('call:incoming').length, 0, `round ${round}: the laptop rang once`);
        expectOk(await alice.request('call:end', { callId: ack.callId }));
        [alice, phone, laptop].forEach((c) => c.close());
      }
    });

    test('a ringing device that drops and resumes on another node rings again, and hears the ring end', async () => {
      const [a, b] = names('a', 'b');
      const alice = await on(nodes[0]!, a!);
      const phone = await on(nodes[1]!, b!);
      const laptop = await on(nodes[1]!, b!);
      const callId = await ring(alice, [phone, laptop], b!);
      laptop.socket.io.engine.close();
      await laptop.disconnected;
      const back = await openSocket(nodes[2]!, { via: 'none' });
      clients.push(back);
      back.socket.emit('reconnect:attempt', { token: await tokenFor(b!), sessionId: laptop.auth!.sessionId });
      await back.next('reconnect:success');
      assert.equal((await back.next('call:incoming')).callId, callId);
      expectOk(await alice.request('call:cancel', { callId }));
      assert.deepEqual(await back.next('call:cancelled'), { callId, reason: 'cancelled' });
    });

    test('a session resumes on another node and the call goes on; the peer hears reconnecting then reconnected', async () => {
      const [a, b] = names('a', 'b');
      const alice = await on(nodes[0]!, a!);
      const bob = await on(nodes[1]!, b!);
      const callId = await ring(alice, [bob], b!);
      expectOk(await bob.request('call:accept', { callId }));
      await alice.next('call:accepted');
      alice.socket.io.engine.close();
      await bob.next('call:reconnecting');
      const back = await openSocket(nodes[2]!, { via: 'none' });
      clients.push(back);
      back.socket.emit('reconnect:attempt', { token: await tokenFor(a!), sessionId: alice.auth!.sessionId });
      const success = await back.next('reconnect:success');
      assert.equal(success.calls[0]?.callId, callId);
      await bob.next('call:reconnected');
      back.socket.emit('webrtc:offer', { callId, sdp: 'v=0 restart' });
      assert.equal((await bob.next('webrtc:offer')).sdp, 'v=0 restart');
      bob.socket.emit('webrtc:answer', { callId, sdp: 'v=0 answer' });
      assert.equal((await back.next('webrtc:answer')).sdp, 'v=0 answer');
    });
  });
}

export function describeDyingNodes(title: string, backend: Backend): void {
  describe(title, () => {
    let redis: BackendUse;
    const clients: TestClient[] = [];
    const spawned: NodeProcess[] = [];
    const node = async (env: Record<string, string> = {}) => {
      const p = await startNode({ ...FAST, ...redis.env, ...env });
      spawned.push(p);
      return p;
    };
    before(async () => {
      redis = await backend();
    });
    after(async () => {
      clients.forEach((c) => c.close());
      await Promise.all(spawned.map((p) => p.kill('SIGKILL')));
      await redis?.release();
    });

    test('the caller\'s node is killed while ringing: the callee still hears the ring timeout', async () => {
      // The node is declared dead only after 5 s, so the 1.5 s ring timeout the dead node scheduled must fire elsewhere.
      const [doomed, survivor] = [await node({ NODE_TIMEOUT_MS: '5000' }), await node({ NODE_TIMEOUT_MS: '5000' })];
      const alice = await signIn(doomed, 'ringer-a');
      const bob = await signIn(survivor, 'ringer-b');
      clients.push(alice, bob);
      const callId = await ring(alice, [bob], 'ringer-b');
      await doomed.kill('SIGKILL');
      const cancelled = await bob.next('call:cancelled', undefined, 8000);
      assert.equal(cancelled.callId, callId);
      assert.equal(cancelled.reason, 'timeout');
      const rejected = await fetch(`${survivor.url}/api/calls`, { headers: { authorization: `Bearer ${await tokenFor('ringer-b')}` } });
      const history = (await rejected.json()) as { calls: { callId: string; outcome: string }[] };
      assert.deepEqual(history.calls.map((c) => [c.callId, c.outcome]), [[callId, 'missed']]);
    });

    test('a caller\'s node declared dead while ringing cancels the call: caller_disconnected', async () => {
      const [doomed, survivor] = [await node({ RING_TIMEOUT_MS: '20000' }), await node({ RING_TIMEOUT_MS: '20000' })];
      const alice = await signIn(doomed, 'gone-a');
      const bob = await signIn(survivor, 'gone-b');
      clients.push(alice, bob);
      const callId = await ring(alice, [bob], 'gone-b');
      await doomed.kill('SIGKILL');
      assert.deepEqual(await bob.next('call:cancelled', undefined, 8000), { callId, reason: 'caller_disconnected' });
    });

    test('a node killed during a call: the peer hears reconnecting, then connection_lost after the grace', async () => {
      const [doomed, survivor] = [await node(), await node()];
      const alice = await signIn(doomed, 'dies-a');
      const bob = await signIn(survivor, 'dies-b');
      clients.push(alice, bob);
      const callId = await ring(alice, [bob], 'dies-b');
      expectOk(await bob.request('call:accept', { callId }));
      await alice.next('call:accepted');
      await doomed.kill('SIGKILL');
      assert.deepEqual(await bob.next('call:reconnecting', undefined, 8000), { callId, userId: 'dies-a' });
      const ended = await bob.next('call:ended', undefined, 8000);
      assert.equal(ended.reason, 'connection_lost');
      await bob.next('user:offline', (p) => p.userId === 'dies-a');
      const list = await bob.request<{ users: { id: string }[] }>('user:list');
      assert.ok(list.ok && !list.users.some((u) => u.id === 'dies-a'), 'the dead node\'s user is offline');
    });

    test('a node killed during a call: the lost party resumes on another node and the call goes on', async () => {
      const [doomed, survivor] = [await node(), await node()];
      const alice = await signIn(doomed, 'lives-a');
      const bob = await signIn(survivor, 'lives-b');
      clients.push(alice, bob);
      const callId = await ring(alice, [bob], 'lives-b');
      expectOk(await bob.request('call:accept', { callId }));
      await alice.next('call:accepted');
      await doomed.kill('SIGKILL');
      await alice.disconnected;
      const back = await openSocket(survivor, { via: 'none' });
      clients.push(back);
      back.socket.emit('reconnect:attempt', { token: await tokenFor('lives-a'), sessionId: alice.auth!.sessionId });
      const success = await back.next('reconnect:success');
      assert.equal(success.calls[0]?.callId, callId);
      back.socket.emit('webrtc:offer', { callId, sdp: 'v=0 after the crash' });
      assert.equal((await bob.next('webrtc:offer')).sdp, 'v=0 after the crash');
      expectOk(await back.request('call:end', { callId }));
      assert.equal((await bob.next('call:ended')).reason, 'hangup');
    });
  });
}

/**
 * RING_OFFLINE=webhook across nodes: a call to a user with no device rings
 * while the host app (a receiver started here) is told; the device that then
 * signs in on another node answers; a refused push ends the call as
 * unavailable; and nobody coming ends it as a timeout, `call.missed` to the host.
 */
export function describePushedCalls(title: string, backend: Backend): void {
  describe(title, () => {
    let redis: BackendUse;
    let nodes: NodeProcess[] = [];
    const clients: TestClient[] = [];
    let receiver: Receiver;
    const heard = (callId: string, type: string) => receiver.next(type, (e) => e.callId === callId && e.type === type, 8000);
    let n = 0;
    const name = (role: string) => `${role}${++n}`;
    const on = async (node: NodeProcess, userId: string) => {
      const c = await signIn(node, userId);
      clients.push(c);
      return c;
    };
    before(async () => {
      redis = await backend();
      // Refuses pushes to users named `refuse…`; takes every other event.
      receiver = await Receiver.start(PUSH_SECRET, { respond: (_n, e) => (e.type === 'call.unreachable' && e.callee.id.startsWith('refuse') ? 503 : 200) });
      const env = { ...FAST, RING_TIMEOUT_MS: '3000', RING_OFFLINE: 'webhook', WEBHOOK_URL: receiver.url, WEBHOOK_SECRET: PUSH_SECRET, ...redis.env };
      nodes = await Promise.all([1, 2].map(() => startNode(env)));
    });
    after(async () => {
      clients.forEach((c) => c.close());
      await Promise.all(nodes.map((node) => node.kill('SIGTERM')));
      await receiver?.close();
      await redis?.release();
    });

    test('pushed, then signed in on another node, answered; the host app hears unreachable, answered and ended', async () => {
      const alice = await on(nodes[0]!, name('alice'));
      const bob = name('bob');
      const ack = await alice.request<{ callId: string }>('call:request', { to: bob });
      expectOk(ack);
      await heard(ack.callId, 'call.unreachable');
      const phone = await on(nodes[1]!, bob);
      await phone.next('call:incoming', (p) => p.callId === ack.callId);
      expectOk(await phone.request('call:accept', { callId: ack.callId }));
      await alice.next('call:accepted');
      expectOk(await alice.request('call:end', { callId: ack.callId }));
      await heard(ack.callId, 'call.answered');
      await heard(ack.callId, 'call.ended');
    });

    test('a refused push ends the call as unavailable; nobody coming ends it as a timeout with call.missed', async () => {
      const alice = await on(nodes[0]!, name('alice'));
      const refused = await alice.request<{ callId: string }>('call:request', { to: name('refuse') });
      expectOk(refused);
      assert.deepEqual(await alice.next('call:rejected', (p) => p.callId === refused.callId, 6000), { callId: refused.callId, reason: 'unavailable' });
      const missed = await alice.request<{ callId: string }>('call:request', { to: name('asleep') });
      expectOk(missed);
      assert.deepEqual(await alice.next('call:rejected', (p) => p.callId === missed.callId, 8000), { callId: missed.callId, reason: 'timeout' });
      await heard(missed.callId, 'call.missed');
    });
  });
}
