/**
 * The machine's v1.1 inputs, one example per branch: a device joining a
 * ringing call (`ring-device`), a call that rings no device
 * (`RING_OFFLINE=webhook`) and its refused push (`push-failed`), and the
 * call's media turning to video once a party sends it.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { CallId, SessionId, UserId } from '@switchboard/protocol';
import { applyCallEvent } from './machine.js';
import type { Actor, CallInput, CallRecord, Effect } from './types.js';

const CALL = '00000000-0000-4000-8000-0000000000aa' as CallId;
const actor = (userId: string, device = 1): Actor => ({ tenant: 't', userId: userId as UserId, name: userId, sessionId: `${userId}#${device}` as SessionId });
const ann = actor('ann');
const ben = actor('ben');
const RING_MS = 1000;

function apply(event: CallInput, call: CallRecord | undefined, now: number) {
  const t = applyCallEvent(event, { now, ringTimeoutMs: RING_MS, call });
  assert.ok(t.ok, JSON.stringify(t));
  return t;
}

function ringing(calleeSessions: SessionId[] = [ben.sessionId], ringOffline = false): CallRecord {
  const t = apply(
    { type: 'request', callId: CALL, tenant: 't', caller: ann, callee: { userId: ben.userId, name: 'ben' }, calleeSessions, media: { audio: true, video: false }, ...(ringOffline ? { ringOffline } : {}) },
    undefined,
    0,
  );
  assert.ok(t.call);
  return t.call;
}

const incomingTo = (effects: Effect[]) => effects.flatMap((e) => (e.kind === 'emit' && e.event === 'call:incoming' ? [{ to: e.to, payload: e.payload as { timeoutMs: number } }] : []));

test('ring-device: a device of the callee joins the ring for the time left; once; again only when it resumed', () => {
  const call = ringing();
  const laptop = actor('ben', 2);
  const joined = apply({ type: 'ring-device', callId: CALL, by: laptop, again: false }, call, 400);
  assert.deepEqual(joined.call?.ringing, [ben.sessionId, laptop.sessionId]);
  assert.deepEqual(incomingTo(joined.effects).map((e) => [e.to, e.payload.timeoutMs]), [[laptop.sessionId, 600]]);
  const twice = apply({ type: 'ring-device', callId: CALL, by: laptop, again: false }, joined.call, 500);
  assert.deepEqual([twice.changed, incomingTo(twice.effects)], [false, []], 'a new session already ringing was rung by the request');
  const resumed = apply({ type: 'ring-device', callId: CALL, by: laptop, again: true }, joined.call, 500);
  assert.deepEqual([resumed.changed, incomingTo(resumed.effects).map((e) => e.to)], [false, [laptop.sessionId]], 'a resumed device hears it again');
  const accepted = apply({ type: 'accept', callId: CALL, by: laptop }, joined.call, 700);
  assert.equal(accepted.call?.state, 'active', 'and may answer');
});

test('ring-device: nothing for the caller, another user, a call past its deadline or not ringing', () => {
  const call = ringing();
  for (const [by, now, on] of [
    [actor('ann', 2), 100, call],
    [actor('cat'), 100, call],
    [actor('ben', 2), RING_MS, call],
    [actor('ben', 2), 100, apply({ type: 'accept', callId: CALL, by: ben }, call, 50).call],
  ] as const) {
    const t = apply({ type: 'ring-device', callId: CALL, by, again: false }, on, now);
    assert.deepEqual([t.changed, t.effects], [false, []], `${by.sessionId} at ${now}`);
  }
});

test('RING_OFFLINE=webhook: a request with no live session rings no device (without it: unavailable); a refused push ends it unless a device joined', () => {
  const refused = applyCallEvent(
    { type: 'request', callId: CALL, tenant: 't', caller: ann, callee: { userId: ben.userId, name: 'ben' }, calleeSessions: [], media: { audio: true, video: false } },
    { now: 0, ringTimeoutMs: RING_MS, call: undefined },
  );
  assert.deepEqual(refused.ok ? null : refused.code, 'unavailable');
  const offline = ringing([], true);
  assert.deepEqual([offline.state, offline.ringing], ['ringing', []]);
  const failed = apply({ type: 'push-failed', callId: CALL, tenant: 't' }, offline, 100);
  assert.deepEqual([failed.call?.state, failed.call?.outcome], ['ended', 'unavailable']);
  assert.ok(failed.effects.some((e) => e.kind === 'emit' && e.event === 'call:rejected' && (e.payload as { reason: string }).reason === 'unavailable'));
  const joined = apply({ type: 'ring-device', callId: CALL, by: ben, again: false }, offline, 50);
  const kept = apply({ type: 'push-failed', callId: CALL, tenant: 't' }, joined.call, 100);
  assert.deepEqual([kept.changed, kept.call?.state], [false, 'ringing'], 'a device signed in meanwhile keeps it ringing');
});

test('video: the call carries video once a party turns its camera on, and still does after it turns it off', () => {
  const active = apply({ type: 'accept', callId: CALL, by: ben }, ringing(), 10).call!;
  assert.equal(active.media.video, false);
  const on = apply({ type: 'control', callId: CALL, by: ann, control: 'call:video-on' }, active, 20);
  assert.deepEqual([on.changed, on.call?.media.video], [true, true]);
  const off = apply({ type: 'control', callId: CALL, by: ann, control: 'call:video-off' }, on.call, 30);
  assert.deepEqual([off.call?.media.video, off.call?.caller.flags.videoOff], [true, true]);
});
