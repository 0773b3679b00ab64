/**
 * v1.1, `RING_OFFLINE=webhook`: a call to a visible user with no live session
 * rings with no device, `call.unreachable` goes to the host app at once, and
 * a device that signs in during the ring gets the call. A receiver that
 * refuses (non-2xx) or does not answer within the push bound ends the call as
 * `unavailable`; nobody coming ends it as a timeout, and the host app hears
 * how every pushed call ended. In memory mode, and in Redis mode with the
 * device signing in on another node.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { SwitchboardServer } from '../src/index.js';
import { pino } from 'pino';
import { PUSH_TIMEOUT_MS, WebhookSender, type WebhookEvent } from '../src/webhooks.js';
import { errorCode, expectOk, signIn, startTestServer, oneNode, twoNodesOnRedis, type TestClient, type TwoNodes as Servers } from './helpers.js';
import { Receiver } from './ops-helpers.js';

const SECRET = 'ring-offline-webhook-secret-0123456789';
const RING_TIMEOUT_MS = 4500;

function describeRingOffline(mode: string, start: (env: Record<string, string>) => Promise<Servers>): void {
  describe(`RING_OFFLINE=webhook (${mode})`, () => {
    let receiver: Receiver;
    let servers: Servers;
    /** An event of `callId` the receiver took. */
    const heard = (callId: string, type: string, match: (e: WebhookEvent) => boolean = () => true) =>
      receiver.next(type, (e) => e.callId === callId && e.type === type && match(e));
    const clients: TestClient[] = [];
    let n = 0;
    const name = (role: string) => `${role}${++n}`;
    const on = async (server: SwitchboardServer, id: string) => {
      const c = await signIn(server, id);
      clients.push(c);
      return c;
    };
    before(async () => {
      // Refuses pushes to users named `refuse…`; answers those to `slow…` after 5 s; takes everything else.
      receiver = await Receiver.start(SECRET, {
        respond: (_n, e) => {
          if (e.type !== 'call.unreachable') return 200;
          if (e.callee.id.startsWith('refuse')) return 503;
          return e.callee.id.startsWith('slow') ? new Promise((resolve) => setTimeout(() => resolve(200), 5000).unref()) : 200;
        },
      });
      servers = await start({ RING_OFFLINE: 'webhook', WEBHOOK_URL: receiver.url, WEBHOOK_SECRET: SECRET, RING_TIMEOUT_MS: String(RING_TIMEOUT_MS), RATE_LIMITS: 'off' });
    });
    after(async () => {
      clients.forEach((c) => c.close());
      await servers?.close();
      await receiver?.close();
      assert.deepEqual(receiver.deliveries.filter((d) => !d.signatureValid).map((d) => d.raw), [], 'every webhook was signed');
    });

    test('a call to a user with no device rings; the host app is told at once; the device that signs in gets the call and answers', async () => {
      const alice = await on(servers.caller, name('alice'));
      const bob = name('bob');
      const ack = await alice.request<{ callId: string }>('call:request', { to: bob });
      expectOk(ack);
      await heard(ack.callId, 'call.unreachable');
      const phone = await on(servers.late, bob);
      const incoming = await phone.next('call:incoming', (p) => p.callId === ack.callId);
      assert.ok(incoming.timeoutMs > 0 && incoming.timeoutMs <= RING_TIMEOUT_MS, `the time left: ${incoming.timeoutMs}`);
      expectOk(await phone.request('call:accept', { callId: ack.callId }));
      assert.equal((await alice.next('call:accepted')).callId, ack.callId);
      expectOk(await alice.request('call:end', { callId: ack.callId }));
      await phone.next('call:ended');
      await heard(ack.callId, 'call.answered');
      await heard(ack.callId, 'call.ended');
      assert.equal(receiver.deliveries.filter((d) => d.event.callId === ack.callId && d.event.type === 'call.unreachable').length, 1, 'pushed once');
    });

    test('a receiver that refuses the push ends the call at once as unavailable; the host app hears how it ended', async () => {
      const alice = await on(servers.caller, name('alice'));
      const refused = name('refuse');
      const ack = await alice.request<{ callId: string }>('call:request', { to: refused });
      expectOk(ack);
      assert.deepEqual(await alice.next('call:rejected', (p) => p.callId === ack.callId, 4000), { callId: ack.callId, reason: 'unavailable' });
      await heard(ack.callId, 'call.ended', (e) => e.type === 'call.ended' && e.outcome === 'unavailable');
      // A device that signs in now finds nothing ringing.
      const late = await on(servers.late, refused);
      await late.sync();
      assert.deepEqual(late.received('call:incoming'), []);
    });

    test('a receiver that does not answer within the push bound ends the call as unavailable, not later than a few seconds', async () => {
      const alice = await on(servers.caller, name('alice'));
      const started = Date.now();
      const ack = await alice.request<{ callId: string }>('call:request', { to: name('slow') });
      expectOk(ack);
      assert.deepEqual(await alice.next('call:rejected', (p) => p.callId === ack.callId, 6000), { callId: ack.callId, reason: 'unavailable' });
      assert.ok(Date.now() - started < PUSH_TIMEOUT_MS + 1000, `ended ${Date.now() - started} ms after the request, before the ring would have timed out`);
    });

    test('nobody comes: the caller hears timeout, the host app call.missed; the caller may cancel a pushed call too', async () => {
      const alice = await on(servers.caller, name('alice'));
      const ack = await alice.request<{ callId: string }>('call:request', { to: name('asleep') });
      expectOk(ack);
      assert.deepEqual(await alice.next('call:rejected', (p) => p.callId === ack.callId, RING_TIMEOUT_MS + 3000), { callId: ack.callId, reason: 'timeout' });
      await heard(ack.callId, 'call.missed');

      const again = await alice.request<{ callId: string }>('call:request', { to: name('asleep') });
      expectOk(again);
      expectOk(await alice.request('call:cancel', { callId: again.callId }));
      await heard(again.callId, 'call.ended', (e) => e.type === 'call.ended' && e.outcome === 'cancelled');
      assert.equal(errorCode(await alice.request('call:request', { to: alice.auth!.user.id })), 'self_call', 'the call rules still apply');
    });
  });
}

/** A node as `switchboard serve` makes one: with a webhook sender for WEBHOOK_URL. */
function node(env: Record<string, string>): Promise<SwitchboardServer> {
  const sender = new WebhookSender({ url: env.WEBHOOK_URL!, secret: SECRET, logger: pino({ level: 'silent' }) });
  return startTestServer(env, { hooks: [sender] });
}

describeRingOffline('memory mode', (env) => oneNode(env, node));

describeRingOffline('Redis mode, the device signing in on another node', (env) => twoNodesOnRedis(env, node));
