import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import { SignJWT, type JWTPayload } from 'jose';
import type { SwitchboardServer } from '../src/index.js';
import { openSocket, startTestServer, tokenFor, type TestClient, TEST_SECRET } from './helpers.js';

const enc = (s: string) => new TextEncoder().encode(s);
const inAnHour = () => Math.floor(Date.now() / 1000) + 3600;

/** Connects with `token` in the handshake and returns the auth:error the server answers. */
async function refusal(server: SwitchboardServer, token: string): Promise<{ code: string; disconnected: boolean }> {
  const client = await openSocket(server, { via: 'handshake', token });
  const error = await client.next('auth:error');
  return { code: error.code, disconnected: (await client.disconnected) === 'io server disconnect' };
}

function unsigned(payload: JWTPayload): string {
  const b64 = (o: object) => Buffer.from(JSON.stringify(o)).toString('base64url');
  return `${b64({ alg: 'none', typ: 'JWT' })}.${b64(payload)}.`;
}

describe('authentication with an HS256 secret', () => {
  let server: SwitchboardServer;
  const clients: TestClient[] = [];
  before(async () => {
    server = await startTestServer({ AUTH_TIMEOUT_MS: '300', JWT_ISSUER: 'https://idp.test', JWT_AUDIENCE: 'switchboard' });
  });
  after(async () => {
    clients.forEach((c) => c.close());
    await server.close();
  });
  const good = (sub = 'alice') => tokenFor(sub, { issuer: 'https://idp.test', audience: 'switchboard' });

  test('a token in the handshake auth is answered with auth:success then user:list', async () => {
    const token = await good();
    const client = await openSocket(server, { via: 'handshake', token });
    clients.push(client);
    const ok = await client.next('auth:success');
    assert.deepEqual(ok.user, { id: 'alice', name: 'Alice' });
    // After its key group (`g<n>.`, see KEY_GROUPS), 144 random bits as base64url.
    assert.match(ok.sessionId, /^g\d{1,2}\.[A-Za-z0-9_-]{24}$/, 'a session id of at least 128 random bits');
    assert.equal(ok.ringTimeoutMs, 30_000);
    assert.deepEqual(ok.iceServers, []);
    assert.deepEqual(await client.next('user:list'), { users: [] });
  });

  test('auth:handshake authenticates a socket that connected without a token, and acks', async () => {
    const client = await openSocket(server, { via: 'none' });
    clients.push(client);
    const ack = await client.request<{ sessionId: string }>('auth:handshake', { token: await good('bob') });
    assert.ok(ack.ok && ack.sessionId.length > 20);
    const ok = await client.next('auth:success');
    assert.equal(ok.user.id, 'bob');
    const again = await client.request('auth:handshake', { token: await good('bob') });
    assert.equal(again.ok ? 'ok' : again.error.code, 'invalid_state', 'a socket authenticates once');
  });

  test('nothing valid within AUTH_TIMEOUT_MS → auth:error auth_timeout and disconnect', async () => {
    const client = await openSocket(server, { via: 'none' });
    assert.equal((await client.next('auth:error')).code, 'auth_timeout');
    assert.equal(await client.disconnected, 'io server disconnect');
  });

  test('events before authentication are refused as unauthenticated', async () => {
    const client = await openSocket(server, { via: 'none' });
    clients.push(client);
    const ack = await client.request('call:request', { to: 'alice' });
    assert.equal(ack.ok ? 'ok' : ack.error.code, 'unauthenticated');
  });

  test('an expired token → token_expired', async () => {
    const token = await new SignJWT({})
      .setProtectedHeader({ alg: 'HS256' })
      .setSubject('alice')
      .setIssuer('https://idp.test')
      .setAudience('switchboard')
      .setExpirationTime(Math.floor(Date.now() / 1000) - 60)
      .sign(enc(TEST_SECRET));
    assert.deepEqual(await refusal(server, token), { code: 'token_expired', disconnected: true });
  });

  test('a token without exp → invalid_token', async () => {
    const token = await new SignJWT({}).setProtectedHeader({ alg: 'HS256' }).setSubject('alice').setIssuer('https://idp.test').setAudience('switchboard').sign(enc(TEST_SECRET));
    assert.equal((await refusal(server, token)).code, 'invalid_token');
  });

  test('a wrong signature → invalid_token', async () => {
    const token = await new SignJWT({}).setProtectedHeader({ alg: 'HS256' }).setSubject('alice').setIssuer('https://idp.test').setAudience('switchboard').setExpirationTime(inAnHour()).sign(enc('another-secret-of-enough-length-000000'));
    assert.equal((await refusal(server, token)).code, 'invalid_token');
  });

  test('alg none → invalid_token', async () => {
    const token = unsigned({ sub: 'alice', exp: inAnHour(), iss: 'https://idp.test', aud: 'switchboard' });
    assert.equal((await refusal(server, token)).code, 'invalid_token');
  });

  test('a wrong issuer or audience → invalid_token', async () => {
    assert.equal((await refusal(server, await tokenFor('alice', { issuer: 'https://evil.test', audience: 'switchboard' }))).code, 'invalid_token');
    assert.equal((await refusal(server, await tokenFor('alice', { issuer: 'https://idp.test', audience: 'other' }))).code, 'invalid_token');
  });

  test('a token typed for something else (refresh, ID token) is refused; untyped, JWT and at+jwt are accepted', async () => {
    const typed = (typ: string | undefined) =>
      new SignJWT({})
        .setProtectedHeader(typ === undefined ? { alg: 'HS256' } : { alg: 'HS256', typ })
        .setSubject(`typed-${typ ?? 'none'}`.replace(/[^a-z0-9-]/gi, '-'))
        .setIssuer('https://idp.test')
        .setAudience('switchboard')
        .setExpirationTime(inAnHour())
        .sign(enc(TEST_SECRET));
    for (const typ of ['refresh+jwt', 'id_token+jwt', 'application/dpop+jwt', 'JOSE']) {
      assert.equal((await refusal(server, await typed(typ))).code, 'invalid_token', typ);
    }
    for (const typ of [undefined, 'JWT', 'at+jwt', 'application/at+JWT']) {
      const client = await openSocket(server, { via: 'handshake', token: await typed(typ) });
      clients.push(client);
      assert.ok(await client.next('auth:success'), String(typ));
    }
  });

  test('garbage and a token in the query string are refused', async () => {
    assert.equal((await refusal(server, 'not-a-jwt')).code, 'invalid_token');
    const client = await openSocket(server, { via: 'none', query: { token: await good() } });
    assert.equal((await client.next('auth:error')).code, 'invalid_token');
  });
});

for (const kind of ['rsa', 'ec', 'ed25519'] as const) {
  describe(`authentication with a ${kind} public key`, () => {
    const pair =
      kind === 'rsa'
        ? generateKeyPairSync('rsa', { modulusLength: 2048 })
        : kind === 'ec'
          ? generateKeyPairSync('ec', { namedCurve: 'P-256' })
          : generateKeyPairSync('ed25519');
    const alg = kind === 'rsa' ? 'RS256' : kind === 'ec' ? 'ES256' : 'EdDSA';
    const pem = pair.publicKey.export({ type: 'spki', format: 'pem' }).toString();
    let server: SwitchboardServer;
    before(async () => {
      server = await startTestServer({ JWT_SECRET: '', JWT_PUBLIC_KEY: pem });
    });
    after(() => server.close());

    test(`${alg} tokens signed by the private key are accepted`, async () => {
      const token = await new SignJWT({ name: 'Alice' }).setProtectedHeader({ alg }).setSubject('alice').setExpirationTime(inAnHour()).sign(pair.privateKey);
      const client = await openSocket(server, { via: 'handshake', token });
      assert.equal((await client.next('auth:success')).user.id, 'alice');
      client.close();
    });

    test('an HS256 token signed with the public key as its secret is refused (key confusion)', async () => {
      const token = await new SignJWT({}).setProtectedHeader({ alg: 'HS256' }).setSubject('alice').setExpirationTime(inAnHour()).sign(enc(pem));
      assert.equal((await refusal(server, token)).code, 'invalid_token');
    });

    test('alg none is refused', async () => {
      assert.equal((await refusal(server, unsigned({ sub: 'alice', exp: inAnHour() }))).code, 'invalid_token');
    });
  });
}

describe('JWT_MAX_AGE_S and JWT_TYPES', () => {
  let server: SwitchboardServer;
  before(async () => {
    server = await startTestServer({ JWT_MAX_AGE_S: '3600', JWT_TYPES: 'switchboard+jwt' });
  });
  after(async () => {
    await server.close();
  });
  const signed = (typ: string, iat: number, exp: number) =>
    new SignJWT({}).setProtectedHeader({ alg: 'HS256', typ }).setSubject('aged').setIssuedAt(iat).setExpirationTime(exp).sign(enc(TEST_SECRET));

  test('a token that claims to live longer than JWT_MAX_AGE_S, or was issued longer ago, is refused', async () => {
    const now = Math.floor(Date.now() / 1000);
    assert.equal((await refusal(server, await signed('switchboard+jwt', now, now + 10 * 365 * 86_400))).code, 'invalid_token', 'a 10-year exp');
    assert.equal((await refusal(server, await signed('switchboard+jwt', now - 7200, now + 600))).code, 'invalid_token', 'issued two hours ago');
    const client = await openSocket(server, { via: 'handshake', token: await signed('switchboard+jwt', now, now + 3000) });
    assert.ok(await client.next('auth:success'));
    client.close();
  });

  test('with JWT_TYPES only the listed typ is accepted (an untyped or JWT-typed token is not)', async () => {
    const now = Math.floor(Date.now() / 1000);
    assert.equal((await refusal(server, await signed('JWT', now, now + 600))).code, 'invalid_token');
    const untyped = await new SignJWT({}).setProtectedHeader({ alg: 'HS256' }).setSubject('aged').setExpirationTime(now + 600).sign(enc(TEST_SECRET));
    assert.equal((await refusal(server, untyped)).code, 'invalid_token');
  });
});

describe('dev mode', () => {
  test('with no key outside production: a random secret and POST /dev/token that mints working tokens', async () => {
    const server = await startTestServer({ JWT_SECRET: '' });
    try {
      assert.equal(server.config.devMode, true);
      const res = await fetch(`${server.url}/dev/token`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ userId: 'zoe', name: 'Zoë' }),
      });
      assert.equal(res.status, 200);
      const { token } = (await res.json()) as { token: string };
      const client = await openSocket(server, { via: 'handshake', token });
      assert.deepEqual((await client.next('auth:success')).user, { id: 'zoe', name: 'Zoë' });
      client.close();
      const bad = await fetch(`${server.url}/dev/token`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"name":1}' });
      assert.equal(bad.status, 400);
    } finally {
      await server.close();
    }
  });

  test('outside dev mode /dev/token answers 404', async () => {
    const server = await startTestServer();
    try {
      const res = await fetch(`${server.url}/dev/token`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"userId":"x"}' });
      assert.equal(res.status, 404);
    } finally {
      await server.close();
    }
  });
});

