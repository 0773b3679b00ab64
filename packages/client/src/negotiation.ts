/**
 * One call's RTCPeerConnection and its offer/answer/ICE exchange. Every step
 * runs on one queue, so a re-offer, an answer and the candidates around them
 * are applied in the order they arrived. Remote candidates wait while there
 * is no remote description to apply them to (or while our own offer awaits
 * its answer, since they then belong to the answer to come).
 *
 * Either side may offer at any time: an ICE restart, or a change of the media
 * it sends (the camera on or off). Offers that cross (glare) are settled as in
 * W3C "perfect negotiation": the polite side (the callee) rolls its own offer
 * back and answers; the impolite side (the caller) ignores the peer's offer
 * and keeps its own. The side that rolled back offers again once the exchange
 * is over, so both changes land, whoever wins.
 */
import type { IceCandidateInit, IceServer } from '@switchboard/protocol/wire';
import { SwitchboardError } from './errors.js';
import type { RtcImplementation } from './types.js';

/** Where the media path stands, from the peer connection's connection (or ICE) state. */
export type MediaLink = 'new' | 'connected' | 'lost' | 'failed' | 'closed';

export interface NegotiationSignals {
  /** `iceRestart`: the offer restarts ICE (the call sends those with an ack). */
  offer(sdp: string, iceRestart: boolean): void;
  answer(sdp: string): void;
  /** `null` is end-of-candidates. */
  candidate(candidate: IceCandidateInit | null): void;
}

export interface NegotiatorOptions {
  rtc: RtcImplementation;
  configuration: RTCConfiguration;
  /** The local media to send, read when the first offer or answer adds the tracks. */
  localStream(): MediaStream;
  /** The side that yields when offers cross. */
  polite: boolean;
  signals: NegotiationSignals;
  onRemoteStream(stream: MediaStream): void;
  /** The media link or the signalling state may have changed. */
  onChange(): void;
  onError(error: SwitchboardError): void;
}

export class Negotiator {
  readonly pc: RTCPeerConnection;
  /** Completed offer/answer exchanges: our offer answered, or a peer's offer answered by us. */
  exchanges = 0;
  private queue: Promise<void> = Promise.resolve();
  private pending: (IceCandidateInit | null)[] = [];
  private tracksAdded = false;
  private closed = false;
  private remoteStream: MediaStream | undefined;
  /** An offer of ours is owed once signalling is stable again (a change made mid-exchange, or an offer rolled back). */
  private owed: { iceRestart: boolean } | null = null;
  /** Whether our latest offer restarted ICE (so that, rolled back, it is owed as one). */
  private lastOfferRestarted = false;

  constructor(private readonly options: NegotiatorOptions) {
    const pc = new options.rtc.RTCPeerConnection(options.configuration);
    this.pc = pc;
    pc.addEventListener('icecandidate', (event) => {
      if (this.closed) return;
      const c = (event as RTCPeerConnectionIceEvent).candidate;
      options.signals.candidate(c ? candidateInit(c) : null);
    });
    pc.addEventListener('track', (event) => {
      if (this.closed) return;
      const { track, streams } = event as RTCTrackEvent;
      // One stream of our own carries all the peer's tracks: the peer's streams change as it adds and drops its camera.
      if (this.remoteStream) {
        if (!this.remoteStream.getTrackById(track.id)) this.remoteStream.addTrack(track);
        options.onChange();
        return;
      }
      const stream = newStream(this.options.rtc, [track]) ?? streams[0];
      if (stream) {
        this.remoteStream = stream;
        options.onRemoteStream(stream);
      }
    });
    for (const type of ['connectionstatechange', 'iceconnectionstatechange', 'signalingstatechange']) {
      pc.addEventListener(type, () => {
        if (!this.closed) options.onChange();
      });
    }
  }

  get link(): MediaLink {
    if (this.closed) return 'closed';
    const ice = this.pc.iceConnectionState;
    // Older Firefox has no connectionState: fall back on the ICE state alone.
    const connection = this.pc.connectionState as RTCPeerConnectionState | undefined;
    if (connection === 'failed' || ice === 'failed') return 'failed';
    const connected = connection !== undefined ? connection === 'connected' : ice === 'connected' || ice === 'completed';
    if (connected) return 'connected';
    if (connection === 'disconnected' || ice === 'disconnected') return 'lost';
    return 'new';
  }

  /** Whether the peer's video is negotiated to reach us (it may still have its camera off). */
  get receivingVideo(): boolean {
    return this.pc
      .getTransceivers()
      .some((t) => t.receiver.track.kind === 'video' && (t.currentDirection === 'sendrecv' || t.currentDirection === 'recvonly'));
  }

  /** Sends an offer (with fresh ICE credentials when `iceRestart`). */
  offer(iceRestart = false): Promise<void> {
    return this.run(() => this.sendOffer(iceRestart));
  }

  /**
   * Sends `track` (or nothing, `null`) as our `kind` of media: the microphone
   * is switched in place (`replaceTrack`, no renegotiation); the camera is
   * switched in place too, and turning it on or off renegotiates.
   */
  setTrack(kind: 'audio' | 'video', track: MediaStreamTrack | null, stream: MediaStream): Promise<void> {
    return this.run(async () => {
      if (!this.tracksAdded) return; // the first offer or answer adds what the local stream holds then
      const transceiver = this.pc.getTransceivers().find((t) => !isStopped(t) && t.receiver.track.kind === kind);
      let changed = false;
      if (transceiver) {
        if (transceiver.sender.track !== track) await transceiver.sender.replaceTrack(track);
        const direction = sending(transceiver.direction, track !== null);
        changed = direction !== transceiver.direction;
        transceiver.direction = direction;
      } else if (track) {
        this.pc.addTrack(track, stream);
        changed = true;
      }
      if (changed) await this.sendOffer(false);
    });
  }

  /**
   * Withdraws an offer of ours still waiting for its answer (it went to a
   * socket of the peer's that is gone), so the peer's next offer is answered
   * whichever side is polite.
   */
  abandonOffer(): Promise<void> {
    return this.run(async () => {
      if (this.pc.signalingState === 'have-local-offer') await this.pc.setLocalDescription({ type: 'rollback' });
    });
  }

  /** Answers a peer's offer: the first one, a re-offer, or an ICE restart. */
  handleOffer(sdp: string): Promise<void> {
    return this.run(async () => {
      if (this.pc.signalingState !== 'stable') {
        if (!this.options.polite) return; // glare: ours wins, the peer rolls back
        // Ours yields; it is offered again (as a restart if it was one) once this exchange is over.
        this.owed = { iceRestart: this.owed?.iceRestart === true || this.lastOfferRestarted };
        await this.pc.setLocalDescription({ type: 'rollback' });
      }
      await this.pc.setRemoteDescription({ type: 'offer', sdp });
      this.addLocalTracks();
      await this.flushCandidates();
      const answer = await this.pc.createAnswer();
      if (this.closed) return;
      await this.pc.setLocalDescription(answer);
      this.exchanges++;
      this.options.signals.answer(this.pc.localDescription?.sdp ?? answer.sdp ?? '');
      this.options.onChange();
      await this.settle();
    });
  }

  handleAnswer(sdp: string): Promise<void> {
    return this.run(async () => {
      // An answer to an offer we have since replaced or rolled back: nothing to apply it to.
      if (this.pc.signalingState !== 'have-local-offer') return;
      await this.pc.setRemoteDescription({ type: 'answer', sdp });
      this.exchanges++;
      await this.flushCandidates();
      this.options.onChange();
      await this.settle();
    });
  }

  handleCandidate(candidate: IceCandidateInit | null): Promise<void> {
    return this.run(async () => {
      if (!this.pc.remoteDescription || this.pc.signalingState === 'have-local-offer') {
        this.pending.push(candidate);
        return;
      }
      await this.addCandidate(candidate);
    });
  }

  /** New ICE servers (fresh TURN credentials after a resumption) for the next gathering. */
  setIceServers(iceServers: IceServer[]): void {
    try {
      this.pc.setConfiguration({ ...this.pc.getConfiguration(), iceServers });
    } catch {
      // Some stacks refuse a configuration change; the old servers still work for a restart.
    }
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.pending = [];
    this.pc.close();
  }

  private run(step: () => Promise<void>): Promise<void> {
    this.queue = this.queue.then(async () => {
      if (this.closed) return;
      try {
        await step();
      } catch (err) {
        if (!this.closed) this.options.onError(SwitchboardError.negotiation(err));
      }
    });
    return this.queue;
  }

  /** Within a step: an offer now if signalling is stable, else owed until it is (see `settle`). */
  private async sendOffer(iceRestart: boolean): Promise<void> {
    this.addLocalTracks();
    if (this.pc.signalingState !== 'stable' && !iceRestart) {
      this.owed = { iceRestart: this.owed?.iceRestart === true };
      return;
    }
    const offer = await this.pc.createOffer({ iceRestart });
    if (this.closed) return;
    await this.pc.setLocalDescription(offer);
    this.lastOfferRestarted = iceRestart;
    this.options.signals.offer(this.pc.localDescription?.sdp ?? offer.sdp ?? '', iceRestart);
  }

  /**
   * After an exchange: the offer owed (one rolled back in glare, or a change
   * made meanwhile), or a track added while answering that the offer had no
   * place for (our camera on an audio-only offer).
   */
  private async settle(): Promise<void> {
    if (this.pc.signalingState !== 'stable') return;
    const unplaced = this.pc.getTransceivers().some((t) => !isStopped(t) && t.mid === null);
    if (!this.owed && !unplaced) return;
    const iceRestart = this.owed?.iceRestart === true;
    this.owed = null;
    await this.sendOffer(iceRestart);
  }

  private addLocalTracks(): void {
    if (this.tracksAdded) return;
    this.tracksAdded = true;
    const stream = this.options.localStream();
    for (const track of stream.getTracks()) this.pc.addTrack(track, stream);
  }

  private async flushCandidates(): Promise<void> {
    const waiting = this.pending;
    this.pending = [];
    for (const candidate of waiting) await this.addCandidate(candidate);
  }

  private async addCandidate(candidate: IceCandidateInit | null): Promise<void> {
    try {
      if (candidate) await this.pc.addIceCandidate(candidate);
      else await this.pc.addIceCandidate(); // end-of-candidates
    } catch {
      // A candidate of an ICE generation that is no longer current (after a restart or an ignored offer).
    }
  }
}

/** A new MediaStream of `tracks` from the stack's class (or the global one); undefined where there is none. */
export function newStream(rtc: RtcImplementation, tracks: MediaStreamTrack[]): MediaStream | undefined {
  const Stream = rtc.MediaStream ?? (globalThis as { MediaStream?: RtcImplementation['MediaStream'] }).MediaStream;
  return Stream ? new Stream(tracks) : undefined;
}

/** The direction a transceiver takes when we start (`send`) or stop sending on it, keeping what it receives. */
function sending(direction: RTCRtpTransceiverDirection, send: boolean): RTCRtpTransceiverDirection {
  const receives = direction === 'sendrecv' || direction === 'recvonly';
  if (send) return receives ? 'sendrecv' : 'sendonly';
  return receives ? 'recvonly' : 'inactive';
}

function isStopped(t: RTCRtpTransceiver): boolean {
  return t.currentDirection === 'stopped' || (t as { stopped?: boolean }).stopped === true;
}

function candidateInit(c: RTCIceCandidate): IceCandidateInit {
  const init: IceCandidateInit = { candidate: c.candidate, sdpMid: c.sdpMid ?? null, sdpMLineIndex: c.sdpMLineIndex ?? null };
  if (c.usernameFragment) init.usernameFragment = c.usernameFragment;
  return init;
}
