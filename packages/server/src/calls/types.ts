/**
 * The call model: what a call is, what can happen to it, and what the world
 * must do about it. Pure data, shared by the machine, the stores and the
 * transport.
 */
import type {
  CallId,
  CallOutcome,
  ControlEvent,
  EndReason,
  ErrorCode,
  IceServer,
  Media,
  PartyFlags,
  ServerEventName,
  ServerPayload,
  SessionId,
  UserId,
} from '@switchboard/protocol';

/**
 * A user is the pair (tenant, sub). `UserKey` is that pair folded into one
 * string with a length prefix, so no choice of tenant and sub can collide.
 */
export type UserKey = string & { readonly __userKey: true };
export const DEFAULT_TENANT = '';
export function userKey(tenant: string, userId: string): UserKey {
  return `${tenant.length}:${tenant}:${userId}` as UserKey;
}

/** A call's tenant and id folded into one string as a `UserKey` is: a call id is its tenant's own. */
export function callKey(tenant: string, callId: CallId): string {
  return userKey(tenant, callId);
}

/** A ring timer's id: its call's key (`callKey`), so the node whose timer fires finds the call. */
export function ringTimerId(tenant: string, callId: CallId): string {
  return callKey(tenant, callId);
}

/** A `UserKey`, `callKey` or ring timer id taken apart: the tenant, and the user or call id. */
export function splitKey(key: string): { tenant: string; id: string } {
  const colon = key.indexOf(':');
  const start = colon + 1;
  const end = start + Number(key.slice(0, colon));
  return { tenant: key.slice(start, end), id: key.slice(end + 1) };
}

/** The tenant and call of a ring timer's id (see `ringTimerId`). */
export function parseRingTimerId(timerId: string): { tenant: string; callId: CallId } {
  const { tenant, id } = splitKey(timerId);
  return { tenant, callId: id as CallId };
}

export type CallState = 'ringing' | 'active' | 'ended';

export interface Party {
  userId: UserId;
  name: string;
  /** The session bound to the call: always set for the caller, set for the callee once a device accepted. */
  sessionId: SessionId | null;
  flags: PartyFlags;
  /** True while this party's session has lost its transport and is inside its reconnect grace. */
  reconnecting: boolean;
}

export interface CallRecord {
  id: CallId;
  tenant: string;
  state: CallState;
  caller: Party;
  callee: Party;
  /** Callee devices that are ringing (only meaningful while `state` is `ringing`). */
  ringing: SessionId[];
  media: Media;
  createdAt: number;
  answeredAt: number | null;
  endedAt: number | null;
  /** When an unanswered call times out. */
  ringDeadline: number;
  outcome: CallOutcome | null;
  /** The wire reason that ended the call (`declined`, `timeout`, `hangup`, …). */
  endReason: string | null;
  /** Who ended it, when a party did. */
  endedBy: UserId | null;
}

export type Role = 'caller' | 'callee';

export const NO_FLAGS: PartyFlags = Object.freeze({ muted: false, held: false, videoOff: false });

/** An identified actor: a session of a user (a user is the pair tenant, userId). */
export interface Actor {
  tenant: string;
  userId: UserId;
  name: string;
  sessionId: SessionId;
}

/** Everything that can happen to a call. */
export type CallInput =
  | {
      type: 'request';
      callId: CallId;
      tenant: string;
      caller: Actor;
      callee: { userId: UserId; name: string };
      /** The callee's live sessions right now: the devices to ring. */
      calleeSessions: SessionId[];
      /**
       * Every session of the callee as read, connected or in its grace: the
       * commit of a ringing call holds only if the store still has exactly
       * these (`CallCommit.sessionsAsRead`), else the sessions are read again.
       * The machine does not look at it.
       */
      calleeSessionsRead?: SessionId[];
      media: Media;
      /** ICE servers issued for the callee now, handed to every device rung (none: an empty list). */
      calleeIceServers?: IceServer[];
      /** `RING_OFFLINE=webhook`: with no live session, the call rings with no device until one signs in. */
      ringOffline?: boolean;
    }
  | { type: 'accept'; callId: CallId; by: Actor }
  | { type: 'reject'; callId: CallId; by: Actor }
  | { type: 'cancel'; callId: CallId; by: Actor }
  /** `reason`: why the party ends it (`hangup` unless it says otherwise). */
  | { type: 'end'; callId: CallId; by: Actor; reason?: EndReason }
  | { type: 'control'; callId: CallId; by: Actor; control: ControlEvent }
  | { type: 'ring-timeout'; callId: CallId; tenant: string }
  /**
   * v1.1, "The ring reaches the user": a device of the callee that signed in
   * (`again` false) or resumed (`again` true) while the call rings, with the
   * ICE servers issued for it now.
   */
  | { type: 'ring-device'; callId: CallId; by: Actor; again: boolean; iceServers?: IceServer[] }
  /** The host app refused to push a call that rings no device (`RING_OFFLINE=webhook`): it ends as `unavailable`. */
  | { type: 'push-failed'; callId: CallId; tenant: string }
  /** A session lost its socket. `deliberate` is the client's own disconnect. */
  | { type: 'session-lost'; callId: CallId; tenant: string; sessionId: SessionId; deliberate: boolean }
  /**
   * A session is back on a new socket. `replaced`: its old socket was still
   * held for live (a takeover): the peer is told all the same, since what it
   * sent meanwhile went to the old one.
   */
  | { type: 'session-resumed'; callId: CallId; tenant: string; sessionId: SessionId; replaced?: boolean }
  /** A session's reconnect grace ran out (or it was closed). */
  | { type: 'session-expired'; callId: CallId; tenant: string; sessionId: SessionId }
  /** The node holding both parties stops for good (memory mode's drain). */
  | { type: 'drain'; callId: CallId; tenant: string };

/** The tenant whose call an event names (a call id is its tenant's own). */
export function tenantOf(event: CallInput): string {
  return 'by' in event ? event.by.tenant : event.tenant;
}

/** What the state around a call looked like when the event was applied. */
export interface CallContext {
  now: number;
  ringTimeoutMs: number;
  /** The call the event names, if the store has it (ended calls linger as tombstones). */
  call: CallRecord | undefined;
  /** For `request`: the call the caller is in, if any. */
  callerCall?: CallRecord | undefined;
  /** For `request`: the call the callee is in, if any. */
  calleeCall?: CallRecord | undefined;
}

export type Emit = {
  [E in ServerEventName]: { kind: 'emit'; to: SessionId; event: E; payload: ServerPayload<E> };
}[ServerEventName];

export type Effect =
  | Emit
  /** Join the two bound sessions to the call's room. */
  | { kind: 'bind'; callId: CallId; sessions: [SessionId, SessionId] }
  /** Empty the call's room. */
  | { kind: 'unbind'; callId: CallId }
  | { kind: 'schedule-ring-timeout'; callId: CallId; dueAt: number }
  | { kind: 'cancel-ring-timeout'; callId: CallId }
  /** The call has ended: write its history record, count it. */
  | { kind: 'ended'; call: CallRecord }
  /** The call was answered: `setupMs` is request → accepted. */
  | { kind: 'answered'; call: CallRecord; setupMs: number };

/** Which user claims (tenant, userId) → callId change. */
export interface ClaimChange {
  userId: UserId;
  callId: CallId | null;
}

export type Transition =
  | {
      ok: true;
      /** The call as it is after the event; `undefined` when nothing is stored (e.g. idempotent repeat). */
      call: CallRecord | undefined;
      /** True when `call` differs from what was read and must be written. */
      changed: boolean;
      claims: ClaimChange[];
      effects: Effect[];
    }
  | { ok: false; code: ErrorCode; message: string };
