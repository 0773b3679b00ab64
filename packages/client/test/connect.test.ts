/**
 * Connecting, presence and disconnecting against a real server: what
 * `connect()` resolves and rejects with, the live `users` map, and a
 * `disconnect()` that ends calls and leaves no socket or timer behind.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { tokenFor } from '../../../test/support/server.js';
import { type CallEndInfo, type DisconnectInfo, Phone, SwitchboardError } from '../src/index.js';
import { labSuite, next, rtc } from './support.js';

const hasCode = (code: string) => (err: unknown) => err instanceof SwitchboardError && err.code === code;

describe('connecting, presence and disconnecting', () => {
  const lab = labSuite();

  test('connect() resolves with the user once authenticated, and users follows who comes and goes', async () => {
    const alice = lab.phone('alice');
    assert.equal(alice.state, 'disconnected', 'v1.1: before connect() the phone is disconnected');
    assert.equal(alice.user, undefined);
    const connected = next(alice, 'connected');
    const both = await Promise.all([alice.connect(), alice.connect()]);
    assert.deepEqual(both, [
      { id: 'alice', name: 'Alice' },
      { id: 'alice', name: 'Alice' },
    ], 'two connect() calls share one authentication');
    await connected;
    assert.equal(alice.state, 'connected');
    assert.deepEqual(alice.user, { id: 'alice', name: 'Alice' });
    assert.ok((alice.sessionId?.length ?? 0) >= 22, 'a session id of at least 128 bits');

    const bob = await lab.online('bob');
    assert.deepEqual(bob.users.get('alice'), { id: 'alice', name: 'Alice', status: 'available' }, 'the list is there when connect() resolves');
    await lab.sees(alice, 'bob');
    assert.deepEqual(alice.users.get('bob'), { id: 'bob', name: 'Bob', status: 'available' });

    const bobGone = next(alice, 'presence', { accept: (users: ReadonlyMap<string, unknown>) => !users.has('bob') });
    bob.disconnect();
    await bobGone;
    assert.equal(bob.users.size, 0);
  });

  test("phone.state and its 'state' event follow the link: connecting, connected, reconnecting, connected, disconnected", async () => {
    const fay = lab.phone('fay');
    const seen: [string, string][] = [];
    fay.on('state', (state, previous) => seen.push([previous, state]));
    await fay.connect();
    const back = next(fay, 'reconnected');
    fay.socket.io.engine.close();
    await back;
    fay.disconnect();
    assert.equal(fay.state, 'disconnected');
    assert.deepEqual(seen, [
      ['disconnected', 'connecting'],
      ['connecting', 'connected'],
      ['connected', 'reconnecting'],
      ['reconnecting', 'connected'],
      ['connected', 'disconnected'],
    ]);
  });

  test('connect() rejects with the auth:error code and leaves the phone disconnected', async () => {
    const forged = lab.phone('mallory', 440, { token: 'not-a-jwt' });
    await assert.rejects(forged.connect(), hasCode('invalid_token'));
    assert.equal(forged.state, 'disconnected');
    assert.equal(forged.socket.active, false);

    const stale = lab.phone('sam', 440, { token: () => tokenFor('sam', { ttlS: -60 }) });
    await assert.rejects(stale.connect(), hasCode('token_expired'));
    assert.equal(stale.socket.connected, false);

    const nowhere = new Phone({ url: 'http://127.0.0.1:1', token: 'x', rtc, socket: { transports: ['websocket'] } });
    lab.phones.push(nowhere);
    await assert.rejects(nowhere.connect(), hasCode('connection_failed'));
    assert.equal(nowhere.state, 'disconnected');
  });

  test('disconnect() hangs up, closes the socket for good, and connect() afterwards is a new session', async () => {
    let tokensAsked = 0;
    const carol = await lab.online('carol', 440, { token: () => (tokensAsked++, tokenFor('carol')) });
    const dave = await lab.online('dave', 880);
    const { outgoing, incoming } = await lab.connectedCall(carol, dave);
    const firstSession = carol.sessionId;

    const peerEnded = next<[CallEndInfo]>(incoming, 'ended');
    const gone = next<[DisconnectInfo]>(carol, 'disconnected');
    carol.disconnect();
    assert.equal(outgoing.state, 'ended');
    assert.equal(outgoing.endInfo?.reason, 'hangup');
    assert.equal(outgoing.peerConnection?.connectionState, 'closed');
    assert.equal((await gone)[0].reason, 'client');
    const [info] = await peerEnded;
    assert.equal(info.reason, 'hangup', 'a deliberate disconnect is a hangup, not a loss');
    assert.equal(carol.state, 'disconnected');
    assert.equal(carol.socket.connected, false);
    assert.equal(carol.socket.active, false);
    assert.equal(carol.socket.io.engine.readyState, 'closed');
    assert.equal(carol.calls.length, 0);
    await assert.rejects(carol.call('dave'), hasCode('not_connected'));

    await carol.connect();
    assert.equal(carol.state, 'connected');
    assert.notEqual(carol.sessionId, firstSession);
    assert.equal(tokensAsked, 2, 'the token function is asked before every authentication');
  });
});
