/**
 * What a `Phone` and its `Call`s say to each other and nobody else: the
 * symbols of the call's internal methods (not exported from the package, so
 * apps cannot call them) and the narrow host interface a call sees its phone
 * through.
 */
import { CALL_STATE_EVENTS, CONTROL_EVENTS, RELAY_EVENTS } from '@switchboard/protocol/wire';
import type { CallId, CallSnapshot, ClientEventName, IceServer, ServerPayload, UserRef } from '@switchboard/protocol/wire';
import type { Call } from './call.js';
import type { MediaRequest, RtcImplementation } from './types.js';

/** A server event about one call, routed by the phone to it. */
export const deliver = Symbol('deliver');
/** The phone lost (false) or regained (true) its link to the server. */
export const linkChanged = Symbol('linkChanged');
/** The session was resumed: the call's snapshot (absent = the server no longer has it) and fresh ICE servers. */
export const resumed = Symbol('resumed');
/** The device's network changed (a browser's `online` event or connection change). */
export const networkChanged = Symbol('networkChanged');
/** End the call here without telling the server (it knows already, or cannot be told). */
export const endLocally = Symbol('endLocally');

/** The server events about one call, routed by the phone to it: the protocol's lists of them. */
export const CALL_SERVER_EVENTS = [...CALL_STATE_EVENTS, ...CONTROL_EVENTS, ...RELAY_EVENTS, 'call:quality'] as const;
export type CallServerEvent = (typeof CALL_SERVER_EVENTS)[number];

export type Delivery = { [E in CallServerEvent]: { event: E; payload: ServerPayload<E> } }[CallServerEvent];

/** The phone, as a call sees it. */
export interface CallHost {
  /** Authenticated on a live socket: requests can be sent. */
  readonly online: boolean;
  readonly user: UserRef | undefined;
  readonly rtc: RtcImplementation;
  rtcConfiguration(): RTCConfiguration;
  /** The phone's `mediaRecoveryTimeoutMs`. */
  readonly mediaRecoveryTimeoutMs: number;
  /** Emits with an ack (waiting `timeoutMs`, or the phone's request timeout); resolves on `ok`, rejects with a `SwitchboardError`. */
  request(event: ClientEventName, payload: { callId: CallId; [field: string]: unknown }, timeoutMs?: number): Promise<void>;
  /** Emits without an ack (relay events); dropped while offline. A failure comes back as `call:error`. */
  relay(event: 'webrtc:offer' | 'webrtc:answer' | 'webrtc:ice-candidate' | 'call:quality', payload: object): void;
  /** The phone's `media` option (or getUserMedia); rejects with `media_failed`. */
  acquireMedia(request: MediaRequest): Promise<MediaStream>;
  /** The TURN credentials at hand expire soon: an ICE restart should wait for fresh ones. */
  credentialsStale(): boolean;
  /** A request went unanswered: take the socket for dead and resume the session on a new one (fresh ICE servers come with it). */
  suspectTransport(): void;
  /** Media was lost: check at once that the socket still answers (a network change kills both), and resume if not. */
  probeTransport(): void;
  /** The call has ended: stop routing to it. */
  forget(call: Call): void;
}

export type { CallSnapshot, IceServer };
