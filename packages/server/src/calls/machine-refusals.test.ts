/**
 * One example per way the call machine refuses an input, and per verdict of
 * `canRelay`: the code and the fact that nothing changes. The property tests
 * (machine.test.ts) cover sequences; these name each branch.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { CallId, ErrorCode, SessionId, UserId } from '@switchboard/protocol';
import { applyCallEvent } from './machine.js';
import { canRelay } from './parties.js';
import type { Actor, CallContext, CallInput, CallRecord } from './types.js';

const CALL = '00000000-0000-4000-8000-000000000001' as CallId;
const actor = (userId: string, device = 1, tenant = 't'): Actor => ({ tenant, userId: userId as UserId, name: userId, sessionId: `${userId}#${device}` as SessionId });
const ann = actor('ann');
const ben = actor('ben');
const cat = actor('cat');

function request(overrides: Partial<Extract<CallInput, { type: 'request' }>> = {}): Extract<CallInput, { type: 'request' }> {
  return {
    type: 'request',
    callId: CALL,
    tenant: 't',
    caller: ann,
    callee: { userId: ben.userId, name: 'ben' },
    calleeSessions: [ben.sessionId, actor('ben', 2).sessionId],
    media: { audio: true, video: false },
    ...overrides,
  };
}

/** A call as the machine makes it: ringing both of ben's devices, or answered on his first. */
function callIn(state: 'ringing' | 'active' | 'ended'): CallRecord {
  const t = applyCallEvent(request(), { now: 0, ringTimeoutMs: 1000, call: undefined });
  assert.ok(t.ok && t.call);
  if (state === 'ringing') return t.call;
  const answered = applyCallEvent({ type: 'accept', callId: CALL, by: ben }, { now: 10, ringTimeoutMs: 1000, call: t.call });
  assert.ok(answered.ok && answered.call);
  if (state === 'active') return answered.call;
  const ended = applyCallEvent({ type: 'end', callId: CALL, by: ann }, { now: 20, ringTimeoutMs: 1000, call: answered.call });
  assert.ok(ended.ok && ended.call);
  return ended.call;
}

function refused(input: CallInput, ctx: Partial<CallContext>, code: ErrorCode): void {
  const t = applyCallEvent(input, { now: 50, ringTimeoutMs: 1000, call: undefined, ...ctx });
  assert.equal(t.ok, false, `${input.type} is refused`);
  if (!t.ok) assert.equal(t.code, code, t.message);
}

describe('every refusal of the call machine', () => {
  test('request: a callId of another call → invalid_state', () => {
    refused(request({ caller: cat }), { call: callIn('ringing') }, 'invalid_state');
  });
  test('request: to oneself → self_call', () => {
    refused(request({ callee: { userId: ann.userId, name: 'ann' } }), {}, 'self_call');
  });
  test('request: the caller is in another call → already_in_call, whoever the callee', () => {
    const other = { ...callIn('active'), id: '00000000-0000-4000-8000-000000000002' as CallId };
    refused(request({ calleeSessions: [] }), { callerCall: other }, 'already_in_call');
  });
  test('request: the callee has no live session → unavailable', () => {
    refused(request({ calleeSessions: [] }), {}, 'unavailable');
  });
  test('any event of a call the store does not hold → call_not_found', () => {
    refused({ type: 'accept', callId: CALL, by: ben }, {}, 'call_not_found');
  });
  test('any event by an actor of another tenant → call_not_found', () => {
    refused({ type: 'end', callId: CALL, by: actor('ann', 1, 'elsewhere') }, { call: callIn('active') }, 'call_not_found');
  });
  test('accept: not the callee → forbidden; not ringing → invalid_state; a device that was not rung → forbidden', () => {
    refused({ type: 'accept', callId: CALL, by: cat }, { call: callIn('ringing') }, 'forbidden');
    refused({ type: 'accept', callId: CALL, by: ben }, { call: callIn('active') }, 'invalid_state');
    refused({ type: 'accept', callId: CALL, by: actor('ben', 3) }, { call: callIn('ringing') }, 'forbidden');
  });
  test('reject: not the callee → forbidden; not ringing → invalid_state', () => {
    refused({ type: 'reject', callId: CALL, by: cat }, { call: callIn('ringing') }, 'forbidden');
    refused({ type: 'reject', callId: CALL, by: ben }, { call: callIn('ended') }, 'invalid_state');
  });
  test('cancel: not the calling device → forbidden; not ringing → invalid_state', () => {
    refused({ type: 'cancel', callId: CALL, by: actor('ann', 2) }, { call: callIn('ringing') }, 'forbidden');
    refused({ type: 'cancel', callId: CALL, by: ben }, { call: callIn('ringing') }, 'forbidden');
    refused({ type: 'cancel', callId: CALL, by: ann }, { call: callIn('active') }, 'invalid_state');
  });
  test('end: a stranger while ringing → forbidden; an ended call → invalid_state; an unbound device → forbidden', () => {
    refused({ type: 'end', callId: CALL, by: cat }, { call: callIn('ringing') }, 'forbidden');
    refused({ type: 'end', callId: CALL, by: ann }, { call: callIn('ended') }, 'invalid_state');
    refused({ type: 'end', callId: CALL, by: actor('ben', 2) }, { call: callIn('active') }, 'forbidden');
  });
  test('control: a stranger → forbidden; not active → invalid_state; an unbound device → forbidden', () => {
    const mute = (by: Actor): CallInput => ({ type: 'control', callId: CALL, by, control: 'call:mute' });
    refused(mute(cat), { call: callIn('active') }, 'forbidden');
    refused(mute(ann), { call: callIn('ringing') }, 'invalid_state');
    refused(mute(actor('ben', 2)), { call: callIn('active') }, 'forbidden');
  });
});

describe('canRelay', () => {
  const verdict = (call: CallRecord, by: Actor) => {
    const v = canRelay(call, by);
    return v.ok ? `ok → ${v.peer}` : v.code;
  };
  test('the two bound sessions of an active call relay to each other', () => {
    assert.equal(verdict(callIn('active'), ann), `ok → ${ben.sessionId}`);
    assert.equal(verdict(callIn('active'), ben), `ok → ${ann.sessionId}`);
  });
  test('another tenant → call_not_found; a stranger or an unbound device → forbidden; before the answer or after the end → invalid_state', () => {
    assert.equal(verdict(callIn('active'), actor('ann', 1, 'elsewhere')), 'call_not_found');
    assert.equal(verdict(callIn('active'), cat), 'forbidden');
    assert.equal(verdict(callIn('active'), actor('ben', 2)), 'forbidden');
    assert.equal(verdict(callIn('ringing'), ann), 'invalid_state');
    assert.equal(verdict(callIn('ended'), ben), 'invalid_state');
  });
});
