/**
 * Security regressions: each test is named after what it guards, and
 * docs/security.md lists each guarantee next to the test that holds it.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { generateKeyPairSync, randomUUID } from 'node:crypto';
import { once } from 'node:events';
import { mkdtempSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server as HttpServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { after, before, describe, test } from 'node:test';
import { exportJWK, generateKeyPair, SignJWT, type CryptoKey, type JWK, type JWTPayload } from 'jose';
import { CONTROL_EVENTS, RELAY_EVENTS } from '@switchboard/protocol';
import type { SwitchboardServer } from '../src/index.js';
import { MAX_BUFFERED_PACKETS } from '../src/transport/abuse.js';
import { MAX_CONSECUTIVE_REFUSALS } from '../src/transport/rate-limit.js';
import {
  errorCode,
  establish,
  expectOk,
  openSocket,
  ring,
  signIn,
  startTestServer,
  TEST_SECRET,
  tokenFor,
  type ConnectOptions,
  type TestClient,
} from './helpers.js';
import { pollUntil, RawClient } from './hostile.js';

const enc = (s: string) => new TextEncoder().encode(s);
const inAnHour = () => Math.floor(Date.now() / 1000) + 3600;
const CALL_EVENTS = ['call:accept', 'call:reject', 'call:cancel', 'call:end'] as const;

function unsigned(payload: JWTPayload, alg = 'none'): string {
  const b64 = (o: object) => Buffer.from(JSON.stringify(o)).toString('base64url');
  return `${b64({ alg, typ: 'JWT' })}.${b64(payload)}.`;
}

/** Connects with `token` in the handshake and resolves with the auth:error code (and checks the socket is then closed). */
async function refusal(server: { url: string }, token: string): Promise<string> {
  const client = await openSocket(server, { via: 'handshake', token });
  const error = await client.next('auth:error');
  assert.equal(await client.disconnected, 'io server disconnect', 'a refused token closes the socket');
  return error.code;
}

/** Connects with `token` and resolves with `ok` or the auth:error code. */
async function tryToken(server: { url: string }, token: string): Promise<string> {
  const client = await openSocket(server, { via: 'handshake', token });
  const outcome = await Promise.race([
    client.next('auth:success').then(() => 'ok'),
    client.next('auth:error').then((e) => e.code),
  ]);
  client.close();
  return outcome;
}

/** Every payload a client could send on `event` for `callId`, with a forged identity thrown in. */
function payloadFor(event: string, callId: string): Record<string, unknown> {
  const forged = { from: 'someone-else', userId: 'someone-else', by: { id: 'someone-else', name: 'X' } };
  if (event === 'webrtc:offer' || event === 'webrtc:answer') return { callId, sdp: 'v=0 injected', ...forged };
  if (event === 'webrtc:ice-candidate') return { callId, candidate: { candidate: 'candidate:injected' }, ...forged };
  return { callId, ...forged };
}

/** Everything `clients` received that concerns a call (webrtc:*, call:*) besides what `allowed` lets through. */
async function callTraffic(clients: TestClient[]): Promise<string[]> {
  for (const c of clients) await c.sync();
  return clients.flatMap((c) => c.inbox.filter((r) => r.event.startsWith('webrtc:') || r.event.startsWith('call:')).map((r) => r.event));
}

describe('tenants, visibility and foreign calls', () => {
  let server: SwitchboardServer;
  const clients: TestClient[] = [];
  let n = 0;
  const names = (...roles: string[]) => roles.map((r) => `${r}${++n}`);
  const user = async (id: string, tenant?: string) => {
    const c = await signIn(server, id, tenant === undefined ? {} : { tenant });
    clients.push(c);
    return c;
  };
  before(async () => {
    server = await startTestServer({ RATE_LIMITS: 'off' });
  });
  after(async () => {
    clients.forEach((c) => c.close());
    await server.close();
  });

  test('cross-tenant presence and calls: a user of another tenant is, to you, offline — never listed, announced or rung', async () => {
    const [a, b, m] = names('alice', 'bob', 'mallory');
    const alice = await user(a!, 'acme');
    const bob = await user(b!, 'acme');
    await alice.next('user:online', (p) => p.user.id === b);
    const mallory = await user(m!, 'evil');
    const evilBob = await user(b!, 'evil'); // the same sub, another tenant: another user
    const list = await mallory.request<{ users: { id: string }[] }>('user:list');
    expectOk(list);
    assert.deepEqual(list.users.map((u) => u.id), [b], 'mallory sees only her own tenant (its bob)');
    assert.equal(errorCode(await mallory.request('call:request', { to: a })), 'unavailable', 'a user of another tenant is unavailable');
    // mallory's call to "bob" rings the bob of her tenant only
    const callId = await ring(mallory, [evilBob], b!);
    expectOk(await mallory.request('call:cancel', { callId }));
    evilBob.close();
    await mallory.next('user:offline', (p) => p.userId === b);
    const acmeList = await alice.request<{ users: { id: string; status: string }[] }>('user:list');
    expectOk(acmeList);
    assert.deepEqual(acmeList.users, [{ id: b, name: bob.auth!.user.name, status: 'available' }], 'acme sees its bob, still online');
    await alice.sync();
    await bob.sync();
    // (user:list answers were checked above; every other user:* or call:* event would be a leak)
    const heard = [...alice.inbox, ...bob.inbox].filter((r) => (r.event.startsWith('user:') && r.event !== 'user:list') || r.event.startsWith('call:'));
    assert.deepEqual(heard, [], 'nothing of the other tenant was announced to acme, and acme bob never rang');
    const history = await fetch(`${server.url}/api/calls`, { headers: { authorization: `Bearer ${await tokenFor(b!, { tenant: 'acme' })}` } });
    assert.deepEqual(((await history.json()) as { calls: unknown[] }).calls, [], "acme bob's history holds nothing of evil bob's call");
  });

  test('cross-tenant callId: the same subs in another tenant can do nothing to a call, even knowing its callId, and the same id there is another call', async () => {
    const [a, b] = names('alice', 'bob');
    const alice = await user(a!, 'acme');
    const bob = await user(b!, 'acme');
    const evilAlice = await user(a!, 'evil');
    const evilBob = await user(b!, 'evil');
    const callId = await ring(alice, [bob], b!);
    for (const twin of [evilAlice, evilBob]) {
      for (const event of [...CALL_EVENTS, ...CONTROL_EVENTS, ...RELAY_EVENTS]) {
        assert.equal(errorCode(await twin.request(event, payloadFor(event, callId))), 'call_not_found', `${event} on a ringing call of another tenant`);
      }
    }
    assert.deepEqual(await callTraffic([alice, bob]), [], 'nothing reached the ringing parties');
    expectOk(await bob.request('call:accept', { callId }));
    await alice.next('call:accepted');
    for (const twin of [evilAlice, evilBob]) {
      for (const event of [...CALL_EVENTS, ...CONTROL_EVENTS, ...RELAY_EVENTS]) {
        assert.equal(errorCode(await twin.request(event, payloadFor(event, callId))), 'call_not_found', `${event} on an active call of another tenant`);
      }
    }
    assert.deepEqual(await callTraffic([alice, bob]), [], 'nothing reached the parties of the active call');

    // A call id is its tenant's own: the same id in the other tenant is another call, which touches nothing of acme's,
    // not even on this node, where both calls are bound side by side and one of them ends.
    const twinCall = await ring(evilAlice, [evilBob], b!, { callId });
    assert.equal(twinCall, callId);
    expectOk(await evilBob.request('call:accept', { callId }));
    await evilAlice.next('call:accepted');
    evilAlice.socket.emit('webrtc:offer', { callId, sdp: 'v=0 twin' });
    alice.socket.emit('webrtc:offer', { callId, sdp: 'v=0 real' });
    assert.equal((await evilBob.next('webrtc:offer')).sdp, 'v=0 twin');
    assert.equal((await bob.next('webrtc:offer')).sdp, 'v=0 real', 'each call relays to its own parties');
    expectOk(await evilAlice.request('call:end', { callId }));
    assert.equal((await evilBob.next('call:ended')).reason, 'hangup');
    assert.deepEqual(await callTraffic([alice, bob]), [], "the twin call's end reached nobody of acme");
    alice.socket.emit('webrtc:offer', { callId, sdp: 'v=0 still here' });
    assert.equal((await bob.next('webrtc:offer')).sdp, 'v=0 still here', "acme's call goes on, still bound");
    expectOk(await alice.request('call:end', { callId }));
    assert.equal((await bob.next('call:ended')).reason, 'hangup');
  });

  test('foreign callId: every event on a call you are not bound to is forbidden, and nothing reaches the parties', async () => {
    const [a, b, m] = names('alice', 'bob', 'mallory');
    const alice = await user(a!);
    const phone = await user(b!);
    const laptop = await user(b!);
    const mallory = await user(m!);
    const callId = await ring(alice, [phone, laptop], b!);
    // While ringing: a third user may do nothing (relay and controls need an active call: invalid_state at best).
    for (const event of [...CALL_EVENTS, ...CONTROL_EVENTS, ...RELAY_EVENTS]) {
      const code = errorCode(await mallory.request(event, payloadFor(event, callId)));
      assert.equal(code, 'forbidden', `mallory: ${event} on a ringing call`);
    }
    expectOk(await phone.request('call:accept', { callId }));
    await alice.next('call:accepted');
    await laptop.next('call:cancelled');
    // Active: a third user, and the callee's device that did not answer, are not bound to it.
    for (const [who, client] of [
      ['mallory', mallory],
      ['the unbound device', laptop],
    ] as const) {
      for (const event of [...CALL_EVENTS, ...CONTROL_EVENTS, ...RELAY_EVENTS]) {
        // The callee's other device may still try to answer or decline: too late (invalid_state), as for any lost race.
        const expected = client === laptop && (event === 'call:accept' || event === 'call:reject') ? 'invalid_state' : 'forbidden';
        assert.equal(errorCode(await client.request(event, payloadFor(event, callId))), expected, `${who}: ${event} on an active call`);
      }
      // Without an ack the refusal comes as call:error, naming the call.
      client.raw('call:end', { callId });
      const error = await client.next('call:error');
      assert.deepEqual([error.event, error.code, error.callId], ['call:end', 'forbidden', callId]);
    }
    assert.deepEqual(await callTraffic([alice, phone]), [], 'nothing reached the parties');
    // The call is untouched: it relays and ends normally.
    phone.socket.emit('webrtc:answer', { callId, sdp: 'v=0 real answer' });
    assert.equal((await alice.next('webrtc:answer')).sdp, 'v=0 real answer');
    expectOk(await phone.request('call:end', { callId }));
    assert.equal((await alice.next('call:ended')).reason, 'hangup');
  });

  test('forged from: relay and controls always carry the sender, whatever the payload claims', async () => {
    const [a, b] = names('alice', 'bob');
    const alice = await user(a!);
    const bob = await user(b!);
    const forged = { from: b, userId: b, by: { id: b, name: 'Bob' }, caller: b, sessionId: bob.auth!.sessionId };
    const requestAck = await alice.request<{ callId: string }>('call:request', { to: b, ...forged });
    expectOk(requestAck);
    const incoming = await bob.next('call:incoming');
    assert.deepEqual(incoming.from, { id: a, name: alice.auth!.user.name }, 'call:incoming names the real caller');
    const callId = requestAck.callId;
    expectOk(await bob.request('call:accept', { callId, by: { id: a, name: 'Alice' } }));
    assert.deepEqual((await alice.next('call:accepted')).by, { id: b, name: bob.auth!.user.name });
    for (const event of RELAY_EVENTS) {
      alice.raw(event, { ...payloadFor(event, callId), ...forged });
      const got = await bob.next(event);
      assert.equal(got.from, a, `${event}: from is the sender`);
      assert.deepEqual(Object.keys(got).sort(), event === 'webrtc:ice-candidate' ? ['callId', 'candidate', 'from'] : ['callId', 'from', 'sdp']);
    }
    for (const event of CONTROL_EVENTS) {
      alice.raw(event, { callId, ...forged });
      assert.deepEqual(await bob.next(event), { callId, userId: a }, `${event}: userId is the sender`);
    }
    alice.raw('call:end', { callId, ...forged });
    const ended = await bob.next('call:ended');
    assert.deepEqual(ended.by, { id: a, name: alice.auth!.user.name }, 'call:ended names who really hung up');
  });
});

describe('tokens', () => {
  let server: SwitchboardServer;
  const clients: TestClient[] = [];
  before(async () => {
    server = await startTestServer({ RATE_LIMITS: 'off', RECONNECT_GRACE_MS: '10000' });
  });
  after(async () => {
    clients.forEach((c) => c.close());
    await server.close();
  });

  test('alg none is refused, in every spelling and with an HS256 header and no signature', async () => {
    for (const alg of ['none', 'None', 'NONE', 'nOnE']) {
      assert.equal(await refusal(server, unsigned({ sub: 'alice', exp: inAnHour() }, alg)), 'invalid_token', alg);
    }
    assert.equal(await refusal(server, unsigned({ sub: 'alice', exp: inAnHour() }, 'HS256')), 'invalid_token', 'HS256 with an empty signature');
    const socket = await openSocket(server, { via: 'none' });
    socket.raw('auth:handshake', { token: unsigned({ sub: 'alice', exp: inAnHour() }) });
    assert.equal((await socket.next('auth:error')).code, 'invalid_token', 'auth:handshake refuses it too');
  });

  test('HS/RS key confusion: an RS256 token against an HMAC secret is refused', async () => {
    const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
    const rs = await new SignJWT({}).setProtectedHeader({ alg: 'RS256' }).setSubject('alice').setExpirationTime(inAnHour()).sign(privateKey);
    assert.equal(await refusal(server, rs), 'invalid_token');
  });

  test('an expired token is refused everywhere: handshake, auth:handshake, reconnect:attempt and /api/calls', async () => {
    const expired = await new SignJWT({}).setProtectedHeader({ alg: 'HS256' }).setSubject('alice').setExpirationTime(Math.floor(Date.now() / 1000) - 60).sign(enc(TEST_SECRET));
    assert.equal(await refusal(server, expired), 'token_expired');
    const socket = await openSocket(server, { via: 'none' });
    socket.raw('auth:handshake', { token: expired });
    assert.equal((await socket.next('auth:error')).code, 'token_expired');
    const alice = await signIn(server, 'exp-alice');
    clients.push(alice);
    const resumer = await openSocket(server, { via: 'none' });
    clients.push(resumer);
    const expiredAlice = await new SignJWT({}).setProtectedHeader({ alg: 'HS256' }).setSubject('exp-alice').setExpirationTime(Math.floor(Date.now() / 1000) - 60).sign(enc(TEST_SECRET));
    resumer.raw('reconnect:attempt', { token: expiredAlice, sessionId: alice.auth!.sessionId });
    assert.equal((await resumer.next('reconnect:failed')).reason, 'invalid_token');
    assert.equal(alice.socket.connected, true, 'the session was not taken over');
    const history = await fetch(`${server.url}/api/calls`, { headers: { authorization: `Bearer ${expired}` } });
    assert.equal(history.status, 401);
  });

  test('reconnect:attempt with the token of another user fails and takes nothing over', async () => {
    const alice = await signIn(server, 'victim');
    const bob = await signIn(server, 'victim-peer');
    clients.push(alice, bob);
    const callId = await establish(alice, bob, 'victim-peer');
    // While the victim's socket is attached…
    const thief = await openSocket(server, { via: 'none' });
    clients.push(thief);
    thief.raw('reconnect:attempt', { token: await tokenFor('mallory'), sessionId: alice.auth!.sessionId });
    assert.equal((await thief.next('reconnect:failed')).reason, 'invalid_token');
    await alice.sync();
    assert.equal(alice.socket.connected, true, 'the attached socket is not disconnected');
    // …and while the session waits in its grace.
    alice.socket.io.engine.close();
    await bob.next('call:reconnecting');
    const thief2 = await openSocket(server, { via: 'none' });
    clients.push(thief2);
    thief2.raw('reconnect:attempt', { token: await tokenFor('mallory'), sessionId: alice.auth!.sessionId });
    assert.equal((await thief2.next('reconnect:failed')).reason, 'invalid_token');
    assert.equal(errorCode(await thief2.request('webrtc:offer', { callId, sdp: 'v=0 evil' })), 'unauthenticated', 'and the thief is nobody');
    const back = await openSocket(server, { via: 'none' });
    clients.push(back);
    back.raw('reconnect:attempt', { token: await tokenFor('victim'), sessionId: alice.auth!.sessionId });
    assert.equal((await back.next('reconnect:success')).calls[0]?.callId, callId, 'the owner resumes, call intact');
    await bob.next('call:reconnected');
    await bob.sync();
    assert.equal(bob.received('webrtc:offer').length, 0, 'nothing of the thief reached the peer');
  });

  test('a token in the query string is refused, even beside a valid handshake token', async () => {
    const token = await tokenFor('alice');
    const viaQuery = await openSocket(server, { via: 'none', query: { token } });
    assert.equal((await viaQuery.next('auth:error')).code, 'invalid_token');
    assert.equal(await viaQuery.disconnected, 'io server disconnect');
    const both = await openSocket(server, { via: 'handshake', token, query: { token } });
    assert.equal((await both.next('auth:error')).code, 'invalid_token');
    assert.equal(await both.disconnected, 'io server disconnect');
    assert.equal(both.received('auth:success').length, 0, 'the valid handshake token did not open a session either');
  });

  test('a token that expires during a call does not cut the call; resuming needs a valid one', async () => {
    const exp = Math.floor(Date.now() / 1000) + 1;
    const shortLived = await new SignJWT({ name: 'Short' }).setProtectedHeader({ alg: 'HS256' }).setSubject('short').setExpirationTime(exp).sign(enc(TEST_SECRET));
    const alice = await openSocket(server, { via: 'handshake', token: shortLived });
    clients.push(alice);
    alice.auth = await alice.next('auth:success');
    const bob = await signIn(server, 'short-peer');
    clients.push(bob);
    const callId = await establish(alice, bob, 'short-peer');
    // Keep the call relaying until the token is dead for good (past exp and the server's clock tolerance).
    let relayed = 0;
    await pollUntil(
      'the short-lived token to be refused on a new socket',
      async () => {
        alice.socket.emit('webrtc:ice-candidate', { callId, candidate: { candidate: `candidate:${relayed}` } });
        assert.equal((await bob.next('webrtc:ice-candidate')).candidate?.candidate, `candidate:${relayed++}`);
        return (await tryToken(server, shortLived)) === 'token_expired';
      },
      20_000,
      250,
    );
    assert.ok(Date.now() / 1000 > exp, 'exp has passed');
    // The call carries on: relay both ways, controls, hang-up.
    alice.socket.emit('webrtc:offer', { callId, sdp: 'v=0 after exp' });
    assert.equal((await bob.next('webrtc:offer')).sdp, 'v=0 after exp');
    bob.socket.emit('webrtc:answer', { callId, sdp: 'v=0 answer after exp' });
    assert.equal((await alice.next('webrtc:answer')).sdp, 'v=0 answer after exp');
    expectOk(await alice.request('call:mute', { callId }));
    assert.deepEqual(await bob.next('call:mute'), { callId, userId: 'short' });
    // Resuming is a new sign-in: the dead token is refused, a fresh one resumes the call.
    alice.socket.io.engine.close();
    await bob.next('call:reconnecting');
    const stale = await openSocket(server, { via: 'none' });
    clients.push(stale);
    stale.raw('reconnect:attempt', { token: shortLived, sessionId: alice.auth.sessionId });
    assert.equal((await stale.next('reconnect:failed')).reason, 'invalid_token');
    const fresh = await openSocket(server, { via: 'none' });
    clients.push(fresh);
    fresh.raw('reconnect:attempt', { token: await tokenFor('short'), sessionId: alice.auth.sessionId });
    assert.equal((await fresh.next('reconnect:success')).calls[0]?.callId, callId);
    await bob.next('call:reconnected');
    expectOk(await fresh.request('call:end', { callId }));
    assert.equal((await bob.next('call:ended')).reason, 'hangup');
  });
});

describe('tokens never reach the logs', () => {
  test('a production node logging at trace level writes no token, whatever the client does with it', async () => {
    const MAIN = new URL('../src/main.ts', import.meta.url).pathname;
    const child = spawn(process.execPath, ['--conditions=source', '--import', 'tsx', MAIN], {
      env: { PATH: process.env.PATH ?? '', HOST: '127.0.0.1', PORT: '0', NODE_ENV: 'production', JWT_SECRET: TEST_SECRET, LOG_LEVEL: 'trace', RECONNECT_GRACE_MS: '5000' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const output: string[] = [];
    child.stderr.on('data', (d: Buffer) => output.push(d.toString()));
    const lines = createInterface({ input: child.stdout });
    let port = 0;
    const listening = new Promise<void>((resolve, reject) => {
      lines.on('line', (line) => {
        output.push(line);
        if (port === 0 && line.includes('switchboard listening')) {
          port = (JSON.parse(line) as { port: number }).port;
          resolve();
        }
      });
      child.once('exit', (code) => reject(new Error(`the server exited (${code}): ${output.join('\n')}`)));
    });
    const exited = once(child, 'exit');
    try {
      await listening;
      const server = { url: `http://127.0.0.1:${port}` };
      const tokens: string[] = [];
      const mint = async (sub: string, opts: Parameters<typeof tokenFor>[1] = {}) => {
        const t = await tokenFor(sub, opts);
        tokens.push(t);
        return t;
      };
      const alice = await openSocket(server, { via: 'handshake', token: await mint('log-alice') });
      alice.auth = await alice.next('auth:success');
      const bob = await openSocket(server, { via: 'none' });
      bob.raw('auth:handshake', { token: await mint('log-bob') });
      await bob.next('auth:success');
      const callId = await establish(alice, bob, 'log-bob');
      // A token where a client should never put one: in payloads, as an event name, in SDP.
      const stray = await mint('log-stray');
      alice.raw('call:request', { to: stray });
      alice.raw(stray, { token: stray });
      alice.raw('webrtc:offer', { callId, sdp: stray, token: stray });
      await bob.next('webrtc:offer');
      // Refusals: expired, bad signature, alg none, garbage that looks like a JWT, the query string.
      const expired = await new SignJWT({}).setProtectedHeader({ alg: 'HS256' }).setSubject('x').setExpirationTime(Math.floor(Date.now() / 1000) - 60).sign(enc(TEST_SECRET));
      const forged = await new SignJWT({}).setProtectedHeader({ alg: 'HS256' }).setSubject('x').setExpirationTime(inAnHour()).sign(enc('not-the-secret-000000000000000000000'));
      tokens.push(expired, forged, unsigned({ sub: 'x', exp: inAnHour() }));
      for (const t of [expired, forged, unsigned({ sub: 'x', exp: inAnHour() }), 'eyJnot.a.jwt']) {
        const c = await openSocket(server, { via: 'handshake', token: t });
        await c.next('auth:error');
      }
      const q = await openSocket(server, { via: 'none', query: { token: await mint('log-query') } });
      await q.next('auth:error');
      // Resumption, refused and accepted.
      alice.socket.io.engine.close();
      await bob.next('call:reconnecting');
      const thief = await openSocket(server, { via: 'none' });
      thief.raw('reconnect:attempt', { token: await mint('log-thief'), sessionId: alice.auth.sessionId });
      await thief.next('reconnect:failed');
      const back = await openSocket(server, { via: 'none' });
      back.raw('reconnect:attempt', { token: await mint('log-alice'), sessionId: alice.auth.sessionId });
      await back.next('reconnect:success');
      // HTTP: history with a good and a bad bearer token.
      await fetch(`${server.url}/api/calls`, { headers: { authorization: `Bearer ${await mint('log-alice')}` } });
      await fetch(`${server.url}/api/calls`, { headers: { authorization: `Bearer ${forged}` } });
      expectOk(await back.request('call:end', { callId }));
      await bob.next('call:ended');
      for (const c of [bob, back, thief]) c.close();
      child.kill('SIGTERM');
      await exited;
      const log = output.join('\n');
      assert.ok(log.includes('session authenticated') && log.includes('authentication refused') && log.includes('session resumed'), 'the paths ran');
      for (const t of tokens) {
        assert.ok(!log.includes(t), 'no token in the logs');
        const signature = t.split('.')[2]!;
        if (signature.length > 0) assert.ok(!log.includes(signature), 'not even a token signature');
      }
      assert.doesNotMatch(log, /eyJ/, 'nothing that looks like a JWT');
    } finally {
      child.kill('SIGKILL');
    }
  });
});

describe('key sets', () => {
  async function esKey(kid: string): Promise<{ privateKey: CryptoKey; jwk: JWK }> {
    const { privateKey, publicKey } = await generateKeyPair('ES256', { extractable: true });
    return { privateKey, jwk: { ...(await exportJWK(publicKey)), kid, alg: 'ES256', use: 'sig' } };
  }
  const sign = (key: CryptoKey, kid: string, sub = 'alice') =>
    new SignJWT({}).setProtectedHeader({ alg: 'ES256', kid }).setSubject(sub).setExpirationTime(inAnHour()).sign(key);

  test('JWKS file: its keys are accepted, and a rotation is picked up without a restart', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'sb-jwks-'));
    const file = join(dir, 'jwks.json');
    const write = (keys: JWK[]) => {
      writeFileSync(`${file}.tmp`, JSON.stringify({ keys }));
      renameSync(`${file}.tmp`, file); // atomic: the watcher never reads half a file
    };
    const one = await esKey('key-1');
    const two = await esKey('key-2-rotated');
    write([one.jwk]);
    const server = await startTestServer({ JWT_SECRET: '', JWT_JWKS_FILE: file });
    try {
      assert.equal(await tryToken(server, await sign(one.privateKey, 'key-1')), 'ok', 'a key-1 token');
      assert.equal(await tryToken(server, await sign(two.privateKey, 'key-2-rotated')), 'invalid_token', 'key 2 is not known yet');
      assert.equal(await refusal(server, unsigned({ sub: 'alice', exp: inAnHour() })), 'invalid_token', 'alg none');
      const hs = await new SignJWT({}).setProtectedHeader({ alg: 'HS256', kid: 'key-1' }).setSubject('alice').setExpirationTime(inAnHour()).sign(enc(JSON.stringify(one.jwk)));
      assert.equal(await refusal(server, hs), 'invalid_token', 'an HS256 token keyed with the public JWK');
      write([two.jwk]);
      const started = Date.now();
      const keyTwo = await sign(two.privateKey, 'key-2-rotated');
      await pollUntil('the rotated key to be accepted', async () => (await tryToken(server, keyTwo)) === 'ok', 15_000, 250);
      const tookMs = Date.now() - started;
      assert.equal(await tryToken(server, await sign(one.privateKey, 'key-1')), 'invalid_token', 'key 1 is gone with the rotation');
      assert.ok(tookMs < 15_000, `rotation picked up in ${tookMs} ms`);
    } finally {
      await server.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test('JWKS URL: keys fetched from the endpoint are accepted; unknown keys, HS tokens and alg none are refused', async () => {
    const one = await esKey('url-key-1');
    const stranger = await esKey('url-key-x');
    let fetches = 0;
    const jwksServer: HttpServer = createServer((req, res) => {
      if (req.url !== '/.well-known/jwks.json') {
        res.statusCode = 404;
        res.end();
        return;
      }
      fetches++;
      res.setHeader('content-type', 'application/json');
      res.end(JSON.stringify({ keys: [one.jwk] }));
    });
    jwksServer.listen(0, '127.0.0.1');
    await once(jwksServer, 'listening');
    const { port } = jwksServer.address() as AddressInfo;
    const server = await startTestServer({ JWT_SECRET: '', JWT_JWKS_URL: `http://127.0.0.1:${port}/.well-known/jwks.json` });
    try {
      for (const sub of ['alice', 'bob', 'carol']) assert.equal(await tryToken(server, await sign(one.privateKey, 'url-key-1', sub)), 'ok', sub);
      assert.equal(fetches, 1, 'the key set is fetched once and cached');
      assert.equal(await tryToken(server, await sign(stranger.privateKey, 'url-key-x')), 'invalid_token', 'a key not in the set');
      assert.equal(await tryToken(server, await sign(stranger.privateKey, 'url-key-1')), 'invalid_token', 'a key not in the set, claiming a known kid');
      const hs = await new SignJWT({}).setProtectedHeader({ alg: 'HS256', kid: 'url-key-1' }).setSubject('alice').setExpirationTime(inAnHour()).sign(enc(JSON.stringify(one.jwk)));
      assert.equal(await tryToken(server, hs), 'invalid_token', 'an HS256 token keyed with the public JWK');
      assert.equal(await tryToken(server, unsigned({ sub: 'alice', exp: inAnHour() })), 'invalid_token', 'alg none');
    } finally {
      await server.close();
      jwksServer.closeAllConnections();
      jwksServer.close();
    }
  });

  test('PEM public key: an HS256 token signed with the public key as its secret is refused (key confusion)', async () => {
    const pair = generateKeyPairSync('rsa', { modulusLength: 2048 });
    const pem = pair.publicKey.export({ type: 'spki', format: 'pem' }).toString();
    const server = await startTestServer({ JWT_SECRET: '', JWT_PUBLIC_KEY: pem });
    try {
      for (const secret of [pem, pem.trim(), pair.publicKey.export({ type: 'spki', format: 'der' }).toString('base64')]) {
        const token = await new SignJWT({}).setProtectedHeader({ alg: 'HS256' }).setSubject('alice').setExpirationTime(inAnHour()).sign(enc(secret));
        assert.equal(await refusal(server, token), 'invalid_token');
      }
      assert.equal(await refusal(server, unsigned({ sub: 'alice', exp: inAnHour() })), 'invalid_token', 'alg none');
      const good = await new SignJWT({}).setProtectedHeader({ alg: 'RS256' }).setSubject('alice').setExpirationTime(inAnHour()).sign(pair.privateKey);
      assert.equal(await tryToken(server, good), 'ok', 'while a real RS256 token passes');
    } finally {
      await server.close();
    }
  });
});

describe('origin allow-list', () => {
  let server: SwitchboardServer;
  const ALLOWED = 'https://app.example.com';
  const FOREIGN = [
    'https://evil.example.net',
    'https://app.example.com.evil.net',
    'https://app.example.com:8443',
    'http://app.example.com',
    'https://xapp.example.com',
    'https://app.example.co',
    'https://evil.net/https://app.example.com',
    'null',
  ];
  before(async () => {
    server = await startTestServer({ CORS_ORIGINS: `${ALLOWED},https://admin.example.com` });
  });
  after(() => server.close());

  test('origin not allowed: a WebSocket upgrade with a foreign Origin is refused, near-matches included', async () => {
    const good = await RawClient.open(server, { headers: { origin: ALLOWED } });
    good.terminate();
    const none = await RawClient.open(server); // non-browser clients send no Origin
    none.terminate();
    for (const origin of FOREIGN) {
      // Engine.IO answers a refused upgrade with 400 (a refused polling handshake with 403).
      await assert.rejects(RawClient.open(server, { headers: { origin } }), /upgrade refused: HTTP 40[03]/, `refused: ${origin}`);
    }
  });

  test('origin not allowed: an HTTP long-polling handshake with a foreign Origin is refused, near-matches included', async () => {
    const handshake = (origin?: string) =>
      fetch(`${server.url}/socket.io/?EIO=4&transport=polling`, { headers: origin ? { origin } : {} });
    const good = await handshake(ALLOWED);
    assert.equal(good.status, 200);
    assert.match(await good.text(), /^0\{"sid"/);
    assert.equal(good.headers.get('access-control-allow-origin'), ALLOWED);
    for (const origin of FOREIGN) {
      const res = await handshake(origin);
      assert.equal(res.status, 403, `refused: ${origin}`);
      assert.doesNotMatch(await res.text(), /"sid"/, 'no session id handed out');
      assert.notEqual(res.headers.get('access-control-allow-origin'), origin);
    }
  });
});

describe('caps and abuse limits', () => {
  test('more than MAX_SESSIONS_PER_USER sessions → auth:error rate_limited; closing one frees a place', async () => {
    const server = await startTestServer({ MAX_SESSIONS_PER_USER: '3' });
    const clients: TestClient[] = [];
    try {
      for (let i = 0; i < 3; i++) clients.push(await signIn(server, 'many-devices'));
      const fourth = await openSocket(server, { via: 'handshake', token: await tokenFor('many-devices') });
      assert.equal((await fourth.next('auth:error')).code, 'rate_limited');
      assert.equal(await fourth.disconnected, 'io server disconnect');
      clients.push(await signIn(server, 'someone-else')); // other users are not affected
      clients[0]!.close(); // a deliberate disconnect ends that session at once
      await pollUntil('a place to free up', async () => (await tryToken(server, await tokenFor('many-devices'))) === 'ok', 5000, 50);
    } finally {
      clients.forEach((c) => c.close());
      await server.close();
    }
  });

  test('more than MAX_UNAUTHENTICATED_PER_ADDRESS unauthenticated sockets from one address → refused connection (WebSocket and polling)', async () => {
    const server = await startTestServer({ MAX_UNAUTHENTICATED_PER_ADDRESS: '5' });
    const clients: TestClient[] = [];
    try {
      for (let i = 0; i < 5; i++) clients.push(await openSocket(server, { via: 'none' }));
      await assert.rejects(openSocket(server, { via: 'none' }), 'the sixth socket is refused');
      const polling = await fetch(`${server.url}/socket.io/?EIO=4&transport=polling`);
      assert.equal(polling.status, 403, 'a polling handshake too');
      clients[0]!.socket.emit('auth:handshake', { token: await tokenFor('gate-alice') });
      await clients[0]!.next('auth:success');
      clients.push(await openSocket(server, { via: 'none' })); // signing in frees a place
      await assert.rejects(openSocket(server, { via: 'none' }), 'and the cap holds again');
      clients[1]!.close();
      await pollUntil('a place to free up after a close', () => openSocket(server, { via: 'none' }).then((c) => (clients.push(c), true)), 5000, 50);
    } finally {
      clients.forEach((c) => c.close());
      await server.close();
    }
  });

  test(
    'MAX_UNAUTHENTICATED_PER_ADDRESS also holds for Engine.IO connections opened before any of them joins the namespace',
    async () => {
      const server = await startTestServer({ MAX_UNAUTHENTICATED_PER_ADDRESS: '5' });
      const raws: RawClient[] = [];
      try {
        const opened = await Promise.allSettled(Array.from({ length: 15 }, () => RawClient.open(server, { connect: false })));
        for (const r of opened) if (r.status === 'fulfilled') raws.push(r.value);
        let joined = 0;
        for (const raw of raws) {
          raw.send('40');
          const answer = await pollUntil('an answer to CONNECT', () => raw.frames.find((f) => f.startsWith('40') || f.startsWith('44')) ?? (raw.ws.readyState > 1 ? 'closed' : ''), 2000, 10);
          if (answer.startsWith('40')) joined++;
        }
        assert.ok(joined <= 5, `at most 5 unauthenticated sockets, got ${joined}`);
      } finally {
        raws.forEach((r) => r.terminate());
        await server.close();
      }
    },
  );

  test(
    'a socket refused for a token in its query string gives its unauthenticated slot back',
    async () => {
      const server = await startTestServer({ MAX_UNAUTHENTICATED_PER_ADDRESS: '3' });
      try {
        for (let i = 0; i < 3; i++) {
          const refused = await openSocket(server, { via: 'none', query: { token: 'x' } });
          assert.equal((await refused.next('auth:error')).code, 'invalid_token');
          await refused.disconnected;
        }
        // Each slot comes back when its connection has closed on the server side: a moment after the client hears it.
        await pollUntil('the slots to come back', () => openSocket(server, { via: 'none' }).then((c) => (c.close(), true)), 5000, 50);
      } finally {
        await server.close();
      }
    },
  );

  describe('TRUSTED_PROXIES: per-address limits count the client behind the proxy', () => {
    // The test's sockets come from 127.0.0.1, the trusted "proxy", or from 127.0.0.2, a peer that is not one.
    const behind = (server: { url: string }, forwardedFor: string, extra: ConnectOptions = {}) =>
      openSocket(server, { via: 'none', ...extra, extraHeaders: { 'x-forwarded-for': forwardedFor } });

    test('each client has its own cap of unauthenticated sockets; a forged first hop or an untrusted peer counts for nothing', async () => {
      const server = await startTestServer({ MAX_UNAUTHENTICATED_PER_ADDRESS: '3', TRUSTED_PROXIES: '127.0.0.1' });
      const clients: TestClient[] = [];
      try {
        for (let i = 0; i < 3; i++) clients.push(await behind(server, '198.51.100.1'));
        await assert.rejects(behind(server, '198.51.100.1'), 'the fourth socket of one client behind the proxy is refused');
        // The proxy appends the address it saw: what the client wrote before it is not believed.
        await assert.rejects(behind(server, '203.0.113.9, 198.51.100.1'), 'a forged first hop does not make a new client');
        const polling = await fetch(`${server.url}/socket.io/?EIO=4&transport=polling`, { headers: { 'x-forwarded-for': '198.51.100.1' } });
        assert.equal(polling.status, 403, 'a polling handshake counts by the forwarded address too');
        for (let i = 0; i < 3; i++) clients.push(await behind(server, '198.51.100.2'));
        // A peer that is not a trusted proxy counts as itself, whatever it forwards.
        for (let i = 0; i < 3; i++) clients.push(await behind(server, `198.51.100.${10 + i}`, { localAddress: '127.0.0.2' }));
        await assert.rejects(behind(server, '198.51.100.20', { localAddress: '127.0.0.2' }), 'X-Forwarded-For from an untrusted peer is ignored');
      } finally {
        clients.forEach((c) => c.close());
        await server.close();
      }
    });

    test('without TRUSTED_PROXIES, X-Forwarded-For is ignored: every socket counts as its TCP peer', async () => {
      const server = await startTestServer({ MAX_UNAUTHENTICATED_PER_ADDRESS: '3' });
      const clients: TestClient[] = [];
      try {
        for (let i = 0; i < 3; i++) clients.push(await behind(server, `198.51.100.${i + 1}`));
        await assert.rejects(behind(server, '198.51.100.4'), 'a fourth "client" from one peer is refused');
      } finally {
        clients.forEach((c) => c.close());
        await server.close();
      }
    });

    test("sign-ins are limited per forwarded client: one client's burst does not refuse another's", async () => {
      // One unauthenticated socket per address: sign-ins from one address are then 2 at once, then one each 5 s.
      const server = await startTestServer({ MAX_UNAUTHENTICATED_PER_ADDRESS: '1', TRUSTED_PROXIES: '127.0.0.1' });
      const clients: TestClient[] = [];
      const signInBehind = async (forwardedFor: string, userId: string) => {
        const client = await behind(server, forwardedFor, { via: 'handshake', token: await tokenFor(userId) });
        clients.push(client);
        return Promise.race([client.next('auth:success').then(() => 'ok'), client.next('auth:error').then((e) => e.code)]);
      };
      try {
        assert.equal(await signInBehind('198.51.100.1', 'xff-a1'), 'ok');
        assert.equal(await signInBehind('198.51.100.1', 'xff-a2'), 'ok');
        assert.equal(await signInBehind('198.51.100.1', 'xff-a3'), 'rate_limited', "the client's third sign-in at once is refused");
        assert.equal(await signInBehind('198.51.100.2', 'xff-b1'), 'ok', 'another client behind the same proxy signs in');
      } finally {
        clients.forEach((c) => c.close());
        await server.close();
      }
    });
  });

  test('a socket that ignores rate_limited is cut, as a lost transport (its peer hears reconnecting)', async () => {
    const server = await startTestServer({ RECONNECT_GRACE_MS: '5000' });
    try {
      const alice = await signIn(server, 'flooder');
      const bob = await signIn(server, 'flooded');
      const callId = await establish(alice, bob, 'flooded');
      for (let i = 0; i < 5 + MAX_CONSECUTIVE_REFUSALS + 20; i++) alice.raw('no:such-event', { i });
      assert.equal(await alice.disconnected, 'transport close', 'cut by the server');
      assert.ok(alice.received('call:error').some((e) => e.code === 'rate_limited'), 'after being told rate_limited');
      assert.deepEqual(await bob.next('call:reconnecting'), { callId, userId: 'flooder' });
      bob.close();
    } finally {
      await server.close();
    }
  });

  /**
   * Puts a raw client `slow` in an active call with `peer`, stops it reading, and
   * fills its TCP buffers with 32 KiB offers from the peer, so that whatever the
   * server sends it next waits in the server's own queue.
   */
  async function stalledCall(server: SwitchboardServer, name: string) {
    const slow = await RawClient.open(server, { auth: { token: await tokenFor(name) } });
    await slow.next('auth:success');
    const peer = await signIn(server, `${name}-peer`);
    const callId = randomUUID();
    slow.emit('call:request', { to: `${name}-peer`, callId });
    await peer.next('call:incoming');
    expectOk(await peer.request('call:accept', { callId }));
    await slow.next('call:accepted');
    slow.pause();
    const serverSide = [...server.io.of('/').sockets.values()].find((s) => s.id !== peer.socket.id && s.data.sessionId);
    assert.ok(serverSide);
    const queued = () => (serverSide.conn as unknown as { writeBuffer: unknown[] }).writeBuffer.length;
    // The most it ever held: the sweep may cut it (and empty its queue) between two looks of the test.
    let most = 0;
    serverSide.conn.on('packetCreate', () => (most = Math.max(most, queued() + 1)));
    const peak = () => Math.max(most, queued());
    const sdp = 'v'.repeat(32 * 1024 - 64);
    // A relay burst (200 × 32 KiB) fills the TCP buffers of loopback here; where they are larger,
    // go on at a pace under the relay refill (50/s) until the server has to queue.
    for (let i = 0; i < 200; i++) peer.socket.emit('webrtc:offer', { callId, sdp });
    await peer.sync();
    await pollUntil(
      'the server to queue packets for the stalled client',
      () => (queued() > 0 ? true : (peer.socket.emit('webrtc:offer', { callId, sdp }), false)),
      20_000,
      25,
    );
    return { slow, peer, callId, queued, peak };
  }

  test('a socket that ignores rate_limited is cut even when it has stopped reading', async () => {
    const server = await startTestServer({ RECONNECT_GRACE_MS: '5000' });
    try {
      const { slow, peer, callId } = await stalledCall(server, 'deaf-flooder');
      // It still writes: a flood it will never read the answers to.
      for (let i = 0; i < 5 + MAX_CONSECUTIVE_REFUSALS + 20; i++) slow.emit('no:such-event', { i });
      assert.deepEqual(await peer.next('call:reconnecting', undefined, 10_000), { callId, userId: 'deaf-flooder' });
      assert.equal(server.io.of('/').sockets.size, 1, 'only the peer is left');
      slow.terminate();
      peer.close();
    } finally {
      await server.close();
    }
  });

  test(
    'a slow reader is cut once over 1000 buffered packets',
    async () => {
      // The churn signs in up to 2000 users from one address: raise what one address may do.
      const server = await startTestServer({ RECONNECT_GRACE_MS: '5000', MAX_UNAUTHENTICATED_PER_ADDRESS: '10000' });
      try {
        const { slow, peer, callId, peak } = await stalledCall(server, 'slow-reader');
        // Presence churn: every sign-in and sign-out is one more packet queued for the stalled reader.
        let n = 0;
        while (peak() <= MAX_BUFFERED_PACKETS && n < 2000) {
          const batch = await Promise.all(Array.from({ length: 20 }, () => signIn(server, `churn-${n++}`)));
          batch.forEach((c) => c.close());
        }
        assert.ok(peak() > MAX_BUFFERED_PACKETS, `queued ${peak()} packets`);
        assert.deepEqual(await peer.next('call:reconnecting', undefined, 10_000), { callId, userId: 'slow-reader' });
        slow.terminate();
        peer.close();
      } finally {
        await server.close();
      }
    },
  );
});
