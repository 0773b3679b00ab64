/**
 * Media recovery against a real server and wrtc on loopback: a restart offer
 * that the server never acknowledges (the socket went half-open under the
 * phone) makes the phone resume on a new socket, and the restart completes;
 * media that never connects ends the call with `ice_failed` on both sides
 * after `mediaRecoveryTimeoutMs`, recorded as `failed` in both histories.
 * (Lost paths, blocked UDP and network changes are the network lab's:
 * network-lab.test.ts.)
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { userKey, type SwitchboardServer } from '../../server/src/index.js';
import { FreezingProxy } from '../../../test/support/proxy.js';
import { startTestServer } from '../../../test/support/server.js';
import type { CallEndInfo, PhoneState, ReconnectInfo } from '../src/index.js';
import { networkChanged } from '../src/internal.js';
import { Lab, collectGarbage, isTone, next, reach, stable, ufrag } from './support.js';

describe('media recovery', () => {
  let server: SwitchboardServer;
  let proxy: FreezingProxy;
  let lab: Lab;
  before(async () => {
    server = await startTestServer({ RECONNECT_GRACE_MS: '10000' });
    proxy = await FreezingProxy.start(server.url);
    lab = new Lab(server);
  });
  after(async () => {
    lab.cleanup();
    await proxy.close();
    await server.close();
    await collectGarbage();
  });

  test('a restart offer never acknowledged: the phone resumes on a new socket, the peer is told, and the restart completes', async () => {
    const alice = await lab.online('alice-halfopen', 440, { url: proxy.url });
    const bob = await lab.online('bob-halfopen', 880);
    await lab.sees(alice, 'bob-halfopen');
    const { outgoing, incoming } = await lab.connectedCall(alice, bob);
    const before = ufrag(outgoing.peerConnection?.localDescription);
    const states: PhoneState[] = [];
    alice.on('state', (state) => states.push(state));
    const peerTold = next<[{ userId: string }]>(bob.socket as never, 'call:reconnected');
    const resumed = next<[ReconnectInfo]>(alice, 'reconnected', { timeoutMs: 10_000 });

    proxy.freeze(); // alice's socket is half-open now: the server still holds it for live
    outgoing[networkChanged]();

    assert.equal((await resumed)[0].resumed, true);
    assert.equal((await peerTold)[0].userId, 'alice-halfopen');
    assert.deepEqual(states, ['reconnecting', 'connected']);
    await Promise.all([reach(outgoing, 'connected'), reach(incoming, 'connected')]);
    await stable(outgoing.peerConnection);
    await stable(incoming.peerConnection);
    assert.notEqual(ufrag(outgoing.peerConnection?.localDescription), before, 'ICE was restarted');
    await lab.meter(await lab.remoteStream(incoming)).until(isTone(440));
    await lab.meter(await lab.remoteStream(outgoing)).until(isTone(880));
  });

  test('media that never connects: ice_failed on both sides after mediaRecoveryTimeoutMs, failed in both histories', async () => {
    // No TURN on this server and relay-only ICE: there is no candidate, so the media can never connect.
    const relayOnly = { rtcConfiguration: { iceTransportPolicy: 'relay' as const } };
    const alice = await lab.online('alice-noice', 440, { ...relayOnly, mediaRecoveryTimeoutMs: 1500 });
    const bob = await lab.online('bob-noice', 880, { ...relayOnly, mediaRecoveryTimeoutMs: 60_000 });
    await lab.sees(alice, 'bob-noice');
    const ringing = next<[import('../src/index.js').Call]>(bob, 'incoming');
    const outgoing = lab.track(await alice.call('bob-noice'));
    const [incoming] = await ringing;
    const endedHere = next<[CallEndInfo]>(outgoing, 'ended');
    const endedThere = next<[CallEndInfo]>(incoming, 'ended');
    const answered = Date.now();
    await incoming.accept();

    const [[here], [there]] = await Promise.all([endedHere, endedThere]);
    assert.ok(Date.now() - answered >= 1400, 'not before the recovery timeout');
    assert.equal(outgoing.peerConnection?.connectionState === 'connected', false);
    assert.equal(here.reason, 'ice_failed');
    assert.equal(there.reason, 'ice_failed');
    assert.equal(there.by?.id, 'alice-noice', 'the side that gave up is named');
    for (const who of ['alice-noice', 'bob-noice']) {
      const page = await server.store.listHistory(userKey('', who), 5, null);
      assert.deepEqual([page.calls[0]?.outcome, page.calls[0]?.reason], ['failed', 'ice_failed'], `${who}'s history`);
    }
  });
});
