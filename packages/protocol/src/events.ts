/**
 * The typed event maps shared by the server (`Server<ClientToServerEvents,
 * ServerToClientEvents, InterServerEvents, SocketData>`) and the client
 * (`Socket<ServerToClientEvents, ClientToServerEvents>`).
 */
import type {
  AuthErrorCode,
  CancelledReason,
  EndedReason,
  ErrorCode,
  ReconnectFailReason,
  RejectedReason,
} from './errors.js';
import type { CallId, SessionId, UserId } from './ids.js';
import type {
  AuthHandshakePayload,
  CallEndPayload,
  CallIdPayload,
  CallQualityPayload,
  CallRequestPayload,
  IceCandidateInit,
  IceCandidatePayload,
  Media,
  ReconnectAttemptPayload,
  SdpPayload,
} from './schemas.js';
import type { QualityLevel, QualityWarning } from './quality.js';

export interface ErrorBody {
  code: ErrorCode;
  message: string;
  /**
   * The server has already said why by an event of its own (`auth:error`,
   * `reconnect:failed`) before this answer: the event is the verdict, and the
   * client has nothing more to do about this answer. (An addition to the contract.)
   */
  told?: true;
}
/** Every acknowledgement: `{ ok: true, ...data }` or `{ ok: false, error }`. */
export type AckResponse<T extends object = object> = ({ ok: true } & T) | { ok: false; error: ErrorBody };
export type Ack<T extends object = object> = (response: AckResponse<T>) => void;

export interface UserRef {
  id: UserId;
  name: string;
}
export type PresenceStatus = 'available' | 'busy';
export interface PresenceUser extends UserRef {
  status: PresenceStatus;
}

/** `RTCIceServer` as the browser takes it. */
export interface IceServer {
  urls: string | string[];
  username?: string;
  credential?: string;
}

export interface PartyFlags {
  muted: boolean;
  held: boolean;
  videoOff: boolean;
}

/** One call of a resumed session, as `reconnect:success` carries it. */
export interface CallSnapshot {
  callId: CallId;
  state: 'ringing' | 'active';
  role: 'caller' | 'callee';
  peer: UserRef;
  media: Media;
  createdAt: number;
  answeredAt: number | null;
  self: PartyFlags;
  remote: PartyFlags;
  /** An addition to the contract: the peer has lost its transport too and is inside its grace (then the caller re-offers once both are back). */
  peerReconnecting: boolean;
}

export interface AuthSuccess {
  user: UserRef;
  sessionId: SessionId;
  iceServers: IceServer[];
  ringTimeoutMs: number;
}

export const CONTROL_EVENTS = [
  'call:mute',
  'call:unmute',
  'call:video-off',
  'call:video-on',
  'call:hold',
  'call:resume',
] as const;
export type ControlEvent = (typeof CONTROL_EVENTS)[number];

/** Which party flag each in-call control sets, and to what. */
export const CONTROL_FLAGS: Readonly<Record<ControlEvent, readonly [keyof PartyFlags, boolean]>> = {
  'call:mute': ['muted', true],
  'call:unmute': ['muted', false],
  'call:hold': ['held', true],
  'call:resume': ['held', false],
  'call:video-off': ['videoOff', true],
  'call:video-on': ['videoOff', false],
};

export const RELAY_EVENTS = ['webrtc:offer', 'webrtc:answer', 'webrtc:ice-candidate'] as const;
export type RelayEvent = (typeof RELAY_EVENTS)[number];

type ControlHandlers = { [E in ControlEvent]: (payload: CallIdPayload, ack?: Ack) => void };
type ControlNotices = { [E in ControlEvent]: (payload: { callId: CallId; userId: UserId }) => void };

export interface ClientToServerEvents extends ControlHandlers {
  'auth:handshake': (payload: AuthHandshakePayload, ack?: Ack<AuthSuccess>) => void;
  'reconnect:attempt': (payload: ReconnectAttemptPayload, ack?: Ack) => void;
  'user:list': (ack?: Ack<{ users: PresenceUser[] }>) => void;
  'call:request': (payload: CallRequestPayload, ack?: Ack<{ callId: CallId; iceServers: IceServer[] }>) => void;
  'call:accept': (payload: CallIdPayload, ack?: Ack) => void;
  'call:reject': (payload: CallIdPayload, ack?: Ack) => void;
  'call:cancel': (payload: CallIdPayload, ack?: Ack) => void;
  'call:end': (payload: CallEndPayload, ack?: Ack) => void;
  'webrtc:offer': (payload: SdpPayload, ack?: Ack) => void;
  'webrtc:answer': (payload: SdpPayload, ack?: Ack) => void;
  'webrtc:ice-candidate': (payload: IceCandidatePayload, ack?: Ack) => void;
  /** v1.1: a party's view of the media it receives, at most once a second. */
  'call:quality': (payload: CallQualityPayload, ack?: Ack<{ callId: CallId; dropped?: true }>) => void;
}
export type ClientEventName = keyof ClientToServerEvents;

type CallAcks = { [E in 'call:accept' | 'call:reject' | 'call:cancel' | 'call:end' | ControlEvent]: { callId: CallId } };
type RelayAcks = { [E in RelayEvent]: Record<never, never> };
/** What the ack of each client event carries besides `ok: true` when it succeeds. */
export interface AckData extends CallAcks, RelayAcks {
  'auth:handshake': AuthSuccess;
  'reconnect:attempt': { sessionId: SessionId; calls: CallSnapshot[] };
  'user:list': { users: PresenceUser[] };
  /** v1.1: `iceServers` issued now for the caller. */
  'call:request': { callId: CallId; iceServers: IceServer[] };
  /** v1.1: `dropped` when the report came sooner than a second after the last one (an addition to the contract). */
  'call:quality': { callId: CallId; dropped?: true };
}

/**
 * The server events about one call, as a client routes them to it: how it
 * ends or is answered, the peer's controls, and the relayed SDP and ICE.
 */
export const CALL_STATE_EVENTS = [
  'call:accepted',
  'call:rejected',
  'call:busy',
  'call:cancelled',
  'call:ended',
  'call:error',
  'call:reconnecting',
  'call:reconnected',
] as const satisfies readonly ServerEventName[];

export interface ServerToClientEvents extends ControlNotices {
  'auth:success': (payload: AuthSuccess) => void;
  'auth:error': (payload: { code: AuthErrorCode; message: string }) => void;
  'user:list': (payload: { users: PresenceUser[] }) => void;
  'user:online': (payload: { user: UserRef }) => void;
  'user:offline': (payload: { userId: UserId; lastSeen: number }) => void;
  /** An addition to the contract: a visible online user became `busy` (a call started) or `available` again. */
  'user:status': (payload: { userId: UserId; status: PresenceStatus }) => void;
  /** v1.1: `iceServers` issued now for the callee, so a page open for days still gets TURN credentials valid for the call. */
  'call:incoming': (payload: { callId: CallId; from: UserRef; media: Media; timeoutMs: number; iceServers: IceServer[] }) => void;
  'call:accepted': (payload: { callId: CallId; by: UserRef }) => void;
  'call:rejected': (payload: { callId: CallId; reason: RejectedReason }) => void;
  'call:busy': (payload: { callId: CallId; to: UserId }) => void;
  'call:cancelled': (payload: { callId: CallId; reason: CancelledReason }) => void;
  'call:ended': (payload: { callId: CallId; reason: EndedReason; by?: UserRef; durationMs: number }) => void;
  'call:error': (payload: { event: string; code: ErrorCode; message: string; callId?: CallId }) => void;
  'webrtc:offer': (payload: { callId: CallId; from: UserId; sdp: string }) => void;
  'webrtc:answer': (payload: { callId: CallId; from: UserId; sdp: string }) => void;
  'webrtc:ice-candidate': (payload: {
    callId: CallId;
    from: UserId;
    candidate: IceCandidateInit | null;
  }) => void;
  'reconnect:success': (payload: {
    sessionId: SessionId;
    user: UserRef;
    iceServers: IceServer[];
    calls: CallSnapshot[];
  }) => void;
  'reconnect:failed': (payload: { reason: ReconnectFailReason; message?: string }) => void;
  'call:reconnecting': (payload: { callId: CallId; userId: UserId }) => void;
  'call:reconnected': (payload: { callId: CallId; userId: UserId }) => void;
  /** v1.1: the peer's view of the media it receives. */
  'call:quality': (payload: { callId: CallId; userId: UserId; level: QualityLevel; warnings: QualityWarning[] }) => void;
}
export type ServerEventName = keyof ServerToClientEvents;
export type ServerPayload<E extends ServerEventName> = Parameters<ServerToClientEvents[E]>[0];

/** Events between server nodes (Redis mode). None are needed: state lives in the store. */
export type InterServerEvents = Record<never, never>;

/** What the server keeps on each socket. */
export interface SocketData {
  sessionId?: SessionId;
}

export type { IceCandidateInit, Media };
