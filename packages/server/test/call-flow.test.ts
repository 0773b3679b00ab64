import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { CONTROL_EVENTS } from '@switchboard/protocol';
import { userKey, type SwitchboardServer } from '../src/index.js';
import { errorCode, establish, expectOk, ring, signIn, startTestServer, type TestClient } from './helpers.js';

describe('a call from request to hangup', () => {
  let server: SwitchboardServer;
  const clients: TestClient[] = [];
  const user = async (id: string) => {
    const c = await signIn(server, id);
    clients.push(c);
    return c;
  };
  before(async () => {
    server = await startTestServer();
  });
  after(async () => {
    clients.forEach((c) => c.close());
    await server.close();
  });

  test('call:end with a reason: the peer hears it, and a failure is recorded as failed with its reason on both sides', async () => {
    for (const [reason, outcome] of [
      ['ice_failed', 'failed'],
      ['media_failed', 'failed'],
      ['hangup', 'completed'],
    ] as const) {
      const [a, b] = [`ender-${reason}`, `peer-${reason}`];
      const ender = await user(a);
      const peer = await user(b);
      const callId = await establish(ender, peer, b);
      expectOk(await ender.request('call:end', { callId, reason }));
      const ended = await peer.next('call:ended', (p) => p.callId === callId);
      assert.equal(ended.reason, reason);
      assert.equal(ended.by?.id, a);
      for (const who of [a, b]) {
        const page = await server.store.listHistory(userKey('', who), 5, null);
        assert.deepEqual([page.calls[0]?.outcome, page.calls[0]?.reason], [outcome, reason], `${who}'s history`);
      }
    }
    const alice = await user('alice-bad-reason');
    assert.equal(errorCode(await alice.request('call:end', { callId: '3b2f7a4e-1c9d-4e8a-9f00-123456789abc', reason: 'bored' })), 'invalid_payload');
  });

  test('v1.1: a call turns to video once a party sends call:video-on, and both history records say so', async () => {
    const [a, b] = ['vid-a', 'vid-b'];
    const alice = await user(a);
    const bob = await user(b);
    const callId = await establish(alice, bob, b);
    expectOk(await bob.request('call:video-on', { callId }));
    assert.deepEqual(await alice.next('call:video-on'), { callId, userId: b });
    expectOk(await bob.request('call:video-off', { callId }));
    await alice.next('call:video-off');
    expectOk(await alice.request('call:end', { callId }));
    await bob.next('call:ended');
    for (const who of [a, b]) {
      const [entry] = (await server.store.listHistory(userKey('', who), 1, null)).calls;
      assert.deepEqual(entry?.media, { audio: true, video: true }, `${who}'s record: the call carried video`);
    }
  });

  test('rings, is accepted, relays SDP and ICE both ways in order, carries every control, and hangs up', async () => {
    const alice = await user('alice');
    const bob = await user('bob');

    const ack = await alice.request<{ callId: string }>('call:request', { to: 'bob', media: { audio: true, video: false } });
    expectOk(ack);
    const incoming = await bob.next('call:incoming');
    assert.equal(incoming.callId, ack.callId);
    assert.deepEqual(incoming.from, { id: 'alice', name: 'Alice' });
    assert.deepEqual(incoming.media, { audio: true, video: false });
    assert.equal(incoming.timeoutMs, 30_000);

    expectOk(await bob.request('call:accept', { callId: ack.callId }));
    const accepted = await alice.next('call:accepted');
    assert.deepEqual(accepted, { callId: ack.callId, by: { id: 'bob', name: 'Bob' } });

    const callId = ack.callId;
    alice.raw('webrtc:offer', { callId, sdp: 'v=0 offer' });
    const offer = await bob.next('webrtc:offer');
    assert.deepEqual(offer, { callId, from: 'alice', sdp: 'v=0 offer' });
    bob.raw('webrtc:answer', { callId, sdp: 'v=0 answer' });
    assert.deepEqual(await alice.next('webrtc:answer'), { callId, from: 'bob', sdp: 'v=0 answer' });

    for (let i = 0; i < 30; i++) {
      alice.raw('webrtc:ice-candidate', { callId, candidate: { candidate: `candidate:${i}`, sdpMid: '0', sdpMLineIndex: 0 } });
    }
    alice.raw('webrtc:ice-candidate', { callId, candidate: null });
    for (let i = 0; i < 30; i++) {
      const c = await bob.next('webrtc:ice-candidate');
      assert.equal(c.candidate?.candidate, `candidate:${i}`, 'candidates arrive in the order sent');
      assert.equal(c.from, 'alice');
    }
    assert.equal((await bob.next('webrtc:ice-candidate')).candidate, null, 'end-of-candidates is relayed');

    for (const control of CONTROL_EVENTS) {
      expectOk(await alice.request(control, { callId }));
      assert.deepEqual(await bob.next(control), { callId, userId: 'alice' });
    }
    expectOk(await bob.request('call:mute', { callId }));
    expectOk(await bob.request('call:mute', { callId }));
    assert.deepEqual(await alice.next('call:mute'), { callId, userId: 'bob' }, 'a repeated control is harmless');

    expectOk(await alice.request('call:end', { callId }));
    const ended = await bob.next('call:ended');
    assert.equal(ended.callId, callId);
    assert.equal(ended.reason, 'hangup');
    assert.deepEqual(ended.by, { id: 'alice', name: 'Alice' });
    assert.ok(ended.durationMs >= 0);

    assert.equal(errorCode(await alice.request('webrtc:offer', { callId, sdp: 'late' })), 'invalid_state', 'no relay after the end');
  });

  test('decline: the caller hears declined', async () => {
    const carol = await user('carol');
    const dave = await user('dave');
    const callId = await ring(carol, [dave], 'dave');
    expectOk(await dave.request('call:reject', { callId }));
    assert.deepEqual(await carol.next('call:rejected'), { callId, reason: 'declined' });
  });

  test('cancel: every callee device hears cancelled', async () => {
    const erin = await user('erin');
    const frank = await user('frank');
    const callId = await ring(erin, [frank], 'frank');
    expectOk(await erin.request('call:cancel', { callId }));
    assert.deepEqual(await frank.next('call:cancelled'), { callId, reason: 'cancelled' });
    assert.equal(errorCode(await frank.request('call:accept', { callId })), 'invalid_state', 'accept after cancel loses');
  });

  test('a second active call is refused and a busy callee answers busy', async () => {
    const gina = await user('gina');
    const hank = await user('hank');
    const ivan = await user('ivan');
    await establish(gina, hank, 'hank');
    assert.equal(errorCode(await gina.request('call:request', { to: 'ivan' })), 'already_in_call');
    const ack = await ivan.request<{ callId: string }>('call:request', { to: 'gina' });
    expectOk(ack);
    assert.deepEqual(await ivan.next('call:busy'), { callId: ack.callId, to: 'gina' });
  });
});
