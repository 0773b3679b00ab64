/** The public types of the SDK that are not classes: options, states, reasons. */
import type {
  CancelledReason,
  EndedReason,
  PartyFlags,
  PresenceUser,
  RejectedReason,
  UserRef,
} from '@switchboard/protocol/wire';
import type { ManagerOptions, SocketOptions } from 'socket.io-client';
import type { ReconnectPolicy } from './reconnect-policy.js';

export type { PartyFlags, PresenceUser, UserRef };

/** The WebRTC classes the SDK builds on: the browser's, or `@roamhq/wrtc`'s in Node. */
export interface RtcImplementation {
  RTCPeerConnection: new (configuration?: RTCConfiguration) => RTCPeerConnection;
  /** Used to wrap a remote track that arrives without a stream. */
  MediaStream?: new (tracks?: MediaStreamTrack[]) => MediaStream;
}

/** A JWT, or a function that fetches a fresh one (asked again before every authentication and resumption). */
export type TokenSource = string | (() => Promise<string>);

/** Options of `new Phone(options)`. */
export interface PhoneOptions {
  /** The Switchboard server, e.g. `https://switchboard.example.com`. */
  url: string;
  /** The user's JWT, or a function returning a fresh one; a function is called again before each resumption. */
  token: TokenSource;
  /** The WebRTC implementation. @default globalThis (the browser's `RTCPeerConnection` and `MediaStream`) */
  rtc?: RtcImplementation;
  /**
   * Gets the local media for a call: the microphone (and the camera for a
   * video call) before `call()` places it and before `accept()` answers, and
   * the camera alone for `enableVideo()`. The call owns what this returns:
   * its tracks are stopped when the call ends or the camera is turned off.
   * A function that ignores `request` and returns audio serves audio calls.
   * @default (request) => navigator.mediaDevices.getUserMedia(request)
   */
  media?: (request: MediaRequest) => Promise<MediaStream>;
  /**
   * socket.io-client options (transports, path, extraHeaders, …). The phone
   * manages `autoConnect`, `reconnection`, `forceNew` and `auth` itself.
   * @default {}
   */
  socket?: Partial<ManagerOptions & SocketOptions>;
  /** When to retry after a transport loss. @default new DefaultReconnectPolicy() */
  reconnectPolicy?: ReconnectPolicy;
  /** How long to wait for the server to answer a request (auth, call:request, accept, …). @default 10000 */
  requestTimeoutMs?: number;
  /** Extra `RTCConfiguration` for every call; the server's `iceServers` are used unless this sets its own. @default {} */
  rtcConfiguration?: RTCConfiguration;
  /**
   * How long an answered call may be without media: never connected since
   * the answer, or lost and not restored by ICE restarts. The call then ends
   * with `ice_failed`, on both sides. @default 30000
   */
  mediaRecoveryTimeoutMs?: number;
}

/** What a call asks the `media` option for. */
export interface MediaRequest {
  audio: boolean;
  video: boolean;
}

/** Options of `phone.call(user, options)`. */
export interface CallOptions {
  /** Send our camera from the start (a video call). @default false */
  video?: boolean;
}

/** Options of `call.accept(options)`. */
export interface AcceptOptions {
  /**
   * Send our camera. `false` answers a video call without it: we still see
   * the caller's video, and may turn ours on later with `enableVideo()`.
   * @default whether the call was offered with video (`call.media.video`)
   */
  video?: boolean;
}

/** Which way video flows in a call (`call.video`, and the `video` event). */
export interface VideoState {
  /** We send our camera. */
  local: boolean;
  /** The peer sends video: it is negotiated to reach us and the peer has not turned its camera off. */
  remote: boolean;
}

/**
 * Where a phone's link to the server stands (v1.1): `disconnected` before
 * `connect()` and after it ends for good (`disconnect()`, or the phone gave
 * up); `connecting`: `connect()` in progress; `connected`: authenticated;
 * `reconnecting`: the transport was lost and the session is being resumed.
 */
export type PhoneState = 'disconnected' | 'connecting' | 'connected' | 'reconnecting';

export type CallDirection = 'outgoing' | 'incoming';

/**
 * `ringing`: not answered yet; `connecting`: answered, media not flowing yet;
 * `connected`: the peer connection is connected; `reconnecting`: signalling or
 * media was lost and is being recovered; `ended`: over for good.
 */
export type CallState = 'ringing' | 'connecting' | 'connected' | 'reconnecting' | 'ended';

/**
 * Why a call ended. Server reasons (`declined`, `timeout`, `unavailable` from
 * `call:rejected`; `cancelled`, `answered_elsewhere`, `declined_elsewhere`,
 * `caller_disconnected` from `call:cancelled`; `hangup`, `connection_lost`,
 * `ice_failed`, `media_failed` from `call:ended`; `busy` from `call:busy`),
 * and `failed` when the local WebRTC stack could not set the call up.
 * `ice_failed` also ends this side when its own media recovery gives up. A party's own action ends its side
 * with the same reason the peer hears: `cancelled`, `declined`, `hangup`.
 */
export type CallEndReason = RejectedReason | CancelledReason | EndedReason | 'busy' | 'failed';

/** The payload of a call's `ended` event. */
export interface CallEndInfo {
  reason: CallEndReason;
  /** Who ended it, when a person did (`hangup`). */
  by?: UserRef;
  /** Talk time in milliseconds, when the call was answered. */
  durationMs?: number;
}

/** The local side's own flags. */
export interface LocalFlags {
  muted: boolean;
  held: boolean;
}

/** Why the phone went `disconnected`. */
export interface DisconnectInfo {
  /** `client`: `disconnect()` was called; `reconnect_failed`: the reconnect policy gave up; `auth_failed`: the token was refused afresh. */
  reason: 'client' | 'reconnect_failed' | 'auth_failed';
  error?: Error;
}

/** The payload of the phone's `reconnected` event. */
export interface ReconnectInfo {
  /** True when the session (and its calls) was resumed; false when it had expired and the phone signed in afresh. */
  resumed: boolean;
  /** Milliseconds from the transport loss to being back. */
  downtimeMs: number;
}
