/**
 * v1.1, "The ring reaches the user": a device of the callee that signs in or
 * resumes while a call rings that user gets `call:incoming` right after
 * `auth:success` / `reconnect:success`, with the time left, and rings like
 * the others from then on. In memory mode and in Redis mode with the late
 * device on another node than the caller and the first device. The races
 * run many times in one test: a device signing in while the request is being
 * committed rings exactly once (never missed, never twice), and a late device
 * accepting against the first device has exactly one winner.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { userKey, type SwitchboardServer } from '../src/index.js';
import type { CallStore } from '../src/store/types.js';
import { errorCode, expectOk, openSocket, ring, signIn, tokenFor, oneNode, twoNodesOnRedis, type TestClient, type TwoNodes as Servers } from './helpers.js';


function describeLateDevices(mode: string, start: () => Promise<Servers>): void {
  describe(`a device that joins a ringing call (${mode})`, () => {
    let servers: Servers;
    const clients: TestClient[] = [];
    let n = 0;
    const names = (...roles: string[]) => roles.map((r) => `${r}${++n}`);
    const on = async (server: SwitchboardServer, id: string) => {
      const c = await signIn(server, id);
      clients.push(c);
      return c;
    };
    /** Alice calls Bob, whose phone rings; then Bob's laptop signs in on the other server and rings too. */
    const lateRing = async () => {
      const [a, b] = names('alice', 'bob');
      const alice = await on(servers.caller, a!);
      const phone = await on(servers.caller, b!);
      const callId = await ring(alice, [phone], b!);
      const laptop = await on(servers.late, b!);
      const incoming = await laptop.next('call:incoming', (p) => p.callId === callId);
      return { a: a!, alice, phone, laptop, callId, incoming };
    };
    before(async () => {
      servers = await start();
    });
    after(async () => {
      clients.forEach((c) => c.close());
      await servers?.close();
    });

    test('a device that signs in while its user is rung rings too, for the time left, and may answer: the first device hears answered_elsewhere', async () => {
      const { a, alice, phone, laptop, callId, incoming } = await lateRing();
      assert.deepEqual(incoming.from, { id: a, name: alice.auth!.user.name });
      assert.ok(incoming.timeoutMs > 0 && incoming.timeoutMs <= 30_000, `the time left: ${incoming.timeoutMs}`);
      assert.ok(Array.isArray(incoming.iceServers));
      expectOk(await laptop.request('call:accept', { callId }));
      assert.deepEqual(await phone.next('call:cancelled'), { callId, reason: 'answered_elsewhere' });
      assert.equal((await alice.next('call:accepted')).callId, callId);
      alice.socket.emit('webrtc:offer', { callId, sdp: 'v=0 to the laptop' });
      assert.equal((await laptop.next('webrtc:offer')).sdp, 'v=0 to the laptop');
      expectOk(await alice.request('call:end', { callId }));
      await laptop.next('call:ended');
    });

    test('a late device may decline for everyone; the others hear declined_elsewhere, the caller declined', async () => {
      const { alice, phone, laptop, callId } = await lateRing();
      expectOk(await laptop.request('call:reject', { callId }));
      assert.deepEqual(await phone.next('call:cancelled'), { callId, reason: 'declined_elsewhere' });
      assert.deepEqual(await alice.next('call:rejected'), { callId, reason: 'declined' });
    });

    test('a late device hears the ring end: cancelled by the caller', async () => {
      const { alice, phone, laptop, callId } = await lateRing();
      expectOk(await alice.request('call:cancel', { callId }));
      assert.deepEqual(await laptop.next('call:cancelled'), { callId, reason: 'cancelled' });
      assert.deepEqual(await phone.next('call:cancelled'), { callId, reason: 'cancelled' });
    });

    test("the caller's other devices, and users not called, do not ring", async () => {
      const [a, b] = names('alice', 'bob');
      const alice = await on(servers.caller, a!);
      const phone = await on(servers.caller, b!);
      const callId = await ring(alice, [phone], b!);
      const aliceTablet = await on(servers.late, a!);
      const [c] = names('carol');
      const carol = await on(servers.late, c!);
      await Promise.all([aliceTablet.sync(), carol.sync()]);
      assert.deepEqual([...aliceTablet.received('call:incoming'), ...carol.received('call:incoming')], []);
      expectOk(await alice.request('call:cancel', { callId }));
    });

    test('a ringing device that loses its socket and resumes rings again, for the time left', async () => {
      const [a, b] = names('alice', 'bob');
      const alice = await on(servers.caller, a!);
      const phone = await on(servers.caller, b!);
      const laptop = await on(servers.caller, b!);
      const callId = await ring(alice, [phone, laptop], b!);
      laptop.socket.io.engine.close(); // a network drop: the session waits in its grace
      await laptop.disconnected;
      const back = await openSocket(servers.late, { via: 'none' });
      clients.push(back);
      back.socket.emit('reconnect:attempt', { token: await tokenFor(b!), sessionId: laptop.auth!.sessionId });
      await back.next('reconnect:success');
      const again = await back.next('call:incoming');
      assert.equal(again.callId, callId);
      expectOk(await back.request('call:accept', { callId }));
      assert.deepEqual(await phone.next('call:cancelled'), { callId, reason: 'answered_elsewhere' });
      await alice.next('call:accepted');
      expectOk(await alice.request('call:end', { callId }));
    });

    test('a device that signs in between the request reading the callee\'s sessions and committing the call rings too: the commit sees the new session and reads again', async () => {
      const [a, b] = names('alice', 'bob');
      const alice = await on(servers.caller, a!);
      const phone = await on(servers.caller, b!);
      // The worst moment, made certain: the laptop's sign-in (session stored, claim read: none yet) lands
      // after the request has read bob's sessions and before it commits the call.
      const store = servers.caller.store as CallStore & { sessionsOf: CallStore['sessionsOf'] };
      const read = store.sessionsOf;
      let laptop: TestClient | undefined;
      store.sessionsOf = async (key) => {
        const sessions = await read.call(store, key);
        if (key === userKey('', b!)) {
          delete (store as Partial<CallStore>).sessionsOf;
          laptop = await on(servers.late, b!);
        }
        return sessions;
      };
      try {
        const ack = await alice.request<{ callId: string }>('call:request', { to: b });
        expectOk(ack);
        await phone.next('call:incoming', (p) => p.callId === ack.callId);
        assert.ok(laptop, 'the laptop signed in during the request');
        await laptop.next('call:incoming', (p) => p.callId === ack.callId);
        await laptop.sync();
        assert.equal(laptop.received('call:incoming').length, 0, 'once');
        expectOk(await alice.request('call:cancel', { callId: ack.callId }));
      } finally {
        delete (store as Partial<CallStore>).sessionsOf;
      }
    });

    test('30 times: a device signing in while the request is committed rings exactly once, never missed', async () => {
      for (let i = 0; i < 30; i++) {
        const [a, b] = names('alice', 'bob');
        const alice = await on(servers.caller, a!);
        const phone = await on(servers.caller, b!);
        // The request and the late sign-in race; the phone makes sure the call rings either way.
        const [ack, laptop] = await Promise.all([alice.request<{ callId: string }>('call:request', { to: b }), on(servers.late, b!)]);
        expectOk(ack);
        await laptop.next('call:incoming', (p) => p.callId === ack.callId);
        await laptop.sync();
        assert.equal(laptop.received('call:incoming').length, 0, `try ${i}: the late device rang once`);
        expectOk(await alice.request('call:cancel', { callId: ack.callId }));
        await laptop.next('call:cancelled', (p) => p.callId === ack.callId);
        for (const c of [alice, phone, laptop]) c.close();
      }
    });

    test('30 times: a late device and the first device accept at once: exactly one wins, the other hears answered_elsewhere', async () => {
      for (let i = 0; i < 30; i++) {
        const { alice, phone, laptop, callId } = await lateRing();
        const acks = await Promise.all([phone.request('call:accept', { callId }), laptop.request('call:accept', { callId })]);
        assert.equal(acks.filter((ack) => ack.ok).length, 1, `try ${i}: one accept wins (${JSON.stringify(acks)})`);
        const loser = acks[0]!.ok ? laptop : phone;
        const refused = acks.find((ack) => !ack.ok)!;
        // The loser's accept may reach the call before or after the winner's commit is delivered.
        assert.ok(['invalid_state', 'forbidden'].includes(errorCode(refused)!), JSON.stringify(refused));
        assert.deepEqual(await loser.next('call:cancelled', (p) => p.callId === callId), { callId, reason: 'answered_elsewhere' });
        assert.equal((await alice.next('call:accepted')).callId, callId);
        expectOk(await alice.request('call:end', { callId }));
        for (const c of [alice, phone, laptop]) c.close();
      }
    });
  });
}

describeLateDevices('memory mode', () => oneNode());

describeLateDevices('Redis mode, the late device on another node', () => twoNodesOnRedis({ RATE_LIMITS: 'off' }));

function describeTimeoutRace(mode: string, start: (env: Record<string, string>) => Promise<Servers>): void {
  describe(`a late device racing the ring timeout (${mode}, a 400 ms ring)`, () => {
    let servers: Servers;
    const clients: TestClient[] = [];
    before(async () => {
      servers = await start({ RING_TIMEOUT_MS: '400', RATE_LIMITS: 'off' });
    });
    after(async () => {
      clients.forEach((c) => c.close());
      await servers?.close();
    });

    test('20 times: a device that signs in mid-ring accepts as the ring runs out: exactly one outcome, told alike to everyone', async (t) => {
      const outcomes = { answered: 0, timedOut: 0 };
      for (let i = 0; i < 20; i++) {
        const [alice, phone] = [await signIn(servers.caller, `racer-a${i}`), await signIn(servers.caller, `racer-b${i}`)];
        clients.push(alice, phone);
        const callId = await ring(alice, [phone], `racer-b${i}`);
        const laptop = await signIn(servers.late, `racer-b${i}`);
        clients.push(laptop);
        const { timeoutMs } = await laptop.next('call:incoming', (p) => p.callId === callId);
        // The accept is aimed at the last moments of the ring, a little earlier or later each time.
        const accepted = await new Promise<Awaited<ReturnType<TestClient['request']>>>((resolve) =>
          setTimeout(() => void laptop.request('call:accept', { callId }).then(resolve), Math.max(0, timeoutMs - 30 + (i % 6) * 10)),
        );
        if (accepted.ok) {
          outcomes.answered++;
          assert.equal((await alice.next('call:accepted')).callId, callId);
          assert.deepEqual(await phone.next('call:cancelled'), { callId, reason: 'answered_elsewhere' });
          expectOk(await alice.request('call:end', { callId }));
        } else {
          outcomes.timedOut++;
          assert.ok(['invalid_state', 'call_not_found'].includes(errorCode(accepted)!), JSON.stringify(accepted));
          assert.deepEqual(await alice.next('call:rejected'), { callId, reason: 'timeout' });
          assert.deepEqual(await laptop.next('call:cancelled'), { callId, reason: 'timeout' });
          assert.deepEqual(await phone.next('call:cancelled'), { callId, reason: 'timeout' });
        }
        await alice.sync();
        assert.deepEqual([...alice.received('call:accepted'), ...alice.received('call:rejected')], [], `try ${i}: one outcome only`);
      }
      t.diagnostic(`answered ${outcomes.answered}, timed out ${outcomes.timedOut}`);
      assert.equal(outcomes.answered + outcomes.timedOut, 20);
    });
  });
}

describeTimeoutRace('memory mode', (env) => oneNode(env));
describeTimeoutRace('Redis mode, the late device on another node', (env) => twoNodesOnRedis(env));
