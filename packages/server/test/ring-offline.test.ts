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
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, test } from 'node:test';
import type { SwitchboardServer } from '../src/index.js';
import { pino } from 'pino';
import { PUSH_TIMEOUT_MS, SIGNATURE_HEADER, verifyWebhook, WebhookSender } from '../src/webhooks.js';
import { pollUntil } from '../../../test/support/wait.js';
import { errorCode, expectOk, signIn, startTestServer, twoNodesOnRedis, type TestClient } from './helpers.js';

const SECRET = 'ring-offline-webhook-secret-0123456789';
const RING_TIMEOUT_MS = 4500;

interface Received {
  type: string;
  callId: string;
  callee: { id: string };
  outcome?: string;
  reason?: string;
}

/** A host app's receiver: checks every signature; refuses pushes to users named `refuse…`, answers those to `slow…` after 5 s. */
class Receiver {
  readonly events: Received[] = [];
  readonly badSignatures: string[] = [];
  private readonly server: Server = createServer((req, res) => {
    let body = '';
    req.on('data', (chunk: Buffer) => (body += chunk.toString()));
    req.on('end', () => {
      const header = req.headers[SIGNATURE_HEADER];
      const ok = verifyWebhook(SECRET, typeof header === 'string' ? header : undefined, body);
      if (!ok) this.badSignatures.push(body);
      const event = JSON.parse(body) as Received;
      this.events.push(event);
      const callee = event.callee.id;
      if (event.type === 'call.unreachable' && callee.startsWith('refuse')) return void res.writeHead(503).end();
      if (event.type === 'call.unreachable' && callee.startsWith('slow')) return void setTimeout(() => res.writeHead(200).end(), 5000).unref();
      res.writeHead(200).end();
    });
  });

  async start(): Promise<string> {
    await new Promise<void>((resolve) => this.server.listen(0, '127.0.0.1', resolve));
    return `http://127.0.0.1:${(this.server.address() as AddressInfo).port}/hooks`;
  }

  of(callId: string): Received[] {
    return this.events.filter((e) => e.callId === callId);
  }

  async stop(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise((resolve) => this.server.close(resolve));
  }
}

type Servers = { caller: SwitchboardServer; late: SwitchboardServer; close(): Promise<void> };

function describeRingOffline(mode: string, start: (env: Record<string, string>) => Promise<Servers>): void {
  describe(`RING_OFFLINE=webhook (${mode})`, () => {
    const receiver = new Receiver();
    let servers: Servers;
    const clients: TestClient[] = [];
    let n = 0;
    const name = (role: string) => `${role}${++n}`;
    const on = async (server: SwitchboardServer, id: string) => {
      const c = await signIn(server, id);
      clients.push(c);
      return c;
    };
    before(async () => {
      const url = await receiver.start();
      servers = await start({ RING_OFFLINE: 'webhook', WEBHOOK_URL: url, WEBHOOK_SECRET: SECRET, RING_TIMEOUT_MS: String(RING_TIMEOUT_MS), RATE_LIMITS: 'off' });
    });
    after(async () => {
      clients.forEach((c) => c.close());
      await servers?.close();
      await receiver.stop();
      assert.deepEqual(receiver.badSignatures, [], 'every webhook was signed');
    });

    test('a call to a user with no device rings; the host app is told at once; the device that signs in gets the call and answers', async () => {
      const alice = await on(servers.caller, name('alice'));
      const bob = name('bob');
      const ack = await alice.request<{ callId: string }>('call:request', { to: bob });
      expectOk(ack);
      await pollUntil('call.unreachable at the receiver', async () => receiver.of(ack.callId).some((e) => e.type === 'call.unreachable'), 5000, 20);
      const phone = await on(servers.late, bob);
      const incoming = await phone.next('call:incoming', (p) => p.callId === ack.callId);
      assert.ok(incoming.timeoutMs > 0 && incoming.timeoutMs <= RING_TIMEOUT_MS, `the time left: ${incoming.timeoutMs}`);
      expectOk(await phone.request('call:accept', { callId: ack.callId }));
      assert.equal((await alice.next('call:accepted')).callId, ack.callId);
      expectOk(await alice.request('call:end', { callId: ack.callId }));
      await phone.next('call:ended');
      await pollUntil('call.answered and call.ended', async () => ['call.answered', 'call.ended'].every((t) => receiver.of(ack.callId).some((e) => e.type === t)), 5000, 20);
      assert.equal(receiver.of(ack.callId).filter((e) => e.type === 'call.unreachable').length, 1, 'pushed once');
    });

    test('a receiver that refuses the push ends the call at once as unavailable; the host app hears how it ended', async () => {
      const alice = await on(servers.caller, name('alice'));
      const refused = name('refuse');
      const ack = await alice.request<{ callId: string }>('call:request', { to: refused });
      expectOk(ack);
      assert.deepEqual(await alice.next('call:rejected', (p) => p.callId === ack.callId, 4000), { callId: ack.callId, reason: 'unavailable' });
      await pollUntil('call.ended (unavailable)', async () => receiver.of(ack.callId).some((e) => e.type === 'call.ended' && e.outcome === 'unavailable'), 5000, 20);
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
      await pollUntil('call.missed', async () => receiver.of(ack.callId).some((e) => e.type === 'call.missed'), 5000, 20);

      const again = await alice.request<{ callId: string }>('call:request', { to: name('asleep') });
      expectOk(again);
      expectOk(await alice.request('call:cancel', { callId: again.callId }));
      await pollUntil('call.ended (cancelled)', async () => receiver.of(again.callId).some((e) => e.type === 'call.ended' && e.outcome === 'cancelled'), 5000, 20);
      assert.equal(errorCode(await alice.request('call:request', { to: alice.auth!.user.id })), 'self_call', 'the call rules still apply');
    });
  });
}

/** A node as `switchboard serve` makes one: with a webhook sender for WEBHOOK_URL. */
function node(env: Record<string, string>): Promise<SwitchboardServer> {
  const sender = new WebhookSender({ url: env.WEBHOOK_URL!, secret: SECRET, logger: pino({ level: 'silent' }) });
  return startTestServer(env, { hooks: [sender] });
}

describeRingOffline('memory mode', async (env) => {
  const server = await node(env);
  return { caller: server, late: server, close: () => server.close() };
});

describeRingOffline('Redis mode, the device signing in on another node', (env) => twoNodesOnRedis(env, node));
