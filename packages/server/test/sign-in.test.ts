/**
 * Sign-in under attack, in both modes (memory, and Redis with two nodes where
 * it matters): racing handshakes on one socket, the per-user session cap under
 * concurrent sign-ins, namespace re-joins on one connection, sign-in rates per
 * user and per address, the `call.unreachable` hook, the per-pair call cap, a
 * store that fails during sign-in, and sessions left without a socket.
 * Races are run many times in one test.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import type { SessionId, UserId } from '@switchboard/protocol';
import type { CallHooks, SessionRecord } from '../src/index.js';
import type { SwitchboardServer } from '../src/index.js';
import { userKey } from '../src/calls/types.js';
import { sessionIdPrefix } from '../src/store/redis-keys.js';
import { dropPrefix, freshPrefix, OwnedRedis, sharedRedis } from './cluster/harness.js';
import { RawClient } from './hostile.js';
import { pollUntil, within } from '../../../test/support/wait.js';
import { errorCode, establish, expectOk, openSocket, signIn, startTestServer, tokenFor, WAIT_MS, type TestClient } from './helpers.js';

type Mode = 'memory' | 'redis';
const MODES: Mode[] = ['memory', 'redis'];

/** Resolves after `turns` turns of the event loop (I/O included): a spread of small delays without sleeps. */
function turns(n: number): Promise<void> {
  return n <= 0 ? Promise.resolve() : new Promise((resolve) => setImmediate(() => void turns(n - 1).then(resolve)));
}

/** Waits until `check` holds; bounded. */
const until = (what: string, check: () => Promise<boolean>, timeoutMs = WAIT_MS) => pollUntil(what, check, timeoutMs);

for (const mode of MODES) {
  describe(`sign-in rules (${mode} mode)`, () => {
    let redis: { url: string; release(): Promise<void> } | undefined;
    const servers: SwitchboardServer[] = [];
    const clients: TestClient[] = [];
    const prefixes: string[] = [];
    const unreachable: Parameters<NonNullable<CallHooks['unreachable']>>[0][] = [];
    let tenants = 0;

    /** One node, or in Redis mode `count` nodes sharing a fresh prefix. */
    const start = async (env: Record<string, string> = {}, count = 1): Promise<SwitchboardServer[]> => {
      const shared: Record<string, string> = {};
      if (mode === 'redis') {
        const prefix = freshPrefix();
        prefixes.push(prefix);
        Object.assign(shared, { REDIS_URL: redis!.url, REDIS_PREFIX: prefix });
      }
      const hooks: CallHooks = { unreachable: (info) => unreachable.push(info) };
      const started = await Promise.all(
        Array.from({ length: mode === 'redis' ? count : 1 }, () => startTestServer({ ...shared, ...env }, { hooks: [hooks] })),
      );
      servers.push(...started);
      return started;
    };
    const keep = (c: TestClient) => (clients.push(c), c);
    /** A tenant of its own for each test: nobody else's presence in its way. */
    const tenant = () => `t${++tenants}-${mode}`;

    before(async () => {
      if (mode === 'redis') redis = await sharedRedis();
    });
    after(async () => {
      clients.forEach((c) => c.close());
      await Promise.all(servers.map((s) => s.close()));
      if (redis) for (const p of prefixes) await dropPrefix(redis.url, p);
      await redis?.release();
    });

    test('two sign-ins racing on one socket make one session, never two, and nothing outlives the socket (60 sockets)', async () => {
      const [server] = await start({ RECONNECT_GRACE_MS: '300' });
      const t = tenant();
      const watcher = keep(await signIn(server!, 'watcher', { tenant: t }));
      const racers = await Promise.all(Array.from({ length: 60 }, () => openSocket(server!, { via: 'none' }).then(keep)));
      const results = await Promise.all(
        racers.map(async (client, i) => {
          const token = await tokenFor(`racer-${i}`, { tenant: t });
          const first = client.request('auth:handshake', { token });
          // The second one 0 to ~3 ms later: the same tick, then after more and more turns of the loop.
          await turns(i % 15);
          const second = client.request('auth:handshake', { token });
          return Promise.all([first, second]);
        }),
      );
      for (const [i, acks] of results.entries()) {
        const ok = acks.filter((a) => a.ok);
        assert.equal(ok.length, 1, `racer ${i}: one sign-in succeeds (${JSON.stringify(acks)})`);
        assert.deepEqual(acks.filter((a) => !a.ok).map(errorCode), ['invalid_state'], `racer ${i}: the other is refused`);
      }
      await Promise.all(racers.map((c) => c.sync()));
      for (const [i, client] of racers.entries()) {
        assert.equal(client.received('auth:success').length, 1, `racer ${i}: one auth:success`);
        const stored = await server!.store.sessionsOf(userKey(t, `racer-${i}`));
        assert.equal(stored.length, 1, `racer ${i}: one session in the store`);
      }
      // Transport losses: every session goes through its grace and then offline, none stays behind.
      const offline = racers.map((_, i) => watcher.next('user:offline', (p) => p.userId === `racer-${i}`, 10_000));
      racers.forEach((c) => c.socket.io.engine.close());
      await Promise.all(offline);
      for (let i = 0; i < racers.length; i++) assert.deepEqual(await server!.store.sessionsOf(userKey(t, `racer-${i}`)), []);
    });

    test('a sign-in whose socket closes while the store is writing leaves no session behind (40 sockets)', async () => {
      const [server] = await start({ RECONNECT_GRACE_MS: '300' });
      const t = tenant();
      const watcher = keep(await signIn(server!, 'watcher', { tenant: t }));
      const sockets = await Promise.all(Array.from({ length: 40 }, () => openSocket(server!, { via: 'none' })));
      await Promise.all(
        sockets.map(async (client, i) => {
          client.socket.emit('auth:handshake', { token: await tokenFor(`leaver-${i}`, { tenant: t }) });
          await turns(i % 10);
          client.socket.io.engine.close();
        }),
      );
      // Whoever was told online must be told offline, and the store must forget every one of them.
      await until('no leaver has a session', async () => {
        const left = await Promise.all(sockets.map((_, i) => server!.store.sessionsOf(userKey(t, `leaver-${i}`))));
        return left.every((s) => s.length === 0);
      }, 15_000);
      // The announcement follows the removal by a few round trips (the call check, the grace timer): wait for it, bounded.
      const unmatched = async () => {
        await watcher.sync();
        const online = new Set(watcher.received('user:online').map((p) => p.user.id));
        const offline = new Set(watcher.received('user:offline').map((p) => p.userId));
        return [...online].filter((u) => !offline.has(u));
      };
      await until('everyone announced online to be announced offline', async () => (await unmatched()).length === 0, 10_000).catch(() => undefined);
      assert.deepEqual(await unmatched(), [], 'everyone announced online was announced offline');
    });

    /** A session record as a failed store write would leave it: live on `node`, carried by no socket. */
    const ghost = (t: string, userId: string, nodeId: string): SessionRecord => ({
      id: `${sessionIdPrefix(t)}ghost-${randomUUID()}` as SessionId,
      tenant: t,
      userId: userId as UserId,
      name: userId,
      contacts: null,
      nodeId,
      connected: true,
      graceUntil: null,
      resumes: 0,
      resumeWindowStart: Date.now(),
      createdAt: Date.now(),
    });

    test('a session the store holds as live on a node that has no socket for it goes offline within the grace + NODE_TIMEOUT_MS', async () => {
      const [server] = await start({ RECONNECT_GRACE_MS: '300', NODE_TIMEOUT_MS: '1000' });
      const t = tenant();
      const watcher = keep(await signIn(server!, 'watcher', { tenant: t }));
      const ghosts = ['ghost-a', 'ghost-b', 'ghost-c'].map((u) => ghost(t, u, server!.config.nodeId));
      for (const g of ghosts) await server!.store.addSession(g);
      const listed = await watcher.request<{ users: { id: string }[] }>('user:list');
      assert.ok(listed.ok && listed.users.some((u) => u.id === 'ghost-a'), 'the ghost looks online');
      for (const g of ghosts) await watcher.next('user:offline', (p) => p.userId === g.userId, 1300 + 300 + WAIT_MS);
      for (const g of ghosts) assert.deepEqual(await server!.store.sessionsOf(userKey(t, g.userId)), []);
    });

    if (mode === 'redis') {
      test('a node that stops leaves no session of its own live: its ghosts go offline through the nodes that remain', async () => {
        // A long node timeout: only the stop can find the ghost before the test gives up.
        const [stopping, staying] = await start({ RECONNECT_GRACE_MS: '300', NODE_TIMEOUT_MS: '60000' }, 2);
        const t = tenant();
        const watcher = keep(await signIn(staying!, 'watcher', { tenant: t }));
        const left = ghost(t, 'left-behind', stopping!.config.nodeId);
        await stopping!.store.addSession(left);
        await stopping!.close();
        await watcher.next('user:offline', (p) => p.userId === 'left-behind', 10_000);
        assert.deepEqual(await staying!.store.sessionsOf(userKey(t, 'left-behind')), []);
      });
    }

    test('MAX_SESSIONS_PER_USER holds under 30 concurrent sign-ins of one user (on two nodes in Redis mode)', async () => {
      const nodes = await start({ MAX_SESSIONS_PER_USER: '3' }, 2);
      const t = tenant();
      const token = await tokenFor('crowd', { tenant: t });
      const sockets = await Promise.all(
        Array.from({ length: 30 }, (_, i) => openSocket(nodes[i % nodes.length]!, { via: 'handshake', token }).then(keep)),
      );
      const outcomes = await Promise.all(
        sockets.map((c) =>
          Promise.race([
            c.next('auth:success').then(() => 'ok'),
            c.next('auth:error').then((e) => e.code),
          ]),
        ),
      );
      assert.equal(outcomes.filter((o) => o === 'ok').length, 3, `three sessions: ${outcomes.join(',')}`);
      assert.deepEqual([...new Set(outcomes.filter((o) => o !== 'ok'))], ['rate_limited']);
      assert.equal((await nodes[0]!.store.sessionsOf(userKey(t, 'crowd'))).length, 3);
    });

    test('leaving the namespace closes the connection: a re-join on the same WebSocket gets nothing', async () => {
      const [server] = await start();
      const t = tenant();
      const token = await tokenFor('rejoiner', { tenant: t });
      for (let round = 0; round < 10; round++) {
        const raw = await RawClient.open(server!, { auth: { token } });
        await raw.next('auth:success');
        const before = server!.io.of('/').sockets.size;
        // Leave, and once the server has let the socket go, join again on the same connection.
        raw.send('41');
        await until('the server let the socket go', async () => server!.io.of('/').sockets.size < before);
        if (raw.ws.readyState === raw.ws.OPEN) raw.send(`40${JSON.stringify({ token })}`);
        await within(raw.closed, `round ${round}: the server closes the connection`);
        assert.equal(raw.frames.filter((f) => f.startsWith('40{')).length, 1, `round ${round}: one namespace connect only`);
        assert.equal(raw.events.filter((e) => e.event === 'auth:success').length, 0, `round ${round}: no second sign-in`);
      }
    });

    test('sign-ins are rate limited per user across sockets (and nodes): 10 within 10 s, by event or handshake alike', async () => {
      const nodes = await start({}, 2);
      const t = tenant();
      const token = await tokenFor('hasty', { tenant: t });
      const codes: string[] = [];
      for (let i = 0; i < 14; i++) {
        const node = nodes[i % nodes.length]!;
        const client = await openSocket(node, i % 2 === 0 ? { via: 'handshake', token } : { via: 'none' });
        if (i % 2 === 1) client.socket.emit('auth:handshake', { token });
        codes.push(await Promise.race([client.next('auth:success').then(() => 'ok'), client.next('auth:error').then((e) => e.code)]));
        client.close();
        await client.disconnected;
      }
      assert.deepEqual(codes.slice(0, 10), Array(10).fill('ok'), codes.join(','));
      assert.deepEqual(codes.slice(10), Array(4).fill('rate_limited'), codes.join(','));
      // Another user from the same address is not held back by it.
      keep(await signIn(nodes[0]!, 'patient', { tenant: t }));
    });

    test('call.unreachable fires only for a request the rules accepted, once per caller and callee within the ring window', async () => {
      // Without rate limits: the per-socket call bucket would stop the caller before the rules do.
      const [server] = await start({ CONTACTS: 'claims', RATE_LIMITS: 'off' });
      const t = tenant();
      const before = unreachable.length;
      const contacts = ['busy-bob', 'offline-olga', ...Array.from({ length: 8 }, (_, i) => `ghost-${i}`)];
      const alice = keep(await signIn(server!, 'alice', { tenant: t, contacts }));
      const bob = keep(await signIn(server!, 'busy-bob', { tenant: t, contacts: ['alice'] }));
      const callId = await establish(alice, bob, 'busy-bob');
      // A caller already in a call: every request fails before the callee counts.
      for (let i = 0; i < 8; i++) assert.equal(errorCode(await alice.request('call:request', { to: `ghost-${i}` })), 'already_in_call');
      assert.equal(unreachable.length, before, 'no hook for a caller in a call');
      expectOk(await alice.request('call:end', { callId }));
      await bob.next('call:ended');
      // Not visible (not in the contacts): nothing reveals it, nothing is pushed.
      assert.equal(errorCode(await alice.request('call:request', { to: 'stranger' })), 'unavailable');
      assert.equal(unreachable.length, before);
      // Visible and offline: once, however often within the ring window.
      for (let i = 0; i < 3; i++) assert.equal(errorCode(await alice.request('call:request', { to: 'offline-olga' })), 'unavailable');
      assert.deepEqual(
        unreachable.slice(before).map((u) => [u.caller.id, u.callee]),
        [['alice', 'offline-olga']],
      );
    });

    test('a caller may request the same callee 6 times within 60 s; the 7th is rate_limited and leaves no history', async () => {
      const [server] = await start();
      const t = tenant();
      const alice = keep(await signIn(server!, 'alice', { tenant: t }));
      const bob = keep(await signIn(server!, 'bob', { tenant: t }));
      const carol = keep(await signIn(server!, 'carol', { tenant: t }));
      await establish(carol, bob, 'bob');
      const codes: (string | undefined)[] = [];
      for (let i = 0; i < 10; i++) {
        const ack = await alice.request('call:request', { to: 'bob' });
        codes.push(errorCode(ack));
        if (ack.ok) await alice.next('call:busy');
      }
      assert.deepEqual(codes, [...Array(6).fill(undefined), ...Array(4).fill('rate_limited')]);
      const history = await server!.store.listHistory(userKey(t, 'bob'), 50, null);
      assert.equal(history.calls.filter((c) => c.outcome === 'busy').length, 6, 'six busy records in the callee history');
      // Another caller is not held back by it.
      const dave = keep(await signIn(server!, 'dave', { tenant: t }));
      expectOk(await dave.request('call:request', { to: 'bob' }));
    });
  });
}

describe('a store that fails during sign-in', () => {
  let redis: OwnedRedis;
  let server: SwitchboardServer;
  before(async () => {
    redis = await OwnedRedis.start();
    server = await startTestServer({ REDIS_URL: redis.url, REDIS_PREFIX: freshPrefix() });
  });
  after(async () => {
    await server.close();
    await redis.destroy();
  });

  test('a sign-in while Redis is down is answered auth:error internal, by handshake and by event, and the socket is closed', async () => {
    await redis.stop();
    const token = await tokenFor('unlucky');
    const byHandshake = await openSocket(server, { via: 'handshake', token });
    const error = await byHandshake.next('auth:error', undefined, 10_000);
    assert.equal(error.code, 'internal');
    await byHandshake.disconnected;
    const byEvent = await openSocket(server, { via: 'none' });
    byEvent.socket.emit('auth:handshake', { token });
    assert.equal((await byEvent.next('auth:error', undefined, 10_000)).code, 'internal');
    await byEvent.disconnected;
  });
});
