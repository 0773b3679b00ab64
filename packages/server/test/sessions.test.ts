import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { describe, test } from 'node:test';
import { RawClient } from './hostile.js';
import { errorCode, establish, expectOk, openSocket, ring, serverSuite, tokenFor, type TestClient } from './helpers.js';

describe('sessions that outlive their socket', () => {
  const suite = serverSuite({ RECONNECT_GRACE_MS: '500', MAX_RECONNECT_ATTEMPTS: '3', RATE_LIMITS: 'off' });
  const { names, user, keep } = suite;
  /** Opens a new socket and resumes `old`'s session on it. */
  const resume = async (old: TestClient, userId: string, token?: string) => {
    const fresh = keep(await openSocket(suite.server, { via: 'none' }));
    fresh.socket.emit('reconnect:attempt', { token: token ?? (await tokenFor(userId)), sessionId: old.auth!.sessionId });
    return fresh;
  };

  test('a transport loss mid-call: the peer hears reconnecting; back in time, reconnected, with a snapshot, and relay goes on', async () => {
    const [a, b] = names('a', 'b');
    const alice = await user(a!);
    const bob = await user(b!);
    const callId = await establish(alice, bob, b!);
    expectOk(await alice.request('call:mute', { callId }));
    expectOk(await bob.request('call:hold', { callId }));
    alice.socket.io.engine.close();
    assert.deepEqual(await bob.next('call:reconnecting'), { callId, userId: a });
    const back = await resume(alice, a!);
    const success = await back.next('reconnect:success');
    assert.equal(success.sessionId, alice.auth!.sessionId);
    assert.deepEqual(success.user, { id: a, name: alice.auth!.user.name });
    assert.equal(success.calls.length, 1);
    const snap = success.calls[0]!;
    assert.equal(snap.callId, callId);
    assert.equal(snap.state, 'active');
    assert.equal(snap.role, 'caller');
    assert.deepEqual(snap.peer, { id: b, name: bob.auth!.user.name });
    assert.deepEqual(snap.self, { muted: true, held: false, videoOff: false });
    assert.deepEqual(snap.remote, { muted: false, held: true, videoOff: false });
    assert.equal(snap.peerReconnecting, false, 'the peer stayed');
    assert.ok(snap.answeredAt && snap.answeredAt >= snap.createdAt);
    assert.deepEqual(await bob.next('call:reconnected'), { callId, userId: a });
    back.socket.emit('webrtc:offer', { callId, sdp: 'v=0 ice-restart' });
    assert.equal((await bob.next('webrtc:offer')).sdp, 'v=0 ice-restart');
    bob.socket.emit('webrtc:answer', { callId, sdp: 'v=0 answer' });
    assert.equal((await back.next('webrtc:answer')).sdp, 'v=0 answer');
  });

  test('v1.1: the snapshot carries the current media: an audio call a party turned to video says video', async () => {
    const [a, b] = names('a', 'b');
    const alice = await user(a!);
    const bob = await user(b!);
    const callId = await establish(alice, bob, b!);
    expectOk(await bob.request('call:video-on', { callId }));
    await alice.next('call:video-on');
    alice.socket.io.engine.close();
    await bob.next('call:reconnecting');
    const snap = (await (await resume(alice, a!)).next('reconnect:success')).calls[0]!;
    assert.deepEqual(snap.media, { audio: true, video: true });
    assert.deepEqual(snap.remote, { muted: false, held: false, videoOff: false });
  });

  test('both parties lost at once: the first back learns that its peer is still away (peerReconnecting)', async () => {
    const [a, b] = names('a', 'b');
    const alice = await user(a!);
    const bob = await user(b!);
    const callId = await establish(alice, bob, b!);
    alice.socket.io.engine.close();
    assert.deepEqual(await bob.next('call:reconnecting'), { callId, userId: a });
    bob.socket.io.engine.close();
    await bob.disconnected;
    const back = await resume(alice, a!);
    const snap = (await back.next('reconnect:success')).calls[0]!;
    assert.equal(snap.callId, callId);
    assert.equal(snap.peerReconnecting, true);
    const bobBack = await resume(bob, b!);
    assert.equal((await bobBack.next('reconnect:success')).calls[0]!.peerReconnecting, false);
    assert.deepEqual(await back.next('call:reconnected'), { callId, userId: b });
  });

  test('not back in time: the peer hears call:ended connection_lost, and the session is gone', async () => {
    const [a, b] = names('a', 'b');
    const alice = await user(a!);
    const bob = await user(b!);
    const callId = await establish(alice, bob, b!);
    const lostAt = Date.now();
    bob.socket.io.engine.close();
    await alice.next('call:reconnecting');
    const ended = await alice.next('call:ended');
    assert.equal(ended.callId, callId);
    assert.equal(ended.reason, 'connection_lost');
    assert.ok(Date.now() - lostAt >= 450, 'after the grace');
    const late = await resume(bob, b!);
    assert.deepEqual(await late.next('reconnect:failed'), { reason: 'session_expired', message: 'the session is unknown or its grace has run out' });
    assert.equal(late.socket.connected, true, 'the socket stays open after reconnect:failed');
    late.socket.emit('auth:handshake', { token: await tokenFor(b!) });
    assert.equal((await late.next('auth:success')).user.id, b, 'and may authenticate afresh');
    expectOk(await alice.request('call:request', { to: b }));
  });

  test('a deliberate disconnect ends the call at once as a hangup', async () => {
    const [a, b] = names('a', 'b');
    const alice = await user(a!);
    const bob = await user(b!);
    const callId = await establish(alice, bob, b!);
    bob.close();
    const ended = await alice.next('call:ended');
    assert.deepEqual({ callId: ended.callId, reason: ended.reason, by: ended.by }, { callId, reason: 'hangup', by: { id: b, name: bob.auth!.user.name } });
    await alice.sync();
    assert.equal(alice.received('call:reconnecting').length, 0);
  });

  test('a caller lost while ringing cancels the call: caller_disconnected', async () => {
    const [a, b] = names('a', 'b');
    const alice = await user(a!);
    const bob = await user(b!);
    const callId = await ring(alice, [bob], b!);
    alice.socket.io.engine.close();
    assert.deepEqual(await bob.next('call:cancelled'), { callId, reason: 'caller_disconnected' });
  });

  test('a ringing device lost: the others ring on; when none is left the caller hears unavailable', async () => {
    const [a, b] = names('a', 'b');
    const alice = await user(a!);
    const phone = await user(b!);
    const laptop = await user(b!);
    const callId = await ring(alice, [phone, laptop], b!);
    phone.socket.io.engine.close();
    await phone.disconnected;
    await alice.sync();
    assert.equal(alice.received('call:rejected').length, 0, 'still ringing on the laptop');
    laptop.close();
    assert.deepEqual(await alice.next('call:rejected'), { callId, reason: 'unavailable' });
  });

  test('reconnect:attempt with a token of another user → invalid_token; an unknown session → session_expired', async () => {
    const [a, m] = names('a', 'mallory');
    const alice = await user(a!);
    alice.socket.io.engine.close();
    await alice.disconnected;
    const thief = await resume(alice, m!);
    assert.equal((await thief.next('reconnect:failed')).reason, 'invalid_token');
    const forged = keep(await openSocket(suite.server, { via: 'none' }));
    forged.socket.emit('reconnect:attempt', { token: await tokenFor(a!), sessionId: 'no-such-session-id-000000' });
    assert.equal((await forged.next('reconnect:failed')).reason, 'session_expired');
    const bad = await resume(alice, a!, 'garbage');
    assert.equal((await bad.next('reconnect:failed')).reason, 'invalid_token');
    const real = await resume(alice, a!);
    await real.next('reconnect:success');
  });

  test('resuming a session whose socket is still attached takes it over, disconnects the old socket and tells the peer', async () => {
    const [a, b] = names('a', 'b');
    const alice = await user(a!);
    const bob = await user(b!);
    const callId = await establish(alice, bob, b!);
    const takeover = await resume(alice, a!);
    const success = await takeover.next('reconnect:success');
    assert.equal(success.calls[0]?.callId, callId);
    assert.equal(await alice.disconnected, 'io server disconnect');
    // What bob sent meanwhile went to the old socket: he is told alice is back, as after a loss.
    assert.deepEqual(await bob.next('call:reconnected'), { callId, userId: a });
    takeover.socket.emit('webrtc:offer', { callId, sdp: 'v=0 from the new socket' });
    assert.equal((await bob.next('webrtc:offer')).sdp, 'v=0 from the new socket');
    await bob.sync();
    assert.equal(bob.received('call:ended').length, 0, 'the call went on');
  });

  test('more than MAX_RECONNECT_ATTEMPTS resumptions within one grace window → max_attempts, and the session is closed', async () => {
    const [a, b] = names('a', 'b');
    const alice = await user(a!);
    const bob = await user(b!);
    await establish(alice, bob, b!);
    let current = alice;
    for (let i = 0; i < 3; i++) {
      current = await resume(current, a!);
      await current.next('reconnect:success');
      current.auth = alice.auth;
    }
    const fourth = await resume(current, a!);
    assert.equal((await fourth.next('reconnect:failed')).reason, 'max_attempts');
    assert.equal((await bob.next('call:ended')).reason, 'connection_lost');
    const again = await resume(current, a!);
    assert.equal((await again.next('reconnect:failed')).reason, 'session_expired');
    assert.equal(errorCode(await again.request('call:request', { to: b })), 'unauthenticated');
  });
});

describe('a connection that dies without closing', () => {
  const suite = serverSuite({ PING_INTERVAL_MS: '300', PING_TIMEOUT_MS: '300', RECONNECT_GRACE_MS: '5000', RATE_LIMITS: 'off' });

  test('a socket that stops answering pings is a transport loss within PING_INTERVAL_MS + PING_TIMEOUT_MS: the peer hears reconnecting', async () => {
    const silent = await RawClient.open(suite.server, { auth: { token: await tokenFor('silent-sue') } });
    await silent.next('auth:success');
    const peer = await suite.user('sue-peer');
    const callId = randomUUID();
    silent.emit('call:request', { to: 'sue-peer', callId });
    await peer.next('call:incoming');
    expectOk(await peer.request('call:accept', { callId }));
    await silent.next('call:accepted');
    // The network under it is gone: nothing more arrives, nothing is answered, nothing closes.
    silent.pause();
    assert.deepEqual(await peer.next('call:reconnecting', undefined, 5000), { callId, userId: 'silent-sue' });
    silent.terminate();
  });
});
