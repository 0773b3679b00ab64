import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { describe, test } from 'node:test';
import { CONTROL_EVENTS } from '@switchboard/protocol';
import { errorCode, establish, expectOk, ring, serverSuite } from './helpers.js';

describe('the rules of a call', () => {
  const { names, user } = serverSuite({ RING_TIMEOUT_MS: '400', RATE_LIMITS: 'off' });

  test('calling oneself → self_call; an offline or unknown user → unavailable, and no call is made', async () => {
    const [a] = names('a');
    const alice = await user(a!);
    assert.equal(errorCode(await alice.request('call:request', { to: a })), 'self_call');
    assert.equal(errorCode(await alice.request('call:request', { to: 'nobody-here' })), 'unavailable');
    const list = await alice.request<{ users: { id: string; status: string }[] }>('user:list');
    assert.ok(list.ok);
    assert.ok(list.users.every((u) => u.status === 'available' || u.id !== a));
    const [b] = names('b');
    const bob = await user(b!);
    expectOk(await alice.request('call:request', { to: b }));
    await bob.next('call:incoming');
  });

  test('unanswered after RING_TIMEOUT_MS: caller gets rejected/timeout, every device cancelled/timeout', async () => {
    const [a, b] = names('a', 'b');
    const alice = await user(a!);
    const phone = await user(b!);
    const laptop = await user(b!);
    const started = Date.now();
    const callId = await ring(alice, [phone, laptop], b!);
    assert.deepEqual(await alice.next('call:rejected'), { callId, reason: 'timeout' });
    assert.ok(Date.now() - started >= 350, 'not before the timeout');
    assert.deepEqual(await phone.next('call:cancelled'), { callId, reason: 'timeout' });
    assert.deepEqual(await laptop.next('call:cancelled'), { callId, reason: 'timeout' });
    assert.equal(errorCode(await phone.request('call:accept', { callId })), 'invalid_state');
  });

  test('every device rings; one accepts, the others hear answered_elsewhere; a second accept loses', async () => {
    const [a, b] = names('a', 'b');
    const alice = await user(a!);
    const phone = await user(b!);
    const laptop = await user(b!);
    const callId = await ring(alice, [phone, laptop], b!);
    expectOk(await laptop.request('call:accept', { callId }));
    assert.deepEqual(await phone.next('call:cancelled'), { callId, reason: 'answered_elsewhere' });
    assert.equal(errorCode(await phone.request('call:accept', { callId })), 'invalid_state');
    await alice.next('call:accepted');
    alice.socket.emit('webrtc:offer', { callId, sdp: 'v=0' });
    await laptop.next('webrtc:offer');
    await phone.sync();
    assert.equal(phone.received('webrtc:offer').length, 0, 'only the bound device gets the relay');
    assert.equal(errorCode(await phone.request('webrtc:answer', { callId, sdp: 'v=0' })), 'forbidden', 'the unbound device may not relay');
    assert.equal(errorCode(await phone.request('call:end', { callId })), 'forbidden', 'nor end the call');
  });

  test('one device declines: the caller hears declined, the others declined_elsewhere', async () => {
    const [a, b] = names('a', 'b');
    const alice = await user(a!);
    const phone = await user(b!);
    const laptop = await user(b!);
    const callId = await ring(alice, [phone, laptop], b!);
    expectOk(await phone.request('call:reject', { callId }));
    assert.deepEqual(await alice.next('call:rejected'), { callId, reason: 'declined' });
    assert.deepEqual(await laptop.next('call:cancelled'), { callId, reason: 'declined_elsewhere' });
  });

  test('two devices accepting at the same instant: exactly one wins', async () => {
    for (let round = 0; round < 20; round++) {
      const [a, b] = names('a', 'b');
      const alice = await user(a!);
      const phone = await user(b!);
      const laptop = await user(b!);
      const callId = await ring(alice, [phone, laptop], b!);
      const acks = await Promise.all([phone.request('call:accept', { callId }), laptop.request('call:accept', { callId })]);
      assert.equal(acks.filter((x) => x.ok).length, 1, `round ${round}: one winner`);
      assert.deepEqual(acks.filter((x) => !x.ok).map(errorCode), ['invalid_state']);
      [alice, phone, laptop].forEach((c) => c.close());
    }
  });

  test('accept racing cancel: exactly one outcome', async () => {
    for (let round = 0; round < 20; round++) {
      const [a, b] = names('a', 'b');
      const alice = await user(a!);
      const bob = await user(b!);
      const callId = await ring(alice, [bob], b!);
      const [cancel, accept] = await Promise.all([alice.request('call:cancel', { callId }), bob.request('call:accept', { callId })]);
      assert.equal([cancel, accept].filter((x) => x.ok).length, 1, `round ${round}: one outcome`);
      if (accept.ok) {
        assert.equal(errorCode(cancel), 'invalid_state');
        await alice.next('call:accepted');
      } else {
        assert.equal(errorCode(accept), 'invalid_state');
        await bob.next('call:cancelled');
      }
      [alice, bob].forEach((c) => c.close());
    }
  });

  test('glare: crossing requests leave exactly one ringing call, the other side hears busy (many rounds)', async () => {
    for (let round = 0; round < 30; round++) {
      const [a, b] = names('a', 'b');
      const alice = await user(a!);
      const bob = await user(b!);
      const [ackA, ackB] = await Promise.all([
        alice.request<{ callId: string }>('call:request', { to: b }),
        bob.request<{ callId: string }>('call:request', { to: a }),
      ]);
      expectOk(ackA);
      expectOk(ackB);
      const busyA = alice.next('call:busy', undefined, 2000).then(() => 'a').catch(() => null);
      const busyB = bob.next('call:busy', undefined, 2000).then(() => 'b').catch(() => null);
      const incomingA = alice.next('call:incoming', undefined, 2000).then(() => 'a').catch(() => null);
      const incomingB = bob.next('call:incoming', undefined, 2000).then(() => 'b').catch(() => null);
      const winner = await Promise.race([incomingA, incomingB]);
      assert.ok(winner, `round ${round}: one call rings`);
      // The callee of the surviving call is the one who rang; the other side's request was busy.
      const loser = winner === 'a' ? 'a' : 'b';
      assert.equal(await (loser === 'a' ? busyA : busyB), loser, `round ${round}: the crossing request is busy`);
      await alice.sync();
      await bob.sync();
      assert.equal(alice.received('call:incoming').length + bob.received('call:incoming').length, 0, 'never two rings');
      [alice, bob].forEach((c) => c.close());
    }
  });

  test('a repeated call:request with the same callId is the same call and never rings twice', async () => {
    const [a, b] = names('a', 'b');
    const alice = await user(a!);
    const bob = await user(b!);
    const callId = randomUUID();
    const acks = await Promise.all([1, 2, 3].map(() => alice.request<{ callId: string }>('call:request', { to: b, callId })));
    for (const ack of acks) {
      expectOk(ack);
      assert.equal(ack.callId, callId);
    }
    await bob.next('call:incoming', (p) => p.callId === callId);
    await bob.sync();
    assert.equal(bob.received('call:incoming').length, 0, 'one ring');
    const carol = await user(names('c')[0]!);
    assert.equal(errorCode(await carol.request('call:request', { to: b, callId })), 'invalid_state', 'another caller cannot reuse it');
  });

  test('call:end while ringing cancels (caller) or declines (callee)', async () => {
    const [a, b] = names('a', 'b');
    const alice = await user(a!);
    const bob = await user(b!);
    let callId = await ring(alice, [bob], b!);
    expectOk(await alice.request('call:end', { callId }));
    assert.deepEqual(await bob.next('call:cancelled'), { callId, reason: 'cancelled' });
    callId = await ring(alice, [bob], b!);
    expectOk(await bob.request('call:end', { callId }));
    assert.deepEqual(await alice.next('call:rejected'), { callId, reason: 'declined' });
  });

  test('a third party can do nothing to someone else\'s call, and learns nothing from it', async () => {
    const [a, b, m] = names('a', 'b', 'mallory');
    const alice = await user(a!);
    const bob = await user(b!);
    const mallory = await user(m!);
    const ringingId = await ring(alice, [bob], b!);
    for (const event of ['call:accept', 'call:reject', 'call:cancel', 'call:end']) {
      assert.equal(errorCode(await mallory.request(event, { callId: ringingId })), 'forbidden', `${event} on a ringing call`);
    }
    expectOk(await bob.request('call:accept', { callId: ringingId }));
    for (const event of ['call:accept', 'call:reject', 'call:cancel', 'call:end', ...CONTROL_EVENTS]) {
      assert.equal(errorCode(await mallory.request(event, { callId: ringingId })), 'forbidden', `${event} on an active call`);
    }
    for (const [event, payload] of [
      ['webrtc:offer', { callId: ringingId, sdp: 'v=0 evil' }],
      ['webrtc:answer', { callId: ringingId, sdp: 'v=0 evil' }],
      ['webrtc:ice-candidate', { callId: ringingId, candidate: { candidate: 'candidate:evil' } }],
    ] as const) {
      assert.equal(errorCode(await mallory.request(event, payload)), 'forbidden', event);
    }
    assert.equal(errorCode(await mallory.request('call:end', { callId: randomUUID() })), 'call_not_found');
    await alice.sync();
    await bob.sync();
    const leaked = [...alice.inbox, ...bob.inbox].filter((r) => r.event.startsWith('webrtc:') || r.event === 'call:ended');
    assert.deepEqual(leaked, [], 'nothing reached the parties');
  });

  test('a client cannot speak for someone else: from is always the sender', async () => {
    const [a, b] = names('a', 'b');
    const alice = await user(a!);
    const bob = await user(b!);
    const callId = await establish(alice, bob, b!);
    alice.raw('webrtc:offer', { callId, sdp: 'v=0', from: 'someone-else' });
    const offer = await bob.next('webrtc:offer');
    assert.equal(offer.from, a);
    assert.deepEqual(Object.keys(offer).sort(), ['callId', 'from', 'sdp'], 'unknown fields are not relayed');
    alice.raw('call:mute', { callId, userId: 'someone-else' });
    assert.deepEqual(await bob.next('call:mute'), { callId, userId: a });
  });
});
