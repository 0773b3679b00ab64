/**
 * Calls between phones over a real server and a real WebRTC stack (wrtc):
 * negotiation, audio measured both ways, mute and hold, hangup, and every
 * error code and end reason a user can cause.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { type Call, type CallEndInfo, type PartyFlags, SwitchboardError } from '../src/index.js';
import { labSuite, isSilent, isTone, next, reach, statesOf } from './support.js';

const RING_TIMEOUT_MS = 1200;

describe('calls between two phones', () => {
  const lab = labSuite({ RING_TIMEOUT_MS: String(RING_TIMEOUT_MS) });

  test('both sides reach connected, trickle ICE ends with null, and each hears the tone the other sends', async (t) => {
    const alice = await lab.online('alice', 440);
    const bob = await lab.online('bob', 880);
    await lab.sees(alice, 'bob');
    const sent: Record<string, unknown[][]> = { alice: [], bob: [] };
    alice.socket.onAnyOutgoing((...args: unknown[]) => sent.alice!.push(args));
    bob.socket.onAnyOutgoing((...args: unknown[]) => sent.bob!.push(args));

    const started = Date.now();
    const ringing = next<[Call]>(bob, 'incoming');
    const outgoing = lab.track(await alice.call('bob'));
    const outgoingStates = statesOf(outgoing);
    assert.equal(outgoing.state, 'ringing');
    assert.equal(outgoing.direction, 'outgoing');
    assert.deepEqual(outgoing.peer, { id: 'bob', name: 'Bob' });
    const [incoming] = await ringing;
    const incomingStates = statesOf(incoming);
    assert.equal(incoming.id, outgoing.id);
    assert.equal(incoming.direction, 'incoming');
    assert.deepEqual(incoming.peer, { id: 'alice', name: 'Alice' });
    assert.equal(incoming.peerConnection, undefined, 'no peer connection before the answer');

    await incoming.accept();
    await Promise.all([reach(outgoing, 'connected'), reach(incoming, 'connected')]);
    t.diagnostic(`request → both connected: ${Date.now() - started} ms`);
    assert.deepEqual(outgoingStates, ['ringing', 'connecting', 'connected']);
    assert.deepEqual(incomingStates, ['ringing', 'connecting', 'connected']);
    for (const call of [outgoing, incoming]) {
      assert.equal(call.peerConnection?.connectionState, 'connected', 'connected means the peer connection is');
    }

    const atBob = lab.meter(await lab.remoteStream(incoming));
    const atAlice = lab.meter(await lab.remoteStream(outgoing));
    const bobHears = await atBob.until(isTone(440));
    const aliceHears = await atAlice.until(isTone(880));
    t.diagnostic(`bob hears ${bobHears.frequency} Hz at RMS ${bobHears.rms}; alice hears ${aliceHears.frequency} Hz at RMS ${aliceHears.rms}`);

    const named = (who: string, event: string) => sent[who]!.filter(([e]) => e === event).map(([, p]) => p as Record<string, unknown>);
    assert.equal(named('alice', 'webrtc:offer').length, 1, 'the caller offers once');
    assert.equal(named('bob', 'webrtc:answer').length, 1, 'the callee answers');
    assert.equal(named('bob', 'webrtc:offer').length, 0);
    for (const who of ['alice', 'bob']) {
      const candidates = named(who, 'webrtc:ice-candidate');
      assert.ok(candidates.some((p) => p.candidate !== null), `${who} trickles candidates`);
      assert.ok(candidates.some((p) => p.candidate === null), `${who} sends end-of-candidates`);
    }

    const ended = next<[CallEndInfo]>(incoming, 'ended');
    await outgoing.hangup();
    assert.equal(outgoing.state, 'ended');
    assert.equal(outgoing.endInfo?.reason, 'hangup');
    const [info] = await ended;
    assert.equal(info.reason, 'hangup');
    assert.deepEqual(info.by, { id: 'alice', name: 'Alice' });
    assert.ok((info.durationMs ?? -1) >= 0);
    assert.equal(incoming.state, 'ended');
    for (const call of [outgoing, incoming]) {
      assert.equal(call.peerConnection?.connectionState, 'closed', 'the peer connection is closed at the end');
      assert.ok(call.localStream?.getTracks().every((track) => track.readyState === 'ended'), 'local tracks are stopped');
    }
  });

  test('mute and hold silence the local track, show at the peer, and undo', async (t) => {
    const carol = await lab.online('carol', 440);
    const dave = await lab.online('dave', 880);
    const { outgoing, incoming } = await lab.connectedCall(carol, dave);
    const atDave = lab.meter(await lab.remoteStream(incoming));
    const atCarol = lab.meter(await lab.remoteStream(outgoing));
    await atDave.until(isTone(440));
    const remoteSeen = (call: Call, accept: (f: PartyFlags) => boolean) => next<[PartyFlags]>(call, 'remote', { accept });

    let seen = remoteSeen(incoming, (f) => f.muted);
    outgoing.mute();
    assert.deepEqual(outgoing.local, { muted: true, held: false });
    assert.equal(outgoing.localStream?.getAudioTracks()[0]?.enabled, false, 'mute disables the local track');
    await seen;
    assert.deepEqual(incoming.remote, { muted: true, held: false, videoOff: false });
    const muted = await atDave.until(isSilent);
    await atCarol.until(isTone(880)); // only the muted side is silent
    seen = remoteSeen(incoming, (f) => !f.muted);
    outgoing.unmute();
    await seen;
    const unmuted = await atDave.until(isTone(440));
    t.diagnostic(`dave hears carol: muted RMS ${muted.rms}, unmuted RMS ${unmuted.rms} at ${unmuted.frequency} Hz`);

    seen = remoteSeen(outgoing, (f) => f.held);
    incoming.hold();
    assert.equal(incoming.localStream?.getAudioTracks()[0]?.enabled, false, 'hold disables the local track');
    await seen;
    assert.equal(outgoing.remote.held, true);
    const held = await atCarol.until(isSilent);
    seen = remoteSeen(outgoing, (f) => !f.held);
    incoming.resume();
    await seen;
    assert.equal(incoming.localStream?.getAudioTracks()[0]?.enabled, true);
    const resumedAudio = await atCarol.until(isTone(880));
    t.diagnostic(`carol hears dave: held RMS ${held.rms}, resumed RMS ${resumedAudio.rms} at ${resumedAudio.frequency} Hz`);
    assert.equal(outgoing.state, 'connected', 'hold is no state change of the call');

    const ended = next<[CallEndInfo]>(outgoing, 'ended');
    await incoming.hangup();
    assert.deepEqual((await ended)[0].by, { id: 'dave', name: 'Dave' }, 'the callee may hang up too');
  });

  test('call() rejects with the code the user caused, and releases the media it took', async () => {
    const erin = await lab.online('erin');
    const frank = await lab.online('frank');
    const gina = await lab.online('gina');
    const isCode = (code: string) => (err: unknown) => err instanceof SwitchboardError && err.code === code;

    await assert.rejects(erin.call('nobody-here'), isCode('unavailable'));
    await assert.rejects(erin.call('erin'), isCode('self_call'));
    const failedTones = lab.tones.slice(-2);
    assert.ok(failedTones.every((tone) => tone.track.readyState === 'ended'), 'media of a refused call is stopped');
    assert.equal(erin.calls.length, 0);

    const first = lab.track(await erin.call('frank'));
    await assert.rejects(erin.call('gina'), isCode('already_in_call'));
    await first.hangup();

    const offline = lab.phone('harry');
    await assert.rejects(offline.call('erin'), isCode('not_connected'));
    assert.equal(gina.calls.length, 0, 'nothing rang');
  });

  test('every way a call ends before or without an answer', async () => {
    const ivan = await lab.online('ivan');
    const judy = await lab.online('judy');
    const kim = await lab.online('kim');
    const endOf = (call: Call) => next<[CallEndInfo]>(call, 'ended').then(([info]) => info.reason);

    // declined
    let ringing = next<[Call]>(judy, 'incoming');
    let outgoing = lab.track(await ivan.call('judy'));
    let [incoming] = await ringing;
    let callerEnd = endOf(outgoing);
    await incoming.reject();
    assert.equal(incoming.endInfo?.reason, 'declined');
    assert.equal(await callerEnd, 'declined');

    // cancelled
    ringing = next<[Call]>(judy, 'incoming');
    outgoing = lab.track(await ivan.call('judy'));
    [incoming] = await ringing;
    let calleeEnd = endOf(incoming);
    await outgoing.hangup();
    assert.equal(outgoing.endInfo?.reason, 'cancelled');
    assert.equal(await calleeEnd, 'cancelled');

    // timeout: nobody answers within RING_TIMEOUT_MS
    ringing = next<[Call]>(judy, 'incoming');
    const started = Date.now();
    outgoing = lab.track(await ivan.call('judy'));
    [incoming] = await ringing;
    [callerEnd, calleeEnd] = [endOf(outgoing), endOf(incoming)];
    assert.deepEqual([await callerEnd, await calleeEnd], ['timeout', 'timeout']);
    assert.ok(Date.now() - started >= RING_TIMEOUT_MS - 50, 'not before the ring timeout');

    // busy: judy is in a call with kim
    const { outgoing: kimCall } = await lab.connectedCall(kim, judy);
    outgoing = lab.track(await ivan.call('judy'));
    assert.equal(await endOf(outgoing), 'busy', 'a busy callee is no rejection of call(), but an end');
    await kimCall.hangup();

    // caller_disconnected: the caller's phone goes away while ringing
    const leo = await lab.online('leo');
    ringing = next<[Call]>(judy, 'incoming');
    lab.track(await leo.call('judy'));
    [incoming] = await ringing;
    calleeEnd = endOf(incoming);
    leo.disconnect();
    assert.equal(await calleeEnd, 'caller_disconnected');

    // unavailable: the callee's only device goes away while ringing
    const mia = await lab.online('mia');
    ringing = next<[Call]>(mia, 'incoming');
    outgoing = lab.track(await ivan.call('mia'));
    await ringing;
    callerEnd = endOf(outgoing);
    mia.disconnect();
    assert.equal(await callerEnd, 'unavailable');
  });

  test('two devices of one user ring: one answers, the other hears answered_elsewhere; a decline on one ends both', async () => {
    const oscar = await lab.online('oscar');
    const pia1 = await lab.online('pia', 660);
    const pia2 = await lab.online('pia', 660);

    let rings = Promise.all([next<[Call]>(pia1, 'incoming'), next<[Call]>(pia2, 'incoming')]);
    let outgoing = lab.track(await oscar.call('pia'));
    let [[onFirst], [onSecond]] = await rings;
    assert.equal(onFirst.id, onSecond.id, 'the same call rings on both devices');
    let elsewhere = next<[CallEndInfo]>(onSecond, 'ended');
    await onFirst.accept();
    assert.equal((await elsewhere)[0].reason, 'answered_elsewhere');
    await assert.rejects(onSecond.accept(), (err: unknown) => err instanceof SwitchboardError && err.code === 'invalid_state');
    await Promise.all([reach(outgoing, 'connected'), reach(onFirst, 'connected')]);
    await outgoing.hangup();

    rings = Promise.all([next<[Call]>(pia1, 'incoming'), next<[Call]>(pia2, 'incoming')]);
    outgoing = lab.track(await oscar.call('pia'));
    [[onFirst], [onSecond]] = await rings;
    elsewhere = next<[CallEndInfo]>(onFirst, 'ended');
    const callerEnd = next<[CallEndInfo]>(outgoing, 'ended');
    await onSecond.reject();
    assert.equal((await elsewhere)[0].reason, 'declined_elsewhere');
    assert.equal((await callerEnd)[0].reason, 'declined');
  });

  test('a phone that connects while its user is being called rings (v1.1): a listener added before connect() resolves hears it, and the call can be answered with audio', async () => {
    const quinn = await lab.online('quinn', 440);
    const rita1 = await lab.online('rita', 660);
    const ringing = next<[Call]>(rita1, 'incoming');
    const outgoing = lab.track(await quinn.call('rita'));
    await ringing;
    // Rita opens her laptop now: its listener is there before connect() resolves.
    const rita2 = lab.phone('rita', 660);
    const late = next<[Call]>(rita2, 'incoming');
    const elsewhere = ringing.then(([first]) => next<[CallEndInfo]>(first, 'ended'));
    await rita2.connect();
    const [onLaptop] = await late;
    assert.equal(onLaptop.id, outgoing.id, 'the call that rings');
    assert.deepEqual(onLaptop.peer, { id: 'quinn', name: 'Quinn' });
    await onLaptop.accept();
    assert.equal((await elsewhere)[0].reason, 'answered_elsewhere', 'the first device stops ringing');
    await Promise.all([reach(outgoing, 'connected'), reach(onLaptop, 'connected')]);
    await lab.meter(await lab.remoteStream(onLaptop)).until(isTone(440));
    await outgoing.hangup();
  });
});
