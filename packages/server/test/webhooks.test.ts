/**
 * Webhooks: every call event reaches a local receiver signed as the protocol
 * says, in order per call; a receiver that is down at first still gets every
 * event, and signalling never waits for it; the queue is bounded.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { describe, test } from 'node:test';
import { pino } from 'pino';
import { loadConfig, startServer, type SwitchboardServer } from '../src/index.js';
import { Metrics } from '../src/metrics.js';
import { signWebhook, verifyWebhook, WebhookSender, type WebhookEvent } from '../src/webhooks.js';
import { freePort } from './cluster/harness.js';
import { errorCode, establish, expectOk, ring, signIn, TEST_SECRET } from './helpers.js';
import { captureLogger, Receiver, waitFor } from './ops-helpers.js';

const WEBHOOK_SECRET = 'whsec-test-0123456789abcdef';
const silent = pino({ level: 'silent' });

async function serverWithWebhooks(
  url: string,
  env: Record<string, string> = {},
  senderOptions: Partial<ConstructorParameters<typeof WebhookSender>[0]> = {},
): Promise<{ server: SwitchboardServer; sender: WebhookSender; metrics: Metrics }> {
  const config = loadConfig({ PORT: '0', HOST: '127.0.0.1', JWT_SECRET: TEST_SECRET, LOG_LEVEL: 'silent', ...env });
  const metrics = new Metrics();
  const sender = new WebhookSender({ url, secret: WEBHOOK_SECRET, logger: silent, metrics, ...senderOptions });
  const server = await startServer(config, { hooks: [sender], metrics, logger: silent });
  return { server, sender, metrics };
}

async function deliveries(metrics: Metrics, result: string): Promise<number> {
  const found = (await metrics.webhookDeliveries.get()).values.find((v) => v.labels.result === result);
  return found?.value ?? 0;
}

function typesOf(events: WebhookEvent[], callId: string): string[] {
  return events.filter((e) => e.callId === callId).map((e) => e.type);
}

describe('webhooks', () => {
  test('a completed, a declined and a missed call and an unreachable callee: signed events with their content', async () => {
    const receiver = await Receiver.start(WEBHOOK_SECRET);
    const { server, sender } = await serverWithWebhooks(receiver.url, { RING_TIMEOUT_MS: '400' });
    try {
      const alice = await signIn(server, 'alice', { tenant: 'acme' });
      const bob = await signIn(server, 'bob', { tenant: 'acme' });

      const completed = await establish(alice, bob, 'bob');
      expectOk(await alice.request('call:end', { callId: completed }));
      await bob.next('call:ended');
      const ended = await receiver.next('call.ended (completed)', (e) => e.type === 'call.ended' && e.callId === completed);

      const declined = await ring(alice, [bob], 'bob');
      expectOk(await bob.request('call:reject', { callId: declined }));
      await alice.next('call:rejected');
      const declinedEnd = await receiver.next('call.ended (declined)', (e) => e.type === 'call.ended' && e.callId === declined);

      const missed = await ring(alice, [bob], 'bob');
      assert.equal((await alice.next('call:rejected', (p) => p.callId === missed)).reason, 'timeout');
      const missedEvent = await receiver.next('call.missed', (e) => e.type === 'call.missed' && e.callId === missed);

      const unreachableId = randomUUID();
      assert.equal(errorCode(await alice.request('call:request', { to: 'carol', callId: unreachableId })), 'unavailable');
      const unreachable = await receiver.next('call.unreachable', (e) => e.type === 'call.unreachable');
      await receiver.next('call.ended (missed)', (e) => e.type === 'call.ended' && e.callId === missed);

      // Every request signed as the protocol says, checked independently; the module's verifier agrees.
      assert.ok(receiver.deliveries.length > 0);
      for (const d of receiver.deliveries) {
        assert.ok(d.signatureValid, `signature of ${d.event.type}`);
        assert.ok(verifyWebhook(WEBHOOK_SECRET, d.header, d.raw));
        assert.ok(!verifyWebhook('another-secret', d.header, d.raw));
        assert.ok(!verifyWebhook(WEBHOOK_SECRET, d.header, d.raw.replace('acme', 'acmf')), 'a changed body fails');
      }
      const events = receiver.accepted;
      assert.equal(new Set(events.map((e) => e.id)).size, events.length, 'each event once, with its own id');

      assert.deepEqual(typesOf(events, completed), ['call.started', 'call.answered', 'call.ended']);
      assert.deepEqual(typesOf(events, declined), ['call.started', 'call.ended']);
      assert.deepEqual(typesOf(events, missed), ['call.started', 'call.ended', 'call.missed']);
      assert.deepEqual(typesOf(events, unreachableId), ['call.unreachable']);

      for (const e of events.filter((e) => e.type !== 'call.unreachable')) {
        assert.equal(e.tenant, 'acme');
        assert.deepEqual(e.caller, { id: 'alice', name: 'Alice' });
        assert.deepEqual(e.callee, { id: 'bob', name: 'Bob' });
        assert.equal(typeof e.timestamp, 'number');
      }
      const answered = events.find((e) => e.type === 'call.answered' && e.callId === completed)!;
      assert.ok(answered.type === 'call.answered' && answered.answeredAt >= answered.createdAt && answered.setupMs >= 0);

      assert.ok(ended.type === 'call.ended');
      assert.equal(ended.outcome, 'completed');
      assert.equal(ended.reason, 'hangup');
      assert.equal(ended.endedBy, 'alice');
      assert.ok(ended.endedAt >= ended.createdAt && ended.durationMs >= 0);
      assert.equal(ended.history.caller.direction, 'outgoing');
      assert.deepEqual(ended.history.caller.peer, { id: 'bob', name: 'Bob' });
      assert.equal(ended.history.callee.direction, 'incoming');
      assert.deepEqual(ended.history.callee.peer, { id: 'alice', name: 'Alice' });
      assert.equal(ended.history.callee.callId, completed);

      assert.ok(declinedEnd.type === 'call.ended');
      assert.equal(declinedEnd.outcome, 'declined');
      assert.equal(declinedEnd.endedBy, 'bob');
      assert.equal(declinedEnd.answeredAt, null);

      assert.ok(missedEvent.type === 'call.missed');
      assert.equal(missedEvent.outcome, 'missed');
      assert.equal(missedEvent.reason, 'timeout');
      assert.equal(missedEvent.history.callee.outcome, 'missed');

      assert.deepEqual(unreachable.caller, { id: 'alice', name: 'Alice' });
      assert.deepEqual(unreachable.callee, { id: 'carol' });
      assert.equal(unreachable.tenant, 'acme');
      assert.ok(await sender.flush(5000));
      alice.close();
      bob.close();
    } finally {
      await server.close();
      sender.close();
      await receiver.close();
    }
  });

  test('a receiver down at first (refused, then 500s) still gets every event, in order per call; signalling never waits', async () => {
    const port = await freePort();
    const { server, sender, metrics } = await serverWithWebhooks(`http://127.0.0.1:${port}/hooks/switchboard`, {}, {
      retryDelaysMs: [200, 400, 800, 1600, 3200],
      attemptTimeoutMs: 1000,
    });
    let receiver: Receiver | undefined;
    try {
      const alice = await signIn(server, 'alice');
      const bob = await signIn(server, 'bob');
      // Nothing listens on the port: every attempt is refused while calls go on.
      const callIds: string[] = [];
      for (let i = 0; i < 3; i++) {
        const started = Date.now();
        const callId = await establish(alice, bob, 'bob');
        alice.socket.emit('webrtc:offer', { callId, sdp: 'v=0 offer' });
        await bob.next('webrtc:offer');
        expectOk(await alice.request('call:end', { callId }));
        await bob.next('call:ended');
        assert.ok(Date.now() - started < 1000, `call ${i} took ${Date.now() - started} ms with the receiver down`);
        callIds.push(callId);
      }
      await waitFor('a refused attempt to be scheduled for retry', async () => (await deliveries(metrics, 'retry')) > 0);
      assert.equal(await deliveries(metrics, 'ok'), 0);

      // The receiver comes up and answers 500 three times, then 200.
      receiver = await Receiver.start(WEBHOOK_SECRET, { port, respond: (n) => (n <= 3 ? 500 : 200) });
      // A call placed while it answers 500s goes through at once too.
      const started = Date.now();
      const fourth = await establish(alice, bob, 'bob');
      expectOk(await bob.request('call:end', { callId: fourth }));
      await alice.next('call:ended');
      assert.ok(Date.now() - started < 1000);
      callIds.push(fourth);

      const r = receiver;
      await waitFor('every event accepted', () => r.accepted.length >= callIds.length * 3, 15_000);
      for (const callId of callIds) {
        assert.deepEqual(typesOf(r.accepted, callId), ['call.started', 'call.answered', 'call.ended'], `order of ${callId}`);
      }
      assert.ok(r.deliveries.every((d) => d.signatureValid));
      assert.ok(r.deliveries.some((d) => d.status === 500), 'the 500s were retried');
      // The receiver records an event before its answer reaches the sender, which counts it then.
      await waitFor('every delivery counted', async () => (await deliveries(metrics, 'ok')) >= callIds.length * 3);
      assert.equal(await deliveries(metrics, 'ok'), callIds.length * 3);
      assert.equal(await deliveries(metrics, 'failed'), 0);
      assert.ok(await sender.flush(5000));
      assert.equal((await metrics.webhookQueue.get()).values[0]?.value, 0);
      alice.close();
      bob.close();
    } finally {
      await server.close();
      sender.close();
      await receiver?.close();
    }
  });

  test('the queue is bounded: past its limit the oldest waiting event is dropped with a log line', async () => {
    // A receiver that never answers: the first event stays in flight.
    let release!: () => void;
    const held = new Promise<number>((resolve) => (release = () => resolve(200)));
    const receiver = await Receiver.start(WEBHOOK_SECRET, { respond: () => held });
    const { logger, lines } = captureLogger('info');
    const metrics = new Metrics();
    const sender = new WebhookSender({ url: receiver.url, secret: WEBHOOK_SECRET, logger, metrics, maxQueue: 2, concurrency: 1 });
    try {
      const event = (n: number): WebhookEvent => ({
        id: `event-${n}`,
        type: 'call.unreachable',
        timestamp: Date.now(),
        callId: `call-${n}` as never,
        tenant: '',
        caller: { id: 'alice' as never, name: 'Alice' },
        callee: { id: 'bob' as never },
      });
      for (let n = 1; n <= 4; n++) sender.enqueue(event(n));
      assert.equal(sender.pending, 2);
      assert.equal(await deliveries(metrics, 'dropped'), 2);
      const dropped = lines.map((l) => JSON.parse(l) as Record<string, unknown>).filter((e) => e.msg === 'webhook dropped');
      assert.deepEqual(dropped.map((e) => e.callId), ['call-2', 'call-3'], 'the oldest waiting ones, never the one in flight');
      release();
      assert.ok(await sender.flush(5000));
      assert.deepEqual(receiver.accepted.map((e) => e.id), ['event-1', 'event-4']);
    } finally {
      sender.close();
      await receiver.close();
    }
  });

  test('credentials in WEBHOOK_URL go out as HTTP Basic authorization, not in the URL', async () => {
    const receiver = await Receiver.start(WEBHOOK_SECRET);
    const url = new URL(receiver.url);
    url.username = 'hook';
    url.password = 'pa%40ss';
    const sender = new WebhookSender({ url: url.toString(), secret: WEBHOOK_SECRET, logger: silent });
    try {
      sender.unreachable({ callId: 'c1' as never, tenant: '', caller: { id: 'alice' as never, name: 'Alice' }, callee: 'bob' as never });
      await receiver.next('call.unreachable', (e) => e.callId === 'c1');
      assert.equal(receiver.deliveries[0]!.authorization, `Basic ${Buffer.from('hook:pa@ss').toString('base64')}`);
      assert.ok(receiver.deliveries[0]!.signatureValid);
    } finally {
      sender.close();
      await receiver.close();
    }
  });

  test('signature format: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, t.body)>, stale ones refused', () => {
    const body = '{"type":"call.started"}';
    const header = signWebhook('k', body, 1_700_000_000);
    assert.match(header, /^t=1700000000,v1=[0-9a-f]{64}$/);
    assert.ok(verifyWebhook('k', header, body, { nowMs: 1_700_000_100_000 }));
    assert.ok(!verifyWebhook('k', header, body, { nowMs: 1_700_001_000_000 }), 'older than five minutes');
    assert.ok(!verifyWebhook('k', 't=1700000000,v1=zz', body, { nowMs: 1_700_000_000_000 }));
  });
});
