/**
 * The call state machine: (call as stored, event) → (next call, claim changes,
 * effects). Pure: no Socket.IO, no timers, no store, no clock of its own. The
 * transport reads the state, runs `applyCallEvent`, commits the result
 * atomically, and only then carries out the effects, so a transition that
 * loses a race is simply run again on fresh state.
 */
import { CONTROL_FLAGS, type CallId, type ControlEvent, type EndReason, type ErrorCode, type SessionId, type UserId } from '@switchboard/protocol';
import type {
  Actor,
  CallContext,
  CallInput,
  CallRecord,
  ClaimChange,
  Effect,
  Party,
  Role,
  Transition,
} from './types.js';
import { NO_FLAGS } from './types.js';
import { peerOf, roleOf } from './parties.js';


function fail(code: ErrorCode, message: string): Transition {
  return { ok: false, code, message };
}

function done(call: CallRecord | undefined, effects: Effect[], claims: ClaimChange[] = [], changed = true): Transition {
  return { ok: true, call, changed, claims, effects };
}

/** Nothing to do: the call as it is, nothing written, no effect. */
function unchanged(call: CallRecord): Transition {
  return done(call, [], [], false);
}

function party(userId: UserId, name: string, sessionId: SessionId | null): Party {
  return { userId, name, sessionId, flags: { ...NO_FLAGS }, reconnecting: false };
}

function releaseClaims(call: CallRecord): ClaimChange[] {
  return [
    { userId: call.caller.userId, callId: null },
    { userId: call.callee.userId, callId: null },
  ];
}

/** Ends `call`: returns the ended record and the effects every ending shares. */
function endCall(
  call: CallRecord,
  now: number,
  outcome: NonNullable<CallRecord['outcome']>,
  reason: string,
  endedBy: UserId | null,
  effects: Effect[],
): Transition {
  const wasRinging = call.state === 'ringing';
  const ended: CallRecord = {
    ...call,
    state: 'ended',
    ringing: [],
    endedAt: now,
    outcome,
    endReason: reason,
    endedBy,
  };
  if (wasRinging) effects.push({ kind: 'cancel-ring-timeout', callId: call.id });
  else effects.push({ kind: 'unbind', callId: call.id });
  effects.push({ kind: 'ended', call: ended });
  return done(ended, effects, releaseClaims(call));
}

function durationOf(call: CallRecord, now: number): number {
  return call.answeredAt === null ? 0 : Math.max(0, now - call.answeredAt);
}

function cancelDevices(call: CallRecord, reason: 'cancelled' | 'timeout' | 'caller_disconnected', except?: SessionId): Effect[] {
  return call.ringing
    .filter((s) => s !== except)
    .map((to) => ({ kind: 'emit', to, event: 'call:cancelled', payload: { callId: call.id, reason } }) as const);
}

function request(event: Extract<CallInput, { type: 'request' }>, ctx: CallContext): Transition {
  const { caller, callee, callId } = event;
  const existing = ctx.call;
  if (existing) {
    const sameCall =
      existing.tenant === event.tenant && existing.caller.userId === caller.userId && existing.callee.userId === callee.userId;
    if (sameCall) {
      return unchanged(existing); // idempotent repeat: same call, no second ring
    }
    return fail('invalid_state', 'this callId belongs to another call');
  }
  if (caller.userId === callee.userId) return fail('self_call', 'you cannot call yourself');
  const mine = ctx.callerCall;
  const glare =
    mine !== undefined &&
    mine.state === 'ringing' &&
    mine.caller.userId === callee.userId &&
    mine.callee.userId === caller.userId;
  // Before the callee is looked at: a caller in a call learns nothing about whom it tried to call.
  if (mine && !glare) return fail('already_in_call', 'you are already in a call');
  if (event.calleeSessions.length === 0 && !event.ringOffline) return fail('unavailable', 'the user is not available');

  const base: CallRecord = {
    id: callId,
    tenant: event.tenant,
    state: 'ringing',
    caller: party(caller.userId, caller.name, caller.sessionId),
    callee: party(callee.userId, callee.name, null),
    ringing: [...event.calleeSessions],
    media: event.media,
    createdAt: ctx.now,
    answeredAt: null,
    endedAt: null,
    ringDeadline: ctx.now + ctx.ringTimeoutMs,
    outcome: null,
    endReason: null,
    endedBy: null,
  };

  if (glare || ctx.calleeCall) {
    // Busy (or the losing side of glare): the call exists only to be recorded.
    const busy: CallRecord = { ...base, state: 'ended', ringing: [], endedAt: ctx.now, outcome: 'busy', endReason: 'busy' };
    return done(busy, [
      { kind: 'emit', to: caller.sessionId, event: 'call:busy', payload: { callId, to: callee.userId } },
      { kind: 'ended', call: busy },
    ]);
  }

  const effects: Effect[] = event.calleeSessions.map((to) => ({
    kind: 'emit',
    to,
    event: 'call:incoming',
    payload: {
      callId,
      from: { id: caller.userId, name: caller.name },
      media: event.media,
      timeoutMs: ctx.ringTimeoutMs,
      iceServers: event.calleeIceServers ?? [],
    },
  }));
  effects.push({ kind: 'schedule-ring-timeout', callId, dueAt: base.ringDeadline });
  return done(base, effects, [
    { userId: caller.userId, callId },
    { userId: callee.userId, callId },
  ]);
}

function requireCall(ctx: CallContext): CallRecord | Transition {
  const call = ctx.call;
  if (!call) return fail('call_not_found', 'no such call');
  return call;
}

function isTransition(x: CallRecord | Transition): x is Transition {
  return 'ok' in x;
}

function accept(call: CallRecord, by: Actor, now: number): Transition {
  if (by.userId !== call.callee.userId) return fail('forbidden', 'only the callee may accept');
  if (call.state !== 'ringing') return fail('invalid_state', `the call is ${call.state}`);
  if (!call.ringing.includes(by.sessionId)) return fail('forbidden', 'this device was not rung');
  const active: CallRecord = {
    ...call,
    state: 'active',
    answeredAt: now,
    ringing: [],
    callee: { ...call.callee, sessionId: by.sessionId, name: by.name },
  };
  const effects: Effect[] = [
    { kind: 'cancel-ring-timeout', callId: call.id },
    { kind: 'bind', callId: call.id, sessions: [call.caller.sessionId as SessionId, by.sessionId] },
    {
      kind: 'emit',
      to: call.caller.sessionId as SessionId,
      event: 'call:accepted',
      payload: { callId: call.id, by: { id: by.userId, name: by.name } },
    },
    ...call.ringing
      .filter((s) => s !== by.sessionId)
      .map(
        (to) =>
          ({ kind: 'emit', to, event: 'call:cancelled', payload: { callId: call.id, reason: 'answered_elsewhere' } }) as const,
      ),
    { kind: 'answered', call: active, setupMs: now - call.createdAt },
  ];
  return done(active, effects);
}

function reject(call: CallRecord, by: Actor, now: number): Transition {
  if (by.userId !== call.callee.userId) return fail('forbidden', 'only the callee may reject');
  if (call.state !== 'ringing') return fail('invalid_state', `the call is ${call.state}`);
  const effects: Effect[] = [
    {
      kind: 'emit',
      to: call.caller.sessionId as SessionId,
      event: 'call:rejected',
      payload: { callId: call.id, reason: 'declined' },
    },
    ...call.ringing
      .filter((s) => s !== by.sessionId)
      .map(
        (to) =>
          ({ kind: 'emit', to, event: 'call:cancelled', payload: { callId: call.id, reason: 'declined_elsewhere' } }) as const,
      ),
  ];
  return endCall(call, now, 'declined', 'declined', by.userId, effects);
}

function cancel(call: CallRecord, by: Actor, now: number): Transition {
  if (by.sessionId !== call.caller.sessionId) {
    return fail('forbidden', by.userId === call.caller.userId ? 'cancel from the calling device' : 'only the caller may cancel');
  }
  if (call.state !== 'ringing') return fail('invalid_state', `the call is ${call.state}`);
  return endCall(call, now, 'cancelled', 'cancelled', by.userId, cancelDevices(call, 'cancelled'));
}

/**
 * Ends an active call for `role`'s reason: the peer hears it. A party's own
 * ending names the party (`by`); one that failed (`ice_failed`,
 * `media_failed`) is recorded as `failed` with that reason.
 */
function hangup(call: CallRecord, role: Role, now: number, reason: EndReason | 'connection_lost'): Transition {
  const leaving = call[role];
  const peer = peerOf(call, role);
  const byParty = reason !== 'connection_lost';
  const payload = byParty
    ? { callId: call.id, reason, by: { id: leaving.userId, name: leaving.name }, durationMs: durationOf(call, now) }
    : { callId: call.id, reason, durationMs: durationOf(call, now) };
  const effects: Effect[] = [{ kind: 'emit', to: peer.sessionId as SessionId, event: 'call:ended', payload }];
  const outcome = reason === 'ice_failed' || reason === 'media_failed' ? 'failed' : 'completed';
  return endCall(call, now, outcome, reason, byParty ? leaving.userId : null, effects);
}

function end(call: CallRecord, by: Actor, now: number, reason: EndReason = 'hangup'): Transition {
  if (call.state === 'ringing') {
    if (by.sessionId === call.caller.sessionId) return cancel(call, by, now);
    if (by.userId === call.callee.userId) return reject(call, by, now);
    return fail('forbidden', 'you are not a party to this call');
  }
  if (call.state !== 'active') return fail('invalid_state', `the call is ${call.state}`);
  const role = boundRole(call, by);
  if (!role) return fail('forbidden', 'you are not a party to this call');
  return hangup(call, role, now, reason);
}

function boundRole(call: CallRecord, by: Actor): Role | undefined {
  if (call.caller.sessionId === by.sessionId) return 'caller';
  if (call.callee.sessionId === by.sessionId) return 'callee';
  return undefined;
}

function control(call: CallRecord, by: Actor, which: ControlEvent): Transition {
  if (by.userId !== call.caller.userId && by.userId !== call.callee.userId) {
    return fail('forbidden', 'you are not a party to this call');
  }
  if (call.state !== 'active') return fail('invalid_state', `the call is ${call.state}`);
  const role = boundRole(call, by);
  if (!role) return fail('forbidden', 'this session is not bound to the call');
  const [flag, value] = CONTROL_FLAGS[which];
  const self = call[role];
  // v1.1: a call carries video once either party has sent it, and says so from then on (snapshots, history).
  const firstVideo = which === 'call:video-on' && !call.media.video;
  const next: CallRecord = {
    ...call,
    [role]: { ...self, flags: { ...self.flags, [flag]: value } },
    ...(firstVideo ? { media: { ...call.media, video: true } } : {}),
  };
  const peer = peerOf(call, role);
  return done(next, [
    { kind: 'emit', to: peer.sessionId as SessionId, event: which, payload: { callId: call.id, userId: by.userId } },
  ], [], self.flags[flag] !== value || firstVideo);
}

function ringTimeout(call: CallRecord, now: number): Transition {
  if (call.state !== 'ringing') return unchanged(call);
  if (now < call.ringDeadline) {
    return done(call, [{ kind: 'schedule-ring-timeout', callId: call.id, dueAt: call.ringDeadline }], [], false);
  }
  const effects: Effect[] = [
    {
      kind: 'emit',
      to: call.caller.sessionId as SessionId,
      event: 'call:rejected',
      payload: { callId: call.id, reason: 'timeout' },
    },
    ...cancelDevices(call, 'timeout'),
  ];
  return endCall(call, now, 'missed', 'timeout', null, effects);
}

/**
 * A device of the callee that signed in or resumed while the call rings rings
 * too, for the time left, and from then on like the others: it may accept or
 * reject, and hears how the ring ended. A device already ringing is rung
 * again only when it resumed (`again`): its new socket never heard the first
 * ring; a new session found ringing was rung by the request that saw it.
 */
function ringDevice(call: CallRecord, event: Extract<CallInput, { type: 'ring-device' }>, now: number): Transition {
  const device = event.by;
  const left = call.ringDeadline - now;
  if (call.state !== 'ringing' || device.userId !== call.callee.userId || left <= 0) return unchanged(call);
  const already = call.ringing.includes(device.sessionId);
  if (already && !event.again) return unchanged(call);
  const incoming: Effect = {
    kind: 'emit',
    to: device.sessionId,
    event: 'call:incoming',
    payload: {
      callId: call.id,
      from: { id: call.caller.userId, name: call.caller.name },
      media: call.media,
      timeoutMs: left,
      iceServers: event.iceServers ?? [],
    },
  };
  if (already) return done(call, [incoming], [], false);
  return done({ ...call, ringing: [...call.ringing, device.sessionId] }, [incoming]);
}

/**
 * The host app could not push a call that rings no device: it ends at once as
 * `unavailable`, as a call to an offline user does without `RING_OFFLINE`. A
 * device that signed in meanwhile keeps it ringing.
 */
function pushFailed(call: CallRecord, now: number): Transition {
  if (call.state !== 'ringing' || call.ringing.length > 0) return unchanged(call);
  const effects: Effect[] = [{ kind: 'emit', to: call.caller.sessionId as SessionId, event: 'call:rejected', payload: { callId: call.id, reason: 'unavailable' } }];
  return endCall(call, now, 'unavailable', 'unavailable', null, effects);
}

function sessionLost(call: CallRecord, sessionId: SessionId, deliberate: boolean, now: number): Transition {
  const role = roleOf(call, sessionId);
  if (!role || call.state === 'ended') return unchanged(call);
  if (call.state === 'ringing') {
    if (role === 'caller') {
      return endCall(call, now, 'cancelled', 'caller_disconnected', null, cancelDevices(call, 'caller_disconnected'));
    }
    const ringing = call.ringing.filter((s) => s !== sessionId);
    if (ringing.length > 0) return done({ ...call, ringing }, []);
    const effects: Effect[] = [
      {
        kind: 'emit',
        to: call.caller.sessionId as SessionId,
        event: 'call:rejected',
        payload: { callId: call.id, reason: 'unavailable' },
      },
    ];
    return endCall(call, now, 'unavailable', 'unavailable', null, effects);
  }
  if (deliberate) return hangup(call, role, now, 'hangup');
  const self = call[role];
  if (self.reconnecting) return unchanged(call);
  const peer = peerOf(call, role);
  const next: CallRecord = { ...call, [role]: { ...self, reconnecting: true } };
  return done(next, [
    { kind: 'emit', to: peer.sessionId as SessionId, event: 'call:reconnecting', payload: { callId: call.id, userId: self.userId } },
  ]);
}

function sessionResumed(call: CallRecord, sessionId: SessionId, replaced: boolean): Transition {
  const role = call.state === 'active' ? roleOf(call, sessionId) : undefined;
  if (!role) return unchanged(call);
  const self = call[role];
  const peer = peerOf(call, role);
  const next: CallRecord = { ...call, [role]: { ...self, reconnecting: false } };
  const effects: Effect[] = [{ kind: 'bind', callId: call.id, sessions: [call.caller.sessionId as SessionId, call.callee.sessionId as SessionId] }];
  if (self.reconnecting || replaced) {
    effects.push({
      kind: 'emit',
      to: peer.sessionId as SessionId,
      event: 'call:reconnected',
      payload: { callId: call.id, userId: self.userId },
    });
  }
  return done(next, effects, [], self.reconnecting);
}

function sessionExpired(call: CallRecord, sessionId: SessionId, now: number): Transition {
  const role = roleOf(call, sessionId);
  if (!role || call.state === 'ended') return unchanged(call);
  if (call.state === 'ringing') return sessionLost(call, sessionId, false, now);
  return hangup(call, role, now, 'connection_lost');
}

/**
 * The node that holds both parties stops, and nothing of it survives (memory
 * mode): a ringing call is cancelled as if its caller had gone (the caller
 * hears `unavailable`), an active one ends as `connection_lost` for both.
 */
function drained(call: CallRecord, now: number): Transition {
  if (call.state === 'ringing') {
    const effects: Effect[] = [
      ...cancelDevices(call, 'caller_disconnected'),
      { kind: 'emit', to: call.caller.sessionId as SessionId, event: 'call:rejected', payload: { callId: call.id, reason: 'unavailable' } },
    ];
    return endCall(call, now, 'cancelled', 'caller_disconnected', null, effects);
  }
  if (call.state !== 'active') return unchanged(call);
  const payload = { callId: call.id, reason: 'connection_lost' as const, durationMs: durationOf(call, now) };
  const effects: Effect[] = [call.callee, call.caller].map((party) => ({ kind: 'emit', to: party.sessionId as SessionId, event: 'call:ended', payload }));
  return endCall(call, now, 'completed', 'connection_lost', null, effects);
}

/** Applies one event to the call it names. The single entry point of the machine. */
export function applyCallEvent(event: CallInput, ctx: CallContext): Transition {
  if (event.type === 'request') return request(event, ctx);
  const found = requireCall(ctx);
  if (isTransition(found)) return found;
  const call = found;
  // The same sub in two tenants is two unrelated users: to anyone of another tenant, the call does not exist.
  if ('by' in event && event.by.tenant !== call.tenant) return fail('call_not_found', 'no such call');
  switch (event.type) {
    case 'accept':
      return accept(call, event.by, ctx.now);
    case 'reject':
      return reject(call, event.by, ctx.now);
    case 'cancel':
      return cancel(call, event.by, ctx.now);
    case 'end':
      return end(call, event.by, ctx.now, event.reason);
    case 'control':
      return control(call, event.by, event.control);
    case 'ring-timeout':
      return ringTimeout(call, ctx.now);
    case 'ring-device':
      return ringDevice(call, event, ctx.now);
    case 'push-failed':
      return pushFailed(call, ctx.now);
    case 'session-lost':
      return sessionLost(call, event.sessionId, event.deliberate, ctx.now);
    case 'session-resumed':
      return sessionResumed(call, event.sessionId, event.replaced === true);
    case 'session-expired':
      return sessionExpired(call, event.sessionId, ctx.now);
    case 'drain':
      return drained(call, ctx.now);
  }
}


export type { CallId };
