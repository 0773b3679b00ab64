/**
 * The events of a `Phone` and of a `Call`: string enums with a doc line per
 * member, and the callbacks maps that type their listeners. Listeners may be
 * added by member (`PhoneEvent.Incoming`) or by its string (`'incoming'`).
 */
import type { SwitchboardError } from './errors.js';
import type { Call } from './call.js';
import type { QualitySample, RemoteQuality } from './quality.js';
import type { QualityWarning } from '@switchboard/protocol/wire';
import type {
  CallEndInfo,
  CallState,
  DisconnectInfo,
  LocalFlags,
  PartyFlags,
  PresenceUser,
  ReconnectInfo,
  UserRef,
  PhoneState,
  VideoState,
} from './types.js';

export enum PhoneEvent {
  /** The phone authenticated: `connect()` is about to resolve. Payload: the user. */
  Connected = 'connected',
  /** The transport was lost (not by `disconnect()`); the phone is resuming its session. */
  Reconnecting = 'reconnecting',
  /** The phone is back online after a transport loss, with its session resumed or afresh. */
  Reconnected = 'reconnected',
  /** The phone is offline for good: `disconnect()`, the reconnect policy gave up, or the token was refused. */
  Disconnected = 'disconnected',
  /** `phone.state` changed. Payload: the new state and the one before. */
  State = 'state',
  /** `phone.users` changed (a full list, a user online, a user offline). Payload: the map. */
  Presence = 'presence',
  /** A call rings on this device. Payload: the `Call`, in state `ringing`. */
  Incoming = 'incoming',
  /** Something failed that no promise could report (e.g. a server `call:error` about no call). */
  Error = 'error',
}

export type PhoneEventCallbacks = {
  connected: (user: UserRef) => void;
  reconnecting: () => void;
  reconnected: (info: ReconnectInfo) => void;
  disconnected: (info: DisconnectInfo) => void;
  state: (state: PhoneState, previous: PhoneState) => void;
  presence: (users: ReadonlyMap<string, PresenceUser>) => void;
  incoming: (call: Call) => void;
  error: (error: SwitchboardError) => void;
};

export enum CallEvent {
  /** `call.state` changed. Payload: the new state and the previous one. */
  State = 'state',
  /** The call is over. Payload: `{ reason, by?, durationMs? }`. Emitted once, after the `state` event to `ended`. */
  Ended = 'ended',
  /** The peer's flags changed (`call.remote`): muted, held or video off. */
  Remote = 'remote',
  /** This side's flags changed (`call.local`): muted or held. */
  Local = 'local',
  /** The peer's media arrived: `call.remoteStream` is set (a camera the peer adds later joins that stream; see `video`). */
  RemoteStream = 'remoteStream',
  /** Something went wrong in the call that no promise could report (a control the server refused, a failed re-negotiation). */
  Error = 'error',
  /** About once a second from the first connection: the received media's MOS, RTT, jitter, loss, level and warnings. */
  Quality = 'quality',
  /** A quality warning was raised (after several bad samples). Payload: its name. */
  Warning = 'warning',
  /** A raised warning cleared (after several good samples). Payload: its name. */
  WarningCleared = 'warning-cleared',
  /** Video started or stopped flowing one way or the other (`call.video`). Payload: `{ local, remote }`. An addition to the SDK contract. */
  Video = 'video',
  /** The peer reported how it receives our media (`call.remoteQuality`). An addition to the SDK contract. */
  RemoteQuality = 'remote-quality',
}

export type CallEventCallbacks = {
  state: (state: CallState, previous: CallState) => void;
  ended: (info: CallEndInfo) => void;
  remote: (flags: Readonly<PartyFlags>) => void;
  local: (flags: Readonly<LocalFlags>) => void;
  remoteStream: (stream: MediaStream) => void;
  error: (error: SwitchboardError) => void;
  quality: (sample: QualitySample) => void;
  warning: (name: QualityWarning) => void;
  'warning-cleared': (name: QualityWarning) => void;
  'remote-quality': (quality: Readonly<RemoteQuality>) => void;
  video: (video: Readonly<VideoState>) => void;
};
