/**
 * Who is who in a call: the role a session plays, the other party, and
 * whether a session may relay to the other. Pure, like the machine.
 */
import type { ErrorCode, SessionId } from '@switchboard/protocol';
import type { Actor, CallRecord, Party, Role } from './types.js';

/** The role `sessionId` plays in `call`, if any: the caller's session, the bound callee, or a ringing device. */
export function roleOf(call: CallRecord, sessionId: SessionId): Role | undefined {
  if (call.caller.sessionId === sessionId) return 'caller';
  if (call.callee.sessionId === sessionId) return 'callee';
  if (call.state === 'ringing' && call.ringing.includes(sessionId)) return 'callee';
  return undefined;
}

/**
 * Whether `actor` may relay SDP and ICE in `call`: only a bound session of an
 * active call, to the other bound session. The refusal says why, as the
 * protocol's codes do: a call of another tenant does not exist for the actor
 * (the same sub in two tenants is two users), a non-party or an unbound
 * device of a party is forbidden, and a party before the answer or after the
 * end is too early or too late.
 */
export function canRelay(call: CallRecord, actor: Pick<Actor, 'tenant' | 'userId' | 'sessionId'>): { ok: true; peer: SessionId } | { ok: false; code: ErrorCode; message: string } {
  if (call.tenant !== actor.tenant) return { ok: false, code: 'call_not_found', message: 'no such call' };
  const isParty = actor.userId === call.caller.userId || actor.userId === call.callee.userId;
  const role = call.state === 'active' ? roleOf(call, actor.sessionId) : undefined;
  if (!isParty || (call.state === 'active' && !role)) return { ok: false, code: 'forbidden', message: 'this session is not bound to the call' };
  if (call.state !== 'active' || !role) return { ok: false, code: 'invalid_state', message: `the call is ${call.state}` };
  return { ok: true, peer: peerOf(call, role).sessionId as SessionId };
}

/** The other party of `role`. */
export function peerOf(call: CallRecord, role: Role): Party {
  return call[role === 'caller' ? 'callee' : 'caller'];
}

