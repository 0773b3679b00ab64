/**
 * Graceful drain in memory mode: every call ends as `connection_lost` for
 * both parties with a history record, the node takes no new connection, and
 * the process (SIGTERM) exits 0 within 10 s, a second SIGTERM changing
 * nothing and queued webhooks going out first.
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { describe, test } from 'node:test';
import { userKey } from '../src/index.js';
import { startNode } from './cluster/harness.js';
import { establish, openSocket, ring, signIn, startTestServer } from './helpers.js';
import { Receiver, waitFor } from './ops-helpers.js';

describe('drain, memory mode', () => {
  test('both parties of an active call get call:ended connection_lost and a history record; a ringing call is cancelled; no new connections', async () => {
    const server = await startTestServer();
    try {
      const alice = await signIn(server, 'alice');
      const bob = await signIn(server, 'bob');
      const carol = await signIn(server, 'carol');
      const dave = await signIn(server, 'dave');
      const active = await establish(alice, bob, 'bob');
      const ringing = await ring(carol, [dave], 'dave');

      const drained = server.drain();
      assert.equal(server.draining, true);
      assert.equal(server.drain(), drained, 'a second drain is the same drain');
      await assert.rejects(openSocket(server), 'no new connection while draining');

      for (const party of [alice, bob]) {
        const ended = await party.next('call:ended', (p) => p.callId === active);
        assert.equal(ended.reason, 'connection_lost');
        assert.equal(typeof ended.durationMs, 'number');
      }
      assert.equal((await dave.next('call:cancelled', (p) => p.callId === ringing)).reason, 'caller_disconnected');
      assert.equal((await carol.next('call:rejected', (p) => p.callId === ringing)).reason, 'unavailable');
      for (const client of [alice, bob, carol, dave]) assert.equal(await client.disconnected, 'transport close', 'closed as a transport loss');
      await drained;

      for (const user of ['alice', 'bob']) {
        const { calls } = await server.store.listHistory(userKey('', user), 10, null);
        const record = calls.find((c) => c.callId === active);
        assert.equal(record?.outcome, 'completed', user);
        assert.equal(record?.reason, 'connection_lost', user);
      }
      const { calls } = await server.store.listHistory(userKey('', 'dave'), 10, null);
      assert.equal(calls.find((c) => c.callId === ringing)?.outcome, 'cancelled');
    } finally {
      await server.close();
    }
  });

  test('SIGTERM: call:ended to both, webhooks flushed, a second SIGTERM changes nothing, exit 0 within 10 s', async () => {
    const secret = 'drain-webhook-secret-0123456789';
    // The receiver holds its answer to call.ended until the test lets it go, so the
    // process is still draining (flushing) when the second SIGTERM arrives.
    let release!: () => void;
    const released = new Promise<number>((resolve) => (release = () => resolve(200)));
    const receiver = await Receiver.start(secret, { respond: (_n, e) => (e.type === 'call.ended' ? released : 200) });
    const node = await startNode({ WEBHOOK_URL: receiver.url, WEBHOOK_SECRET: secret });
    try {
      const alice = await signIn(node, 'alice');
      const bob = await signIn(node, 'bob');
      const callId = await establish(alice, bob, 'bob');
      await receiver.next('call.answered', (e) => e.type === 'call.answered' && e.callId === callId);

      const exited = once(node.child, 'exit');
      const startedAt = Date.now();
      node.child.kill('SIGTERM');
      for (const party of [alice, bob]) assert.equal((await party.next('call:ended', (p) => p.callId === callId)).reason, 'connection_lost');
      await waitFor('the call.ended webhook to be attempted', () => receiver.requests >= 3);
      node.child.kill('SIGTERM');
      await waitFor('the second SIGTERM to be ignored', () => node.logs.some((l) => l.msg === 'already draining; signal ignored'));
      assert.equal(node.child.exitCode, null, 'still flushing webhooks');
      release();
      const [code] = (await exited) as [number];
      assert.equal(code, 0);
      assert.ok(Date.now() - startedAt < 10_000, `exited after ${Date.now() - startedAt} ms`);

      const ended = await receiver.next('call.ended', (e) => e.type === 'call.ended' && e.callId === callId);
      assert.ok(ended.type === 'call.ended' && ended.reason === 'connection_lost');
      for (const msg of ['shutting down', 'draining', 'client transports closed', 'drained', 'exiting']) {
        assert.ok(node.logs.some((l) => l.msg === msg), `logged "${msg}"`);
      }
      assert.equal(node.logs.filter((l) => l.msg === 'draining').length, 1, 'one drain');
      assert.ok(receiver.deliveries.every((d) => d.signatureValid));
    } finally {
      release();
      await node.kill('SIGKILL');
      await receiver.close();
    }
  });
});
