/**
 * Graceful drain in Redis mode: a call survives its node's SIGTERM. The
 * client on the drained node loses its transport, resumes on the other node
 * with reconnect:attempt, and the call goes on; the drained process exits 0
 * within 10 s.
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { after, before, describe, test } from 'node:test';
import { establish, expectOk, openSocket, signIn, tokenFor, type TestClient } from '../helpers.js';
import { dropPrefix, freshPrefix, sharedRedis, startNode, type NodeProcess } from './harness.js';

describe('drain, Redis mode', () => {
  let redis: { url: string; release(): Promise<void> };
  const prefix = freshPrefix();
  let nodes: NodeProcess[] = [];
  const clients: TestClient[] = [];

  before(async () => {
    redis = await sharedRedis();
    const env = { REDIS_URL: redis.url, REDIS_PREFIX: prefix, RECONNECT_GRACE_MS: '15000', NODE_TIMEOUT_MS: '3000', RATE_LIMITS: 'off' };
    nodes = await Promise.all([startNode(env), startNode(env)]);
  });
  after(async () => {
    clients.forEach((c) => c.close());
    await Promise.all(nodes.map((node) => node.kill('SIGKILL')));
    await dropPrefix(redis.url, prefix);
    await redis.release();
  });

  test('a call survives its node SIGTERM: the drained client resumes on the other node and relay goes on', async () => {
    const [draining, staying] = nodes as [NodeProcess, NodeProcess];
    const alice = await signIn(draining, 'alice');
    const bob = await signIn(staying, 'bob');
    clients.push(alice, bob);
    const callId = await establish(alice, bob, 'bob');

    const exited = once(draining.child, 'exit');
    const startedAt = Date.now();
    draining.child.kill('SIGTERM');
    assert.equal(await alice.disconnected, 'transport close', 'a transport loss, so the client reconnects');
    assert.deepEqual(await bob.next('call:reconnecting', (p) => p.callId === callId), { callId, userId: 'alice' });

    // Back on the other node with the same session: the call is there, active.
    const again = await openSocket(staying, { via: 'none' });
    clients.push(again);
    const resumed = await again.request<{ sessionId: string }>('reconnect:attempt', {
      token: await tokenFor('alice'),
      sessionId: alice.auth!.sessionId,
    });
    expectOk(resumed);
    const success = await again.next('reconnect:success');
    assert.equal(success.sessionId, alice.auth!.sessionId);
    assert.deepEqual(
      success.calls.map((c) => [c.callId, c.state, c.role, c.peer.id]),
      [[callId, 'active', 'caller', 'bob']],
    );
    assert.deepEqual(await bob.next('call:reconnected', (p) => p.callId === callId), { callId, userId: 'alice' });

    // The resumed side re-offers (ICE restart); relay works both ways.
    again.socket.emit('webrtc:offer', { callId, sdp: 'v=0 ice-restart offer' });
    assert.deepEqual(await bob.next('webrtc:offer'), { callId, from: 'alice', sdp: 'v=0 ice-restart offer' });
    bob.socket.emit('webrtc:answer', { callId, sdp: 'v=0 answer' });
    assert.deepEqual(await again.next('webrtc:answer'), { callId, from: 'bob', sdp: 'v=0 answer' });
    bob.socket.emit('webrtc:ice-candidate', { callId, candidate: { candidate: 'candidate:1' } });
    assert.equal((await again.next('webrtc:ice-candidate')).candidate?.candidate, 'candidate:1');

    const [code] = (await exited) as [number];
    assert.equal(code, 0, 'the drained node exits 0');
    assert.ok(Date.now() - startedAt < 10_000, `exited after ${Date.now() - startedAt} ms`);
    const drained = draining.logs.find((l) => l.msg === 'drained');
    assert.equal(drained?.handedOver, true);
    assert.ok(!draining.logs.some((l) => l.msg === 'could not hand a session over while draining'));

    // And it ends normally, from the resumed side.
    expectOk(await again.request('call:end', { callId }));
    assert.equal((await bob.next('call:ended', (p) => p.callId === callId)).reason, 'hangup');
  });
});
