#!/usr/bin/env node
/**
 * A host app's webhook receiver for Switchboard's `RING_OFFLINE=webhook`: it
 * turns `call.unreachable` into a VoIP push to the callee's phone and
 * withdraws the push once the call is answered or over. No dependencies; run
 * it with `WEBHOOK_SECRET=… PORT=8787 node examples/push-receiver/receiver.mjs`
 * and point Switchboard's `WEBHOOK_URL` at `http://<host>:8787/hooks`.
 *
 * It logs, one JSON object per line, the push it would send and the
 * withdrawal: replace `sendPush` and `withdrawPush` with your APNs (PushKit,
 * `apns-push-type: voip`) and FCM (high-priority data message) calls. A push
 * must reach the phone within the ring: answer 2xx only once your push
 * provider took it, and quickly — Switchboard ends the call as `unavailable`
 * when the answer is not 2xx or takes more than 3 s.
 */
import { createHmac, timingSafeEqual } from 'node:crypto';
import { createServer } from 'node:http';
import { pathToFileURL } from 'node:url';

/** Checks `X-Switchboard-Signature: t=<unix s>,v1=<hex HMAC-SHA256(secret, t + "." + body)>`, refusing old timestamps. */
export function verify(secret, header, rawBody, toleranceS = 300) {
  if (typeof header !== 'string') return false;
  const { t, v1 } = Object.fromEntries(header.split(',').map((kv) => kv.trim().split('=')));
  if (!t || !/^[0-9a-f]{64}$/.test(v1 ?? '') || Math.abs(Date.now() / 1000 - Number(t)) > toleranceS) return false;
  const expected = createHmac('sha256', secret).update(`${t}.${rawBody}`).digest();
  return timingSafeEqual(expected, Buffer.from(v1, 'hex'));
}

/**
 * The receiver: `log` gets one object per thing it does. Pushes are kept by
 * call id until withdrawn; events are deduplicated by their `id` (delivery is
 * at least once).
 */
export function createReceiver({ secret, log = (entry) => console.log(JSON.stringify(entry)) }) {
  const pushed = new Map();
  const seen = new Set();

  // Your push provider goes here. The payload is what the app needs to show CallKit / ConnectionService
  // and to sign in: the app's Switchboard Phone then gets the call as `incoming` when it connects.
  const sendPush = (event) => log({ action: 'push', to: event.callee.id, tenant: event.tenant, callId: event.callId, from: event.caller });
  const withdrawPush = (callId, why) => log({ action: 'withdraw', callId, why });

  const handle = (event) => {
    if (seen.has(event.id)) return;
    seen.add(event.id);
    if (event.type === 'call.unreachable') {
      pushed.set(event.callId, event.callee.id);
      sendPush(event);
    } else if (pushed.has(event.callId) && (event.type === 'call.answered' || event.type === 'call.ended')) {
      // Answered on some device, or over (declined, cancelled, missed, unavailable…): the phone stops ringing.
      pushed.delete(event.callId);
      withdrawPush(event.callId, event.type === 'call.answered' ? 'answered' : event.outcome);
    }
  };

  return createServer((req, res) => {
    if (req.method !== 'POST') return void res.writeHead(405).end();
    let body = '';
    req.setEncoding('utf8');
    req.on('data', (chunk) => (body += chunk));
    req.on('end', () => {
      if (!verify(secret, req.headers['x-switchboard-signature'], body)) {
        log({ action: 'refused', why: 'bad signature' });
        return void res.writeHead(401).end();
      }
      let event;
      try {
        event = JSON.parse(body);
      } catch {
        return void res.writeHead(400).end();
      }
      handle(event);
      res.writeHead(204).end();
    });
  });
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  const secret = process.env.WEBHOOK_SECRET;
  if (!secret) {
    console.error('WEBHOOK_SECRET is required');
    process.exit(78);
  }
  const port = Number(process.env.PORT ?? 8787);
  const server = createReceiver({ secret });
  server.listen(port, process.env.HOST ?? '127.0.0.1', () => console.log(JSON.stringify({ action: 'listening', port: server.address().port })));
  for (const signal of ['SIGINT', 'SIGTERM']) process.on(signal, () => server.close(() => process.exit(0)));
}
