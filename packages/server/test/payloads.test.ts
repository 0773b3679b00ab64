import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { MAX_CANDIDATE_LENGTH, MAX_SDP_LENGTH } from '@switchboard/protocol';
import type { SwitchboardServer } from '../src/index.js';
import { CLIENT_EVENTS, errorCode, establish, expectOk, openSocket, signIn, startTestServer, type TestClient } from './helpers.js';

const CALL_ID = '3b2f7a4e-1c9d-4e8a-9f00-123456789abc';
const deep = (depth: number): unknown => (depth === 0 ? 'x' : { a: deep(depth - 1) });

/** Payloads that no event accepts. */
const ALWAYS_BAD: unknown[] = [
  undefined,
  null,
  42,
  'string',
  true,
  [],
  [{ callId: CALL_ID }],
  {},
  { callId: 42 },
  { callId: 'not-a-uuid' },
  { callId: CALL_ID.repeat(20) },
  JSON.parse('{"__proto__": {"polluted": true}, "callId": 5}'),
  { constructor: { prototype: { polluted: true } } },
  deep(200),
];

const SPECIFIC_BAD: Record<string, unknown[]> = {
  'auth:handshake': [{ token: 5 }, { token: '' }, { token: 'x'.repeat(9000) }],
  'reconnect:attempt': [{ token: 'x' }, { sessionId: 'y' }, { token: 'x', sessionId: 'y'.repeat(500) }],
  'call:request': [{ to: '' }, { to: 5 }, { to: 'bob', callId: 'nope' }, { to: 'bob', media: { audio: 'yes' } }, { to: 'x'.repeat(300) }],
  'webrtc:offer': [{ callId: CALL_ID }, { callId: CALL_ID, sdp: 7 }, { callId: CALL_ID, sdp: 'v'.repeat(MAX_SDP_LENGTH + 1) }],
  'webrtc:answer': [{ callId: CALL_ID, sdp: '' }, { callId: CALL_ID, sdp: 'v'.repeat(MAX_SDP_LENGTH + 1) }],
  'webrtc:ice-candidate': [
    { callId: CALL_ID },
    { callId: CALL_ID, candidate: 'candidate:1' },
    { callId: CALL_ID, candidate: { candidate: 'c'.repeat(MAX_CANDIDATE_LENGTH + 1) } },
    { callId: CALL_ID, candidate: { candidate: 'c', sdpMLineIndex: -1 } },
  ],
};

const EVENTS_WITH_PAYLOAD = CLIENT_EVENTS.filter((event) => event !== 'user:list');

describe('malformed payloads', () => {
  let server: SwitchboardServer;
  const clients: TestClient[] = [];
  before(async () => {
    server = await startTestServer({ RATE_LIMITS: 'off' });
  });
  after(async () => {
    clients.forEach((c) => c.close());
    await server.close();
  });

  test('every event answers invalid_payload to every malformed payload, by ack', async () => {
    const client = await signIn(server, 'fuzzy');
    clients.push(client);
    for (const event of EVENTS_WITH_PAYLOAD) {
      for (const payload of [...ALWAYS_BAD, ...(SPECIFIC_BAD[event] ?? [])]) {
        if (payload === undefined) continue; // an ack-only emit is tested below
        const ack = await client.request(event, payload);
        assert.equal(errorCode(ack), 'invalid_payload', `${event} ${JSON.stringify(payload)?.slice(0, 80)}`);
        assert.ok(!ack.ok && ack.error.message.length > 0, 'with a message that says what is wrong');
      }
    }
    assert.equal(({} as Record<string, unknown>).polluted, undefined, 'no prototype was polluted');
    assert.equal(client.socket.connected, true, 'bad payloads alone never disconnect');
  });

  test('without an ack, a failure is reported by call:error naming the event and the callId', async () => {
    const client = await signIn(server, 'noack');
    clients.push(client);
    client.raw('call:accept', { callId: 'nope' });
    const e1 = await client.next('call:error');
    assert.equal(e1.event, 'call:accept');
    assert.equal(e1.code, 'invalid_payload');
    client.raw('call:accept', { callId: CALL_ID });
    const e2 = await client.next('call:error');
    assert.deepEqual({ event: e2.event, code: e2.code, callId: e2.callId }, { event: 'call:accept', code: 'call_not_found', callId: CALL_ID });
    client.raw('no:such-event', {});
    const e3 = await client.next('call:error');
    assert.equal(e3.code, 'invalid_payload');
    assert.match(e3.message, /unknown event/);
    const ack = await client.request('call:request');
    assert.equal(errorCode(ack), 'invalid_payload', 'an ack with no payload is still answered');
  });

  test('a 64 KiB message is parsed and answered; the server survives all of it and still carries calls', async () => {
    const client = await signIn(server, 'big');
    clients.push(client);
    const near64k = 'v'.repeat(64 * 1024 - 100);
    const ack = await client.request('webrtc:offer', { callId: CALL_ID, sdp: near64k });
    assert.equal(errorCode(ack), 'invalid_payload');
    const raw = await openSocket(server, { via: 'none' });
    clients.push(raw);
    raw.raw('webrtc:offer', { callId: CALL_ID, sdp: 'v'.repeat(2 * 1024 * 1024) });
    assert.ok(await raw.disconnected, 'an oversized message may close that socket');
    const alice = await signIn(server, 'alive-a');
    const bob = await signIn(server, 'alive-b');
    clients.push(alice, bob);
    const callId = await establish(alice, bob, 'alive-b');
    expectOk(await alice.request('call:end', { callId }));
    const health = await fetch(`${server.url}/healthz`);
    assert.equal(health.status, 200);
  });
});

describe('rate limits', () => {
  test('a flood of call:request is limited with rate_limited; a burst of 30 ICE candidates is not', async () => {
    const server = await startTestServer();
    try {
      const alice = await signIn(server, 'alice');
      const bob = await signIn(server, 'bob');
      const callId = await establish(alice, bob, 'bob');
      const ice = await Promise.all(
        Array.from({ length: 30 }, (_, i) => alice.request('webrtc:ice-candidate', { callId, candidate: { candidate: `candidate:${i}` } })),
      );
      assert.ok(ice.every((a) => a.ok), 'a normal ICE burst passes');
      const flood = await Promise.all(Array.from({ length: 40 }, () => alice.request('call:request', { to: 'bob' })));
      const limited = flood.filter((a) => errorCode(a) === 'rate_limited').length;
      assert.ok(limited >= 20, `most of a flood is limited (${limited}/40)`);
      const metrics = await (await fetch(`${server.url}/metrics`)).text();
      assert.match(metrics, /switchboard_rate_limited_total\{event="call:request"\} \d+/);
      alice.close();
      bob.close();
    } finally {
      await server.close();
    }
  });

  test('RATE_LIMITS=off lets the same flood through to the call rules', async () => {
    const server = await startTestServer({ RATE_LIMITS: 'off' });
    try {
      const alice = await signIn(server, 'alice');
      const flood = await Promise.all(Array.from({ length: 40 }, () => alice.request('call:request', { to: 'alice' })));
      assert.ok(flood.every((a) => errorCode(a) === 'self_call'));
      alice.close();
    } finally {
      await server.close();
    }
  });
});
