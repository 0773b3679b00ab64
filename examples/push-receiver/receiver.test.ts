/**
 * The example push receiver, run as its own process against a real
 * Switchboard with `RING_OFFLINE=webhook`: it refuses an unsigned request,
 * pushes when a call rings a user with no device, and withdraws the push when
 * the call is answered on the device that signed in, or cancelled.
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import { after, before, test } from 'node:test';
import { pino } from 'pino';
import type { SwitchboardServer } from '../../packages/server/src/index.js';
import { WebhookSender } from '../../packages/server/src/webhooks.js';
import { expectOk, signIn, startTestServer, type TestClient } from '../../packages/server/test/helpers.js';
import { stopChild } from '../../test/support/redis.js';
import { WAIT_MS } from '../../test/support/server.js';

const SECRET = 'example-receiver-secret-0123456789';
const RECEIVER = new URL('./receiver.mjs', import.meta.url).pathname;

type Line = { action: string; [field: string]: unknown };

let child: ChildProcess;
let url = '';
let server: SwitchboardServer;
const lines: Line[] = [];
const waiters: { match: (l: Line) => boolean; resolve: (l: Line) => void }[] = [];
const clients: TestClient[] = [];

/** The next line the receiver printed that matches, within WAIT_MS. */
function printed(match: (l: Line) => boolean): Promise<Line> {
  const found = lines.find(match);
  if (found) return Promise.resolve(found);
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`the receiver did not print it; it printed ${JSON.stringify(lines)}`)), WAIT_MS);
    waiters.push({ match, resolve: (l) => (clearTimeout(timer), resolve(l)) });
  });
}

before(async () => {
  child = spawn(process.execPath, [RECEIVER], { env: { PATH: process.env.PATH ?? '', WEBHOOK_SECRET: SECRET, PORT: '0' }, stdio: ['ignore', 'pipe', 'inherit'] });
  createInterface({ input: child.stdout! }).on('line', (text) => {
    const line = JSON.parse(text) as Line;
    lines.push(line);
    for (const w of waiters.filter((w) => w.match(line))) {
      waiters.splice(waiters.indexOf(w), 1);
      w.resolve(line);
    }
  });
  const listening = await printed((l) => l.action === 'listening');
  url = `http://127.0.0.1:${String(listening.port)}/hooks`;
  const sender = new WebhookSender({ url, secret: SECRET, logger: pino({ level: 'silent' }) });
  server = await startTestServer({ RING_OFFLINE: 'webhook', WEBHOOK_URL: url, WEBHOOK_SECRET: SECRET, RATE_LIMITS: 'off' }, { hooks: [sender] });
});

after(async () => {
  clients.forEach((c) => c.close());
  await server?.close();
  await stopChild(child, 'SIGTERM');
});

test('an unsigned request is refused', async () => {
  const res = await fetch(url, { method: 'POST', body: '{"type":"call.unreachable"}' });
  assert.equal(res.status, 401);
  await printed((l) => l.action === 'refused');
});

test('a call to a user with no device is pushed; answered on the device that signed in, the push is withdrawn', async () => {
  const alice = await signIn(server, 'alice');
  clients.push(alice);
  const ack = await alice.request<{ callId: string }>('call:request', { to: 'bob' });
  expectOk(ack);
  const push = await printed((l) => l.action === 'push' && l.callId === ack.callId);
  assert.equal(push.to, 'bob');
  assert.deepEqual(push.from, { id: 'alice', name: 'Alice' });
  // The push wakes Bob's phone; its app signs in and finds the call ringing.
  const bob = await signIn(server, 'bob');
  clients.push(bob);
  await bob.next('call:incoming', (p) => p.callId === ack.callId);
  expectOk(await bob.request('call:accept', { callId: ack.callId }));
  assert.deepEqual(await printed((l) => l.action === 'withdraw' && l.callId === ack.callId), { action: 'withdraw', callId: ack.callId, why: 'answered' });
  expectOk(await alice.request('call:end', { callId: ack.callId }));
});

test('a pushed call the caller cancels withdraws the push', async () => {
  const alice = await signIn(server, 'alice');
  clients.push(alice);
  const ack = await alice.request<{ callId: string }>('call:request', { to: 'carol' });
  expectOk(ack);
  await printed((l) => l.action === 'push' && l.callId === ack.callId);
  expectOk(await alice.request('call:cancel', { callId: ack.callId }));
  assert.deepEqual(await printed((l) => l.action === 'withdraw' && l.callId === ack.callId), { action: 'withdraw', callId: ack.callId, why: 'cancelled' });
});
