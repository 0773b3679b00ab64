/**
 * A call: one side of a one-to-one voice or video call, from ringing to
 * ended. It turns the server's call events into `state`, drives its peer
 * connection (through a `Negotiator`), applies mute and hold to the local
 * tracks, and turns the camera on and off. A `Phone` creates calls and
 * routes the server's events to them.
 */
import type { CallId, ControlEvent, Media, PartyFlags, UserRef } from '@switchboard/protocol/wire';
import { Controls, NO_LOCAL_FLAGS } from './controls.js';
import { TypedEmitter } from './emitter.js';
import { SwitchboardError } from './errors.js';
import { CallEvent, type CallEventCallbacks } from './events.js';
import {
  type CallHost,
  type CallSnapshot,
  type Delivery,
  type IceServer,
  deliver,
  endLocally,
  linkChanged,
  networkChanged,
  resumed,
} from './internal.js';
import { Negotiator, newStream } from './negotiation.js';
import { QualityTracker, type RemoteQuality, ReportPacer, SAMPLE_EVERY_MS, readStats } from './quality.js';
import { MediaRecovery } from './recovery.js';
import type {
  AcceptOptions,
  CallDirection,
  CallEndInfo,
  CallEndReason,
  CallState,
  LocalFlags,
  MediaRequest,
  VideoState,
} from './types.js';

/**
 * Samples in a row (one a second) without a packet that make a stall (the
 * path died before ICE says so). One: a second with none of the 50 packets an
 * audio track sends a second (muted and held tracks send too; Opus DTX still
 * one every 400 ms) is no jittery link but a dead path, and a false alarm
 * costs only a probe and an ICE restart, while each sample waited for is a
 * second more of silence after a network change.
 */
const STALL_CHECKS = 1;

/** How long a restart offer may wait for the server's ack before the socket is taken for dead. */
export const RESTART_ACK_TIMEOUT_MS = 2000;

/** Codes meaning the server has no call to apply the request to any more (a race lost), or could not be told. */
function isMoot(err: unknown): boolean {
  return err instanceof SwitchboardError && ['invalid_state', 'call_not_found', 'not_connected'].includes(err.code);
}

export interface CallInit {
  id: CallId;
  peer: UserRef;
  direction: CallDirection;
  /** The media the call was placed with (`call:request`, `call:incoming`). */
  media: Media;
  /** The local media, acquired by the SDK (the call stops its tracks). */
  localStream?: MediaStream;
}

/**
 * One call, outgoing (from `phone.call()`) or incoming (from the phone's
 * `incoming` event). Listen to `state` and `ended`; play `remoteStream`.
 *
 * @example
 * ```ts
 * phone.on('incoming', async (call) => {
 *   call.on('state', (state) => console.log(call.peer.name, state));
 *   call.on('ended', ({ reason }) => console.log('ended:', reason));
 *   call.on('remoteStream', (stream) => (audioElement.srcObject = stream));
 *   await call.accept();
 * });
 * ```
 */
export class Call extends TypedEmitter<CallEventCallbacks> {
  readonly id: CallId;
  readonly direction: CallDirection;
  private currentState: CallState = 'ringing';
  private peerRef: UserRef;
  private readonly controls: Controls;
  private ended: CallEndInfo | undefined;
  private localMedia: MediaStream | undefined;
  /** Tracks the SDK acquired (the `media` option, getUserMedia): stopped when they are replaced or the call ends. */
  private readonly owned = new Set<MediaStreamTrack>();
  /** As placed; `video` turns true once either party sends video. */
  private mediaNow: Media;
  private readonly offered: Media;
  private videoNow: Readonly<VideoState> = Object.freeze({ local: false, remote: false });
  private remoteMedia: MediaStream | undefined;
  private answeredAtMs: number | null = null;
  private negotiator: Negotiator | undefined;
  /** The server has the call active (accepted), on this device. */
  private answered = false;
  private accepting = false;
  /** The peer's transport is lost (`call:reconnecting`) and it has not come back yet. */
  private peerAway = false;
  /** While the ICE restart that follows our resumption has not completed: the negotiator's exchange count then. */
  private resumeMark: number | null = null;
  private everConnected = false;
  /** The media link is lost or failed (so the transport probe goes once per loss). */
  private mediaDown = false;
  /** Samples the media once a second from its first connection to the end (see `sampleQuality`). */
  private sampleTimer: ReturnType<typeof setInterval> | null = null;
  private readonly tracker = new QualityTracker();
  private readonly pacer = new ReportPacer();
  private peerQuality: RemoteQuality | null = null;
  private quietChecks = 0;
  private readonly recovery: MediaRecovery;
  /** The negotiator's exchange count when the media last changed: a new exchange is a restart done. */
  private seenExchanges = 0;

  /** @internal Calls are made by a `Phone`. */
  constructor(
    private readonly host: CallHost,
    init: CallInit,
  ) {
    super();
    this.id = init.id;
    this.direction = init.direction;
    this.peerRef = init.peer;
    this.offered = Object.freeze({ ...init.media });
    this.mediaNow = this.offered;
    this.controls = new Controls({
      send: (event) => this.sendControl(event),
      localChanged: (flags) => this.emit(CallEvent.Local, flags),
      remoteChanged: (flags) => {
        this.emit(CallEvent.Remote, flags);
        this.updateVideo();
      },
    });
    if (init.localStream) this.useAcquired(init.localStream);
    this.recovery = new MediaRecovery(
      {
        link: () => this.negotiator?.link ?? 'new',
        canSignal: () => this.host.online && !this.peerAway,
        restart: () => this.restartIce(),
        giveUp: () => this.giveUp(),
      },
      { timeoutMs: host.mediaRecoveryTimeoutMs },
    );
  }

  /** `ringing` → `connecting` → `connected` (⇄ `reconnecting`) → `ended`. */
  get state(): CallState {
    return this.currentState;
  }

  /** The other party: the callee of an outgoing call, the caller of an incoming one. */
  get peer(): Readonly<UserRef> {
    return this.peerRef;
  }

  /** The call's media: `video` is true if it was placed as a video call or either party has sent video since. */
  get media(): Readonly<Media> {
    return this.mediaNow;
  }

  /** Whether we send our camera (`local`) and whether the peer's video reaches us (`remote`); the `video` event tells changes. */
  get video(): Readonly<VideoState> {
    return this.videoNow;
  }

  /** The peer's flags, kept up to date from its `call:mute`, `call:hold`, `call:video-off`… */
  get remote(): Readonly<PartyFlags> {
    return this.controls.remote;
  }

  /** This side's flags, as set by `mute()`, `hold()` and their opposites. */
  get local(): Readonly<LocalFlags> {
    return this.controls.local;
  }

  /** The RTCPeerConnection, once negotiation has begun (kept, closed, after the end). */
  get peerConnection(): RTCPeerConnection | undefined {
    return this.negotiator?.pc;
  }

  /** The peer's media (audio, and video while it sends some), once it has arrived. */
  get remoteStream(): MediaStream | undefined {
    return this.remoteMedia;
  }

  /** What we send the peer: the microphone, and the camera while it is on (see `setLocalStream`). */
  get localStream(): MediaStream | undefined {
    return this.localMedia;
  }

  /** The peer's view of the media it receives, as its last `call:quality` report said; null before one came. */
  get remoteQuality(): Readonly<RemoteQuality> | null {
    return this.peerQuality;
  }

  /** Why and how the call ended, once it has. */
  get endInfo(): Readonly<CallEndInfo> | undefined {
    return this.ended;
  }

  /** When the call was answered (this side's clock, epoch ms), or `null`. */
  get answeredAt(): number | null {
    return this.answeredAtMs;
  }

  /**
   * Answers an incoming call: gets the local media, tells the server, and
   * waits for the caller's offer. A video call is answered with our camera
   * unless `{ video: false }`: then we still see the caller's video and may
   * turn ours on later (`enableVideo`). Rejects with a `SwitchboardError`:
   * `invalid_state` when another device answered first or the caller gave
   * up, `media_failed` when there is no microphone (or camera).
   */
  async accept(options: AcceptOptions = {}): Promise<void> {
    if (this.direction !== 'incoming') throw SwitchboardError.invalidState('only an incoming call can be accepted');
    if (this.currentState !== 'ringing' || this.accepting) {
      throw SwitchboardError.invalidState(`the call is ${this.accepting ? 'being accepted already' : this.currentState}`);
    }
    this.accepting = true;
    try {
      if (!this.localMedia) {
        const stream = await acquire(this.host, { audio: true, video: options.video ?? this.offered.video });
        if (this.isOver()) {
          stopTracks(stream);
          throw SwitchboardError.invalidState('the call ended before it was answered');
        }
        this.useAcquired(stream);
      }
      await this.host.request('call:accept', { callId: this.id });
    } catch (err) {
      this.accepting = false;
      if (isMoot(err) && (err as SwitchboardError).code !== 'not_connected') this.finish({ reason: 'cancelled' });
      throw err;
    }
    this.accepting = false;
    if (this.isOver()) return;
    this.answered = true;
    this.answeredAtMs = Date.now();
    this.recovery.begin();
    this.ensureNegotiator();
    this.controls.sync({ ...NO_LOCAL_FLAGS, videoOff: !this.offered.video });
    this.refresh();
  }

  /** Declines an incoming call that is still ringing (every other device of this user stops ringing). */
  async reject(): Promise<void> {
    if (this.currentState === 'ended') return;
    if (this.direction !== 'incoming' || this.answered || this.accepting) {
      throw SwitchboardError.invalidState('only a ringing incoming call can be rejected; use hangup()');
    }
    this.finish({ reason: 'declined', by: this.host.user });
    await this.tell('call:reject');
  }

  /**
   * Ends the call whatever its state: cancels an outgoing call that rings,
   * declines an incoming one, hangs up an answered one. The call is `ended`
   * at once; the promise settles when the server has been told.
   */
  async hangup(): Promise<void> {
    if (this.currentState === 'ended') return;
    const reason: CallEndReason =
      this.answered || this.accepting ? 'hangup' : this.direction === 'outgoing' ? 'cancelled' : 'declined';
    this.finish({ reason, by: this.host.user });
    // `call:end` is a cancel or a reject while ringing, a hangup once answered: right whichever won a race.
    await this.tell('call:end');
  }

  /** Silences the local track (`enabled = false`) and shows the peer `remote.muted`. */
  mute(): void {
    if (!this.isOver()) this.controls.set('muted', true);
  }

  unmute(): void {
    if (!this.isOver()) this.controls.set('muted', false);
  }

  /** Puts the call on hold: the local track is silenced and the peer sees `remote.held`. */
  hold(): void {
    if (!this.isOver()) this.controls.set('held', true);
  }

  /** Takes the call off hold. */
  resume(): void {
    if (!this.isOver()) this.controls.set('held', false);
  }

  /**
   * Turns our camera on: gets it from the phone's `media` option (`{ audio:
   * false, video: true }`), sends it (renegotiating), and tells the peer
   * (`call:video-on`). Already on: nothing happens. Rejects with
   * `media_failed` when there is no camera, `invalid_state` once ended.
   */
  async enableVideo(): Promise<void> {
    if (this.isOver()) throw SwitchboardError.invalidState('the call has ended');
    if (this.camera()) return;
    const stream = await acquire(this.host, { audio: false, video: true });
    const camera = stream.getVideoTracks()[0]!;
    for (const track of stream.getTracks()) if (track !== camera) track.stop();
    if (this.isOver() || this.camera()) {
      camera.stop();
      if (this.isOver()) throw SwitchboardError.invalidState('the call ended before the camera was ready');
      return;
    }
    this.owned.add(camera);
    await this.send([...this.microphones(), camera]);
  }

  /** Turns our camera off: stops sending it (renegotiating), releases it if the SDK acquired it, and tells the peer. */
  async disableVideo(): Promise<void> {
    if (this.isOver() || !this.camera()) return;
    await this.send(this.microphones());
  }

  /**
   * Sends `stream` from now on: its audio track replaces the microphone and
   * its video track (if any) the camera, in place (`replaceTrack`), so
   * switching devices needs no renegotiation; a camera turned on or off by
   * the switch renegotiates. Mute and hold carry over. Tracks the SDK had
   * acquired are stopped; the app's own stream stays the app's to stop.
   * Rejects with `media_failed` when the stream has no audio track.
   */
  async setLocalStream(stream: MediaStream): Promise<void> {
    if (this.isOver()) throw SwitchboardError.invalidState('the call has ended');
    if (stream.getAudioTracks().length === 0) throw SwitchboardError.media(new Error('the stream has no audio track'));
    await this.send(stream.getTracks(), stream);
  }

  /** @internal */
  [deliver](d: Delivery): void {
    if (this.currentState === 'ended') return;
    switch (d.event) {
      case 'call:accepted':
        return this.onAccepted(d.payload.by);
      case 'call:rejected':
        return this.finish({ reason: d.payload.reason });
      case 'call:busy':
        return this.finish({ reason: 'busy' });
      case 'call:cancelled':
        return this.finish({ reason: d.payload.reason });
      case 'call:ended':
        return this.finish({ reason: d.payload.reason, by: d.payload.by, durationMs: d.payload.durationMs });
      case 'call:error':
        this.emit(CallEvent.Error, SwitchboardError.fromBody(d.payload));
        return;
      case 'call:reconnecting':
        this.peerAway = true;
        return this.refresh();
      case 'call:reconnected':
        return this.onPeerBack();
      case 'call:video-on':
        this.mediaNow = withVideo(this.mediaNow);
        this.controls.heard(d.event);
        return;
      case 'call:quality':
        this.peerQuality = { level: d.payload.level, warnings: d.payload.warnings };
        this.emit(CallEvent.RemoteQuality, this.peerQuality);
        return;
      case 'webrtc:offer':
        void this.ensureNegotiator()?.handleOffer(d.payload.sdp);
        return;
      case 'webrtc:answer':
        void this.negotiator?.handleAnswer(d.payload.sdp);
        return;
      case 'webrtc:ice-candidate':
        void this.ensureNegotiator()?.handleCandidate(d.payload.candidate);
        return;
      default:
        this.controls.heard(d.event);
    }
  }

  /** @internal */
  [linkChanged](online: boolean): void {
    if (this.currentState === 'ended') return;
    // A socket lost while ringing ends this device's part at once on the server.
    if (!online && !this.answered) return this.finish({ reason: 'connection_lost' });
    this.refresh();
  }

  /** @internal */
  [resumed](snapshot: CallSnapshot | undefined, iceServers: IceServer[]): void {
    if (this.currentState === 'ended') return;
    if (!snapshot || snapshot.state !== 'active' || !this.answered) return this.finish({ reason: 'connection_lost' });
    // Whatever we heard about the peer before our own loss is stale; if it is still away, our offer goes unanswered.
    this.peerAway = false;
    if (snapshot.media.video) this.mediaNow = withVideo(this.mediaNow);
    this.controls.setRemote(snapshot.remote);
    this.controls.sync({ ...snapshot.self, videoOff: snapshot.self.videoOff || !snapshot.media.video });
    if (this.negotiator) {
      this.negotiator.setIceServers(iceServers);
      this.resumeMark = this.negotiator.exchanges;
      void this.negotiator.offer(true);
    } else if (this.direction === 'outgoing') {
      void this.ensureNegotiator()?.offer();
    }
    this.refresh();
  }

  /** @internal The device's network changed (a browser's `online` or connection change): restart ICE now. */
  [networkChanged](): void {
    if (this.answered && !this.isOver()) this.recovery.kick();
  }

  /** @internal */
  [endLocally](reason: CallEndReason): void {
    this.finish({ reason, by: reason === 'hangup' ? this.host.user : undefined });
  }

  /** Checked after an await, where the state may have moved on. */
  private isOver(): boolean {
    return this.currentState === 'ended';
  }

  private onAccepted(by: UserRef): void {
    if (this.direction !== 'outgoing' || this.answered) return;
    this.answered = true;
    this.answeredAtMs = Date.now();
    this.peerRef = by;
    this.recovery.begin();
    void this.ensureNegotiator()?.offer();
    this.controls.sync({ ...NO_LOCAL_FLAGS, videoOff: !this.offered.video });
    this.refresh();
  }

  private onPeerBack(): void {
    this.peerAway = false;
    if (this.resumeMark !== null) {
      // Both sides resumed: the caller's restart offer may have reached nobody, so it offers again.
      if (this.direction === 'outgoing' && this.host.online) void this.negotiator?.offer(true);
    } else {
      // The peer resumed on a new socket and re-offers: an offer of ours still waiting went to its old one.
      void this.negotiator?.abandonOffer();
    }
    this.refresh();
  }

  /**
   * One sample a second of the media received: the `quality` event, warnings
   * raised and cleared, a `call:quality` report when one is due, and the
   * stall check.
   */
  private async sampleQuality(): Promise<void> {
    const pc = this.negotiator?.pc;
    if (!pc || this.isOver()) return;
    let report: RTCStatsReport;
    try {
      report = await pc.getStats();
    } catch {
      return; // closed meanwhile
    }
    if (this.isOver()) return;
    const now = Date.now();
    const result = this.tracker.add(readStats(report, now));
    if (!result) return;
    const { sample, raised, cleared } = result;
    this.checkStall(sample.packets);
    this.emit(CallEvent.Quality, sample);
    for (const name of raised) this.emit(CallEvent.Warning, name);
    for (const name of cleared) this.emit(CallEvent.WarningCleared, name);
    if (this.host.online && this.pacer.due(sample, now)) {
      const { mos, rttMs, jitterMs, lossPct, level, warnings } = sample;
      this.host.relay('call:quality', { callId: this.id, mos, rttMs, jitterMs, lossPct, level, warnings });
    }
  }

  /**
   * ICE takes seconds to call a dead path `disconnected` (consent checks
   * time out; 5.8 s after a network change in the lab), while audio stops at
   * once. A sample (a second) without a packet on a link that still says
   * connected is a loss all the same, so the socket is probed and ICE
   * restarted now. Once per stall: packets must flow again before another
   * one counts.
   */
  private checkStall(packets: number): void {
    const quiet = packets === 0 && this.negotiator?.link === 'connected' && this.resumeMark === null;
    if (!quiet) {
      this.quietChecks = 0;
      return;
    }
    if (++this.quietChecks !== STALL_CHECKS) return;
    this.host.probeTransport();
    this.recovery.kick();
  }

  /** Recovery's restart: with the freshest ICE servers, or first a resumption when their credentials are about to expire. */
  private restartIce(): void {
    const negotiator = this.negotiator;
    if (!negotiator) return;
    if (this.host.credentialsStale()) return this.host.suspectTransport(); // the resumption restarts ICE with fresh ones
    negotiator.setIceServers(this.host.rtcConfiguration().iceServers ?? []);
    void negotiator.offer(true);
  }

  /**
   * An ICE restart's offer goes with an ack: one that does not come back in
   * time means the socket is dead though nobody has noticed (a network
   * change leaves it half-open), so the phone resumes on a new one.
   */
  private sendRestartOffer(sdp: string): void {
    this.host.request('webrtc:offer', { callId: this.id, sdp }, RESTART_ACK_TIMEOUT_MS).catch((err: unknown) => {
      if (this.isOver()) return;
      if (err instanceof SwitchboardError && err.code === 'timeout') this.host.suspectTransport();
      else if (!isMoot(err)) this.emit(CallEvent.Error, err as SwitchboardError);
    });
  }

  /** Media never connected, or did not come back, within `mediaRecoveryTimeoutMs`. */
  private giveUp(): void {
    if (this.isOver()) return;
    this.finish({ reason: 'ice_failed' });
    this.tell('call:end', { reason: 'ice_failed' }).catch(() => undefined);
  }

  /** The first local media, acquired by the SDK: the call owns its tracks. */
  private useAcquired(stream: MediaStream): void {
    for (const track of stream.getTracks()) this.owned.add(track);
    this.useLocal(stream);
  }

  /** `stream` is what we send from now on: mute and hold apply to it, and whether it holds a camera is told. */
  private useLocal(stream: MediaStream): void {
    this.localMedia = stream;
    this.controls.attach(stream);
    const camera = stream.getVideoTracks().length > 0;
    this.controls.setVideoOff(!camera);
    if (camera) this.mediaNow = withVideo(this.mediaNow);
    this.updateVideo();
  }

  private camera(): MediaStreamTrack | undefined {
    return this.localMedia?.getVideoTracks()[0];
  }

  private microphones(): MediaStreamTrack[] {
    return this.localMedia?.getAudioTracks() ?? [];
  }

  /**
   * Sends `tracks` from now on (in `stream`, the app's, or in one made here):
   * each kind switched in place, the camera's coming or going renegotiated
   * and told to the server. Owned tracks left behind are stopped.
   */
  private async send(tracks: MediaStreamTrack[], stream = this.compose(tracks)): Promise<void> {
    const before = this.localMedia?.getTracks() ?? [];
    this.useLocal(stream);
    for (const track of before) {
      if (tracks.includes(track) || !this.owned.delete(track)) continue;
      track.stop();
    }
    const negotiator = this.negotiator;
    if (!negotiator) return; // the first offer or answer sends what the stream holds then
    await negotiator.setTrack('audio', stream.getAudioTracks()[0] ?? null, stream);
    await negotiator.setTrack('video', stream.getVideoTracks()[0] ?? null, stream);
  }

  /** A stream of `tracks`: a new one where the stack can make it, else the current one changed. */
  private compose(tracks: MediaStreamTrack[]): MediaStream {
    const made = newStream(this.host.rtc, tracks);
    if (made) return made;
    const stream = this.localMedia;
    if (!stream) throw SwitchboardError.unsupported('MediaStream');
    for (const track of stream.getTracks()) if (!tracks.includes(track)) stream.removeTrack(track);
    for (const track of tracks) if (!stream.getTrackById(track.id)) stream.addTrack(track);
    return stream;
  }

  /** Recomputes `video` and tells a change. */
  private updateVideo(): void {
    const camera = this.camera();
    const next = {
      local: camera !== undefined && camera.readyState === 'live',
      // Signalling may settle before the track arrives (signalingstatechange fires before track events).
      remote: (this.negotiator?.receivingVideo ?? false) && !this.controls.remote.videoOff && (this.remoteMedia?.getVideoTracks().length ?? 0) > 0,
    };
    if (next.local === this.videoNow.local && next.remote === this.videoNow.remote) return;
    this.videoNow = Object.freeze(next);
    this.emit(CallEvent.Video, this.videoNow);
  }

  private ensureNegotiator(): Negotiator | undefined {
    if (this.negotiator) return this.negotiator;
    const localStream = this.localMedia;
    if (!localStream) {
      this.fail(SwitchboardError.invalidState('negotiation began before the local audio was ready'));
      return undefined;
    }
    const relay = this.host.relay.bind(this.host);
    try {
      this.negotiator = new Negotiator({
        rtc: this.host.rtc,
        configuration: this.host.rtcConfiguration(),
        localStream: () => this.localMedia ?? localStream,
        polite: this.direction === 'incoming',
        signals: {
          offer: (sdp, iceRestart) => (iceRestart ? this.sendRestartOffer(sdp) : relay('webrtc:offer', { callId: this.id, sdp })),
          answer: (sdp) => relay('webrtc:answer', { callId: this.id, sdp }),
          candidate: (candidate) => relay('webrtc:ice-candidate', { callId: this.id, candidate }),
        },
        onRemoteStream: (stream) => {
          this.remoteMedia = stream;
          this.emit(CallEvent.RemoteStream, stream);
          this.updateVideo();
        },
        onChange: () => this.onMediaChange(),
        onError: (err) => (this.everConnected ? this.emit(CallEvent.Error, err) : this.fail(err)),
      });
    } catch (err) {
      this.fail(err instanceof SwitchboardError ? err : SwitchboardError.negotiation(err));
      return undefined;
    }
    return this.negotiator;
  }

  private onMediaChange(): void {
    const negotiator = this.negotiator;
    if (!negotiator || this.currentState === 'ended') return;
    if (this.resumeMark !== null && negotiator.exchanges > this.resumeMark) this.resumeMark = null;
    if (negotiator.exchanges > this.seenExchanges) {
      this.seenExchanges = negotiator.exchanges;
      this.recovery.restarted();
    }
    const link = negotiator.link;
    if (link === 'connected') this.sampleTimer ??= setInterval(() => void this.sampleQuality(), SAMPLE_EVERY_MS);
    if ((link === 'lost' || link === 'failed') && !this.mediaDown && this.everConnected) this.host.probeTransport();
    this.mediaDown = link === 'lost' || link === 'failed';
    this.recovery.update(link);
    this.refresh();
    this.updateVideo();
  }

  /** Derives the state of an answered call from signalling and media. */
  private refresh(): void {
    if (this.currentState === 'ended' || !this.answered) return;
    const link = this.negotiator?.link ?? 'new';
    const signallingDown = !this.host.online || this.peerAway || this.resumeMark !== null;
    let next: CallState;
    if (!signallingDown && link === 'connected') {
      next = 'connected';
      this.everConnected = true;
    } else {
      next = signallingDown || this.everConnected ? 'reconnecting' : 'connecting';
    }
    this.setState(next);
  }

  private setState(next: CallState): void {
    const previous = this.currentState;
    if (next === previous) return;
    this.currentState = next;
    this.emit(CallEvent.State, next, previous);
  }

  private sendControl(event: ControlEvent): void {
    // Offline: the resumption compares the snapshot's flags with ours and sends the difference.
    if (!this.host.online) return;
    this.host.request(event, { callId: this.id }).catch((err: unknown) => {
      if (!isMoot(err) && !this.isOver()) this.emit(CallEvent.Error, err as SwitchboardError);
    });
  }

  /** Tells the server, after the call has ended here; a lost race is no error. */
  private async tell(event: 'call:end' | 'call:reject', extra: { reason?: 'ice_failed' | 'media_failed' } = {}): Promise<void> {
    try {
      await this.host.request(event, { callId: this.id, ...extra });
    } catch (err) {
      if (!isMoot(err)) throw err;
    }
  }

  /** The local WebRTC stack cannot carry the call: end it here and there. */
  private fail(err: SwitchboardError): void {
    if (this.currentState === 'ended') return;
    this.emit(CallEvent.Error, err);
    this.finish({ reason: 'failed' });
    this.tell('call:end').catch(() => undefined);
  }

  private finish(info: CallEndInfo): void {
    if (this.currentState === 'ended') return;
    const durationMs = info.durationMs ?? (this.answeredAtMs === null ? undefined : Date.now() - this.answeredAtMs);
    this.ended = { ...info, ...(durationMs === undefined ? {} : { durationMs }) };
    if (this.ended.by === undefined) delete this.ended.by;
    this.recovery.stop();
    if (this.sampleTimer) clearInterval(this.sampleTimer);
    this.sampleTimer = null;
    this.negotiator?.close();
    for (const track of this.owned) track.stop();
    this.owned.clear();
    this.host.forget(this);
    this.setState('ended');
    this.emit(CallEvent.Ended, this.ended);
  }
}

function stopTracks(stream: MediaStream | undefined): void {
  for (const track of stream?.getTracks() ?? []) track.stop();
}

function withVideo(media: Media): Media {
  return media.video ? media : Object.freeze({ ...media, video: true });
}

/** Local media from the phone, checked to hold what was asked for. */
export async function acquire(host: Pick<CallHost, 'acquireMedia'>, request: MediaRequest): Promise<MediaStream> {
  const stream = await host.acquireMedia(request);
  const missing = request.audio && stream.getAudioTracks().length === 0 ? 'microphone' : request.video && stream.getVideoTracks().length === 0 ? 'camera' : null;
  if (missing) {
    stopTracks(stream);
    throw SwitchboardError.media(new Error(`the media option gave no ${missing} track`));
  }
  return stream;
}
