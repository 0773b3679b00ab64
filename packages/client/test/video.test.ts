/**
 * Video between two phones over a real server and a real WebRTC stack
 * (wrtc's RTCVideoSource and RTCVideoSink): a video call carries frames both
 * ways, a callee may answer without its camera and turn it on later, an
 * audio call is upgraded to video and back, both sides toggling at once
 * (glare) end consistent, the microphone and the camera are switched in
 * place, an ICE restart keeps the video, and the cameras the SDK acquired
 * are released.
 *
 * Each fake camera sends frames of its own brightness (`luma`), so a
 * receiver can tell which camera it sees.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { Call, Phone, VideoState } from '../src/index.js';
import { labSuite, isTone, next, reach, stable } from './support.js';

/** The luma of the camera the Lab gives a phone of tone `frequency` (see `Lab.phone`). */
const lumaOf = (frequency: number): number => (frequency % 200) + 30;
const near = (luma: number) => (m: { last: { luma: number } | null }) => Math.abs((m.last?.luma ?? -99) - luma) <= 12;

/** Resolves once `call.video` equals `want`. */
async function videoIs(call: Call, want: VideoState): Promise<void> {
  const same = (v: VideoState) => v.local === want.local && v.remote === want.remote;
  if (same(call.video)) return;
  await next<[VideoState]>(call, 'video', { accept: same }).catch((err: Error) => {
    throw new Error(`${err.message}: ${call.direction} has ${JSON.stringify(call.video)}, wanted ${JSON.stringify(want)}`);
  });
}

/** Counts the `webrtc:offer`s a phone sends from now on. */
function countOffers(phone: Phone): { count: number } {
  const seen = { count: 0 };
  phone.socket.onAnyOutgoing((event: string) => {
    if (event === 'webrtc:offer') seen.count++;
  });
  return seen;
}

describe('video calls', () => {
  const lab = labSuite({ RECONNECT_GRACE_MS: '10000' });

  /** A call from `caller` to `callee` answered as asked; resolves once both are connected. */
  async function videoCall(
    caller: Phone,
    callee: Phone,
    { video = true, acceptVideo }: { video?: boolean; acceptVideo?: boolean } = {},
  ): Promise<{ outgoing: Call; incoming: Call }> {
    const ringing = next<[Call]>(callee, 'incoming');
    const outgoing = lab.track(await caller.call(callee.user!.id, { video }));
    const [incoming] = await ringing;
    assert.deepEqual(incoming.media, { audio: true, video }, 'call:incoming carries the media');
    await incoming.accept(acceptVideo === undefined ? {} : { video: acceptVideo });
    await Promise.all([reach(outgoing, 'connected'), reach(incoming, 'connected')]);
    return { outgoing, incoming };
  }

  test('a video call carries each camera to the other side, with the audio', async (t) => {
    const [alice, bob] = await lab.onlinePair('alice', 440, 'bob', 880);
    const { outgoing, incoming } = await videoCall(alice, bob);
    assert.equal(outgoing.localStream?.getVideoTracks().length, 1, 'the caller sends a camera');
    assert.equal(incoming.localStream?.getVideoTracks().length, 1, 'the callee answered with its camera (the default for a video call)');
    await Promise.all([videoIs(outgoing, { local: true, remote: true }), videoIs(incoming, { local: true, remote: true })]);

    const atBob = lab.videoMeter(await lab.remoteStream(incoming));
    const atAlice = lab.videoMeter(await lab.remoteStream(outgoing));
    await Promise.all([atBob.more(10, { accept: near(lumaOf(440)) }), atAlice.more(10, { accept: near(lumaOf(880)) })]);
    const hears = await Promise.all([lab.meter(incoming.remoteStream).until(isTone(440)), lab.meter(outgoing.remoteStream).until(isTone(880))]);
    t.diagnostic(`bob sees ${JSON.stringify(atBob.last)}, alice sees ${JSON.stringify(atAlice.last)}; tones ${hears.map((h) => h.frequency).join(', ')} Hz`);
    assert.equal(atBob.last?.width, 160);
    assert.equal(atBob.last?.height, 120);
    assert.equal(outgoing.media.video, true);

    const cameras = [outgoing, incoming].map((c) => c.localStream!.getVideoTracks()[0]!);
    await outgoing.hangup();
    await reach(incoming, 'ended');
    assert.deepEqual(
      cameras.map((c) => c.readyState),
      ['ended', 'ended'],
      'the cameras the SDK acquired are stopped at the end',
    );
  });

  test('a callee answers a video call without its camera, sees the caller, and turns its camera on later', async () => {
    const [carol, dave] = await lab.onlinePair('carol', 440, 'dave', 660);
    const { outgoing, incoming } = await videoCall(carol, dave, { acceptVideo: false });
    assert.equal(incoming.localStream?.getVideoTracks().length, 0, 'no camera acquired');
    await Promise.all([videoIs(incoming, { local: false, remote: true }), videoIs(outgoing, { local: true, remote: false })]);
    if (!outgoing.remote.videoOff) await next(outgoing, 'remote', { accept: (f: { videoOff: boolean }) => f.videoOff });
    const atDave = lab.videoMeter(await lab.remoteStream(incoming));
    await atDave.more(10, { accept: near(lumaOf(440)) });

    await incoming.enableVideo();
    await Promise.all([videoIs(incoming, { local: true, remote: true }), videoIs(outgoing, { local: true, remote: true })]);
    assert.equal(outgoing.remote.videoOff, false, 'the caller heard call:video-on');
    const atCarol = lab.videoMeter(outgoing.remoteStream);
    await atCarol.more(10, { accept: near(lumaOf(660)) });
    await Promise.all([stable(outgoing.peerConnection), stable(incoming.peerConnection)]);
    await outgoing.hangup();
  });

  test('an audio call is upgraded to video and downgraded again, by either side; frames stop and the camera is released', async (t) => {
    const [erin, frank] = await lab.onlinePair('erin', 440, 'frank', 880);
    const { outgoing, incoming } = await videoCall(erin, frank, { video: false });
    assert.deepEqual(outgoing.video, { local: false, remote: false });
    assert.equal(outgoing.media.video, false);
    const erinOffers = countOffers(erin);

    await outgoing.enableVideo();
    await Promise.all([videoIs(incoming, { local: false, remote: true }), videoIs(outgoing, { local: true, remote: false })]);
    assert.equal(erinOffers.count, 1, 'turning the camera on renegotiated once');
    assert.equal(incoming.media.video, true, 'the peer learns the call now has video');
    const atFrank = lab.videoMeter(incoming.remoteStream);
    await atFrank.more(10, { accept: near(lumaOf(440)) });
    const camera = outgoing.localStream!.getVideoTracks()[0]!;

    await outgoing.disableVideo();
    await videoIs(incoming, { local: false, remote: false });
    assert.equal(incoming.remote.videoOff, true);
    await atFrank.quiet(1000);
    assert.equal(camera.readyState, 'ended', 'the camera is released');
    assert.equal(outgoing.localStream?.getVideoTracks().length, 0);
    await lab.meter(incoming.remoteStream).until(isTone(440));

    // The callee upgrades the same call in turn, on the transceiver the caller let go of.
    await incoming.enableVideo();
    await videoIs(outgoing, { local: false, remote: true });
    const atErin = lab.videoMeter(outgoing.remoteStream);
    await atErin.more(10, { accept: near(lumaOf(880)) });
    await incoming.disableVideo();
    await videoIs(outgoing, { local: false, remote: false });
    await atErin.quiet(1000);
    t.diagnostic(`transceivers at the caller: ${outgoing.peerConnection!.getTransceivers().map((x) => `${x.receiver.track.kind}:${x.currentDirection}`).join(' ')}`);
    await outgoing.hangup();
  });

  test('both sides turn their cameras on (and off) at once: glare is settled and they end consistent, 8 tries', async (t) => {
    const [gina, hank] = await lab.onlinePair('gina', 440, 'hank', 880);
    const { outgoing, incoming } = await videoCall(gina, hank, { video: false });
    const offers = [countOffers(gina), countOffers(hank)];
    let crossed = 0;
    for (let i = 0; i < 8; i++) {
      const on = i % 2 === 0;
      // A try toggles both at once; odd tries also race one side's camera against the other's.
      const before = offers.map((o) => o.count);
      await Promise.all(on ? [outgoing.enableVideo(), incoming.enableVideo()] : [outgoing.disableVideo(), incoming.disableVideo()]);
      const want = { local: on, remote: on };
      await Promise.all([videoIs(outgoing, want), videoIs(incoming, want)]);
      await Promise.all([stable(outgoing.peerConnection), stable(incoming.peerConnection)]);
      if (offers.every((o, k) => o.count > before[k]!)) crossed++;
      if (on) {
        const seen = [lab.videoMeter(outgoing.remoteStream), lab.videoMeter(incoming.remoteStream)];
        await Promise.all([seen[0]!.more(5, { accept: near(lumaOf(880)) }), seen[1]!.more(5, { accept: near(lumaOf(440)) })]);
        for (const m of seen) m.stop();
      }
      for (const call of [outgoing, incoming]) {
        const sending = call.peerConnection!.getTransceivers().filter((x) => x.receiver.track.kind === 'video' && x.currentDirection !== 'inactive');
        assert.equal(sending.length, on ? 1 : 0, `try ${i}: ${call.direction} has one video transceiver in use`);
      }
    }
    t.diagnostic(`offers: gina ${offers[0]!.count}, hank ${offers[1]!.count}; both offered in ${crossed} of 8 tries`);
    assert.ok(crossed >= 4, 'the tries did make both sides offer');
    assert.equal(outgoing.state, 'connected');
    assert.equal(incoming.state, 'connected');
    await outgoing.hangup();
  });

  test('switching the microphone and the camera mid-call: in place, no renegotiation; the app stream stays the app’s', async (t) => {
    const [ivan, judy] = await lab.onlinePair('ivan', 440, 'judy', 880);
    const { outgoing, incoming } = await videoCall(ivan, judy);
    const atJudy = lab.meter(await lab.remoteStream(incoming));
    const seenByJudy = lab.videoMeter(incoming.remoteStream);
    await Promise.all([atJudy.until(isTone(440)), seenByJudy.more(5, { accept: near(lumaOf(440)) })]);
    const offers = countOffers(ivan);
    const [oldMicrophone, oldCamera] = [outgoing.localStream!.getAudioTracks()[0]!, outgoing.localStream!.getVideoTracks()[0]!];

    const tone = lab.tone(660);
    const camera = lab.camera(200);
    const stream = new (await import('@roamhq/wrtc')).default.MediaStream([tone.track, camera.track] as never[]) as unknown as MediaStream;
    outgoing.mute();
    outgoing.unmute();
    await outgoing.setLocalStream(stream);
    assert.equal(outgoing.localStream, stream);
    const heard = await atJudy.until(isTone(660));
    await seenByJudy.more(5, { accept: near(200) });
    t.diagnostic(`after the switch judy hears ${heard.frequency} Hz RMS ${heard.rms} and sees luma ${seenByJudy.last?.luma}`);
    assert.equal(offers.count, 0, 'no renegotiation');
    assert.deepEqual([oldMicrophone.readyState, oldCamera.readyState], ['ended', 'ended'], 'the SDK’s own tracks are released');

    outgoing.mute();
    assert.equal(tone.track.enabled, false, 'mute applies to the new microphone');
    outgoing.unmute();
    await outgoing.hangup();
    await reach(incoming, 'ended');
    assert.deepEqual([tone.track.readyState, camera.track.readyState], ['live', 'live'], 'the app’s stream is not stopped by the call');
  });

  test('a transport loss mid-call: the ICE restart keeps the video', async () => {
    const [kim, leo] = await lab.onlinePair('kim', 440, 'leo', 880);
    const { outgoing, incoming } = await videoCall(kim, leo);
    const atLeo = lab.videoMeter(await lab.remoteStream(incoming));
    await atLeo.more(5);
    const reconnected = next(kim, 'reconnected');
    kim.socket.io.engine.close();
    await reconnected;
    await Promise.all([reach(outgoing, 'connected'), reach(incoming, 'connected'), stable(outgoing.peerConnection)]);
    await atLeo.more(10, { accept: near(lumaOf(440)) });
    assert.deepEqual(incoming.video, { local: true, remote: true });
    await outgoing.hangup();
  });

  test('enableVideo with no camera rejects media_failed and the call goes on', async () => {
    const mia = await lab.online('mia', 440, { media: async (request) => {
      if (request.video) throw new Error('NotFoundError: no camera');
      return lab.tone(440).stream();
    } });
    const ned = await lab.online('ned', 880);
    await lab.sees(mia, 'ned');
    await assert.rejects(mia.call('ned', { video: true }), { code: 'media_failed' });
    const { outgoing } = await videoCall(mia, ned, { video: false });
    await assert.rejects(outgoing.enableVideo(), { code: 'media_failed' });
    assert.equal(outgoing.state, 'connected');
    assert.deepEqual(outgoing.video, { local: false, remote: false });
    await outgoing.hangup();
  });
});
