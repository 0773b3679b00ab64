/**
 * Logs an operator can use: one JSON line per session event (connect, auth,
 * resume, disconnect) and per call event, each naming its callId, user,
 * session and node where they apply, with latencies (auth, resume, call
 * setup); and no secret in any line.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { loadConfig, startServer } from '../src/index.js';
import { WebhookSender } from '../src/webhooks.js';
import { freePort } from './cluster/harness.js';
import { establish, expectOk, openSocket, signIn, TEST_SECRET, tokenFor } from './helpers.js';
import { captureLogger, waitFor } from './ops-helpers.js';

const WEBHOOK_SECRET = 'whsec-logs-test-0123456789';

describe('operating logs', () => {
  test('session and call events as JSON lines with callId, user, session, node and latencies; no secret anywhere', async () => {
    const config = loadConfig({ PORT: '0', HOST: '127.0.0.1', JWT_SECRET: TEST_SECRET, LOG_LEVEL: 'debug' });
    const { logger, lines } = captureLogger('debug', { node: config.nodeId });
    // Webhooks to a port where nothing listens, so their failures are logged too.
    const webhooks = new WebhookSender({
      url: `http://user:pw-in-url@127.0.0.1:${await freePort()}/hook?key=query-key`,
      secret: WEBHOOK_SECRET,
      logger,
      retryDelaysMs: [20, 20],
    });
    const server = await startServer(config, { logger, hooks: [webhooks] });
    let aliceSession = '';
    let callId = '';
    try {
      const alice = await signIn(server, 'alice');
      const bob = await signIn(server, 'bob', { via: 'event' });
      aliceSession = alice.auth!.sessionId;
      callId = await establish(alice, bob, 'bob');

      // Alice's transport drops (no disconnect packet) and she resumes on a new socket.
      alice.socket.io.engine.close();
      await bob.next('call:reconnecting');
      const again = await openSocket(server, { via: 'none' });
      expectOk(await again.request('reconnect:attempt', { token: await tokenFor('alice'), sessionId: aliceSession }));
      await bob.next('call:reconnected');
      expectOk(await again.request('call:end', { callId }));
      await bob.next('call:ended');
      const refused = await openSocket(server, { via: 'none' });
      refused.socket.emit('reconnect:attempt', { token: await tokenFor('alice'), sessionId: 'no-such-session-0123456789' });
      await refused.next('reconnect:failed');
      bob.close();
      again.close();
      refused.close();
      await waitFor('webhooks to give up', () => webhooks.pending === 0);
      await waitFor('bob disconnect logged', () => lines.some((l) => l.includes('"user":"bob"') && l.includes('session disconnected')));
    } finally {
      await server.close();
      webhooks.close();
    }

    const entries = lines.map((l) => JSON.parse(l) as Record<string, unknown>);
    const all = (msg: string) => entries.filter((e) => e.msg === msg);
    for (const e of entries) assert.equal(e.node, config.nodeId, `every line names the node: ${e.msg}`);

    const connected = all('socket connected');
    assert.equal(connected.length, 4, 'one line per socket: alice, bob, alice again, the refused one');
    for (const e of connected) assert.ok(typeof e.socket === 'string' && e.address === '127.0.0.1' && e.transport === 'websocket');

    const authenticated = all('session authenticated');
    assert.deepEqual(authenticated.map((e) => e.user).sort(), ['alice', 'bob']);
    for (const e of authenticated) assert.ok(typeof e.session === 'string' && typeof e.durationMs === 'number');

    const resumed = all('session resumed');
    assert.equal(resumed.length, 1);
    assert.equal(resumed[0]!.user, 'alice');
    assert.equal(resumed[0]!.session, aliceSession);
    assert.equal(resumed[0]!.calls, 1);
    assert.equal(typeof resumed[0]!.durationMs, 'number');
    assert.ok(all('resume refused').some((e) => e.reason === 'session_expired'));

    const lost = all('session disconnected').find((e) => e.user === 'alice' && e.reason === 'transport close');
    assert.equal(lost?.session, aliceSession);
    assert.equal(lost?.deliberate, false);
    const left = all('session disconnected').find((e) => e.user === 'bob');
    assert.equal(left?.reason, 'client namespace disconnect');
    assert.equal(left?.deliberate, true);

    const callEvents = all('call event').filter((e) => e.callId === callId);
    assert.deepEqual(callEvents.map((e) => e.event), ['request', 'accept', 'session-lost', 'session-resumed', 'end']);
    for (const e of callEvents) {
      assert.equal(typeof e.user, 'string', `${e.event} names the user`);
      assert.equal(typeof e.session, 'string', `${e.event} names the session`);
    }
    const answered = all('call answered');
    assert.equal(answered.length, 1);
    assert.equal(answered[0]!.callId, callId);
    assert.equal(answered[0]!.user, 'bob');
    assert.equal(typeof answered[0]!.session, 'string');
    assert.ok((answered[0]!.setupMs as number) >= 0, 'call setup time');
    const ended = all('call ended').find((e) => e.callId === callId);
    assert.equal(ended?.outcome, 'completed');
    assert.equal(typeof ended?.durationMs, 'number');

    assert.ok(all('webhook not delivered after every attempt, dropped').length > 0, 'webhook failures are logged');
    for (const line of lines) {
      assert.doesNotMatch(line, /eyJ/, 'no token');
      for (const secret of [TEST_SECRET, WEBHOOK_SECRET, 'pw-in-url', 'query-key']) assert.ok(!line.includes(secret), `no ${secret}`);
    }
  });
});
