/**
 * Property tests of the pure call machine over random event sequences, with a
 * tiny in-test store that commits transitions the way the real stores do.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import type { CallId, ControlEvent, SessionId, UserId } from '@switchboard/protocol';
import { applyCallEvent } from './machine.js';
import { roleOf } from './parties.js';
import type { CallInput, CallRecord, Effect } from './types.js';

const USERS = ['ann', 'ben', 'cat'] as UserId[];
const DEVICES = 2;
const RING_MS = 1000;
const sessionOf = (u: number, d: number) => `${USERS[u]}#${d}` as SessionId;
const callIdOf = (n: number) => `00000000-0000-4000-8000-${String(n).padStart(12, '0')}` as CallId;

type Step =
  | { kind: 'request'; from: number; device: number; to: number; id: number }
  | { kind: 'accept' | 'reject' | 'cancel' | 'end'; user: number; device: number; id: number }
  | { kind: 'control'; user: number; device: number; id: number; control: ControlEvent }
  | { kind: 'lost'; user: number; device: number; deliberate: boolean }
  | { kind: 'resumed' | 'expired'; user: number; device: number }
  | { kind: 'tick'; ms: number };

const user = fc.integer({ min: 0, max: USERS.length - 1 });
const device = fc.integer({ min: 0, max: DEVICES - 1 });
const id = fc.integer({ min: 0, max: 5 });
const step: fc.Arbitrary<Step> = fc.oneof(
  fc.record({ kind: fc.constant('request' as const), from: user, device, to: user, id }),
  fc.record({ kind: fc.constantFrom('accept' as const, 'reject' as const, 'cancel' as const, 'end' as const), user, device, id }),
  fc.record({
    kind: fc.constant('control' as const),
    user,
    device,
    id,
    control: fc.constantFrom<ControlEvent>('call:mute', 'call:hold', 'call:resume'),
  }),
  fc.record({ kind: fc.constant('lost' as const), user, device, deliberate: fc.boolean() }),
  fc.record({ kind: fc.constantFrom('resumed' as const, 'expired' as const), user, device }),
  fc.record({ kind: fc.constant('tick' as const), ms: fc.integer({ min: 0, max: 700 }) }),
);

class World {
  now = 0;
  calls = new Map<CallId, CallRecord>();
  claims = new Map<UserId, CallId>();
  /** Sessions with a live transport. */
  live = new Set<SessionId>(USERS.flatMap((_, u) => Array.from({ length: DEVICES }, (_, d) => sessionOf(u, d))));
  timers = new Map<CallId, number>();

  liveCall(userId: UserId): CallRecord | undefined {
    const id = this.claims.get(userId);
    const call = id ? this.calls.get(id) : undefined;
    return call && call.state !== 'ended' ? call : undefined;
  }

  apply(event: CallInput): Effect[] {
    const call = this.calls.get(event.callId);
    const ctx =
      event.type === 'request'
        ? {
            now: this.now,
            ringTimeoutMs: RING_MS,
            call,
            callerCall: this.liveCall(event.caller.userId),
            calleeCall: this.liveCall(event.callee.userId),
          }
        : { now: this.now, ringTimeoutMs: RING_MS, call };
    const t = applyCallEvent(event, ctx);
    if (!t.ok) return [];
    if (t.changed && t.call) {
      this.calls.set(t.call.id, t.call);
      for (const c of t.claims) {
        if (c.callId !== null) this.claims.set(c.userId, c.callId);
        else if (this.claims.get(c.userId) === t.call.id) this.claims.delete(c.userId);
      }
    }
    for (const e of t.effects) {
      if (e.kind === 'schedule-ring-timeout') this.timers.set(e.callId, e.dueAt);
      if (e.kind === 'cancel-ring-timeout') this.timers.delete(e.callId);
    }
    checkAddressing(call, t.call, t.effects);
    return t.effects;
  }

  fireDueTimers(): void {
    for (const [callId, dueAt] of [...this.timers]) {
      if (dueAt <= this.now) {
        this.timers.delete(callId);
        this.apply({ type: 'ring-timeout', callId, tenant: '' });
      }
    }
  }

  run(s: Step): void {
    const actor = (u: number, d: number) => ({ tenant: '', userId: USERS[u]!, name: USERS[u]!, sessionId: sessionOf(u, d) });
    switch (s.kind) {
      case 'request': {
        if (!this.live.has(sessionOf(s.from, s.device))) return;
        const calleeSessions = Array.from({ length: DEVICES }, (_, d) => sessionOf(s.to, d)).filter((x) => this.live.has(x));
        this.apply({
          type: 'request',
          callId: callIdOf(s.id + this.calls.size * 10),
          tenant: '',
          caller: actor(s.from, s.device),
          callee: { userId: USERS[s.to]!, name: USERS[s.to]! },
          calleeSessions,
          media: { audio: true, video: false },
        });
        return;
      }
      case 'accept':
      case 'reject':
      case 'cancel':
      case 'end':
        this.apply({ type: s.kind, callId: this.pick(s.id), by: actor(s.user, s.device) });
        return;
      case 'control':
        this.apply({ type: 'control', control: s.control, callId: this.pick(s.id), by: actor(s.user, s.device) });
        return;
      case 'lost': {
        const sessionId = sessionOf(s.user, s.device);
        this.live.delete(sessionId);
        const call = this.liveCall(USERS[s.user]!);
        if (call) this.apply({ type: 'session-lost', callId: call.id, tenant: '', sessionId, deliberate: s.deliberate });
        return;
      }
      case 'resumed':
      case 'expired': {
        const sessionId = sessionOf(s.user, s.device);
        if (s.kind === 'resumed') this.live.add(sessionId);
        const call = this.liveCall(USERS[s.user]!);
        if (call) this.apply({ type: s.kind === 'resumed' ? 'session-resumed' : 'session-expired', callId: call.id, tenant: '', sessionId });
        return;
      }
      case 'tick':
        this.now += s.ms;
        this.fireDueTimers();
        return;
    }
  }

  /** Events name existing calls most of the time, unknown ids sometimes. */
  private pick(n: number): CallId {
    const ids = [...this.calls.keys()];
    return ids.length > 0 && n < 5 ? ids[(ids.length - 1 - n + ids.length * 5) % ids.length]! : callIdOf(999_000 + n);
  }

  checkInvariants(): void {
    const liveCalls = [...this.calls.values()].filter((c) => c.state !== 'ended');
    const perUser = new Map<UserId, number>();
    for (const call of liveCalls) {
      for (const u of [call.caller.userId, call.callee.userId]) {
        perUser.set(u, (perUser.get(u) ?? 0) + 1);
        assert.equal(this.claims.get(u), call.id, `${u} claims the live call it is in`);
      }
      assert.notEqual(call.caller.userId, call.callee.userId, 'nobody calls themselves');
      if (call.state === 'ringing') assert.ok(this.timers.has(call.id), 'a ringing call has a ring timeout');
      if (call.state === 'active') assert.ok(call.callee.sessionId !== null && call.answeredAt !== null);
    }
    for (const [u, n] of perUser) assert.ok(n <= 1, `${u} is in ${n} calls at once`);
    for (const [u, id] of this.claims) {
      assert.ok(liveCalls.some((c) => c.id === id), `${u}'s claim names a live call`);
    }
  }
}

/** Every emit goes to a session that belongs to the call, before or after the event. */
function checkAddressing(before: CallRecord | undefined, after: CallRecord | undefined, effects: Effect[]): void {
  for (const e of effects) {
    if (e.kind !== 'emit') continue;
    const inCall = [before, after].some((c) => c && roleOf({ ...c, state: c.state === 'ended' ? 'ringing' : c.state }, e.to));
    const ringingBefore = before?.ringing.includes(e.to) ?? false;
    assert.ok(inCall || ringingBefore, `${e.event} addressed to ${e.to} outside its call`);
  }
}

test('over random event sequences: one call per user, claims consistent, no effect outside its call', () => {
  fc.assert(
    fc.property(fc.array(step, { minLength: 1, maxLength: 60 }), (steps) => {
      const world = new World();
      for (const s of steps) {
        world.run(s);
        world.checkInvariants();
      }
    }),
    { numRuns: 1500, seed: 20261125 },
  );
});

test('every ringing call ends by its timeout', () => {
  fc.assert(
    fc.property(fc.array(step, { minLength: 1, maxLength: 60 }), (steps) => {
      const world = new World();
      for (const s of steps) world.run(s);
      world.now += RING_MS;
      world.fireDueTimers();
      const ringing = [...world.calls.values()].filter((c) => c.state === 'ringing');
      assert.deepEqual(ringing.map((c) => c.id), []);
      const timedOut = [...world.calls.values()].filter((c) => c.endReason === 'timeout');
      for (const c of timedOut) assert.equal(c.outcome, 'missed');
    }),
    { numRuns: 1000, seed: 7 },
  );
});

test('accept racing cancel, reject, timeout or a second device: exactly one outcome wins', () => {
  const caller = { tenant: '', userId: 'ann' as UserId, name: 'Ann', sessionId: 'ann#0' as SessionId };
  const dev = (d: number) => ({ tenant: '', userId: 'ben' as UserId, name: 'Ben', sessionId: sessionOf(1, d) });
  const contenders: CallInput[] = [
    { type: 'accept', callId: callIdOf(1), by: dev(0) },
    { type: 'accept', callId: callIdOf(1), by: dev(1) },
    { type: 'cancel', callId: callIdOf(1), by: caller },
    { type: 'reject', callId: callIdOf(1), by: dev(1) },
    { type: 'ring-timeout', callId: callIdOf(1), tenant: '' },
  ];
  fc.assert(
    fc.property(fc.shuffledSubarray(contenders, { minLength: 2 }), (order) => {
      const world = new World();
      world.apply({
        type: 'request',
        callId: callIdOf(1),
        tenant: '',
        caller,
        callee: { userId: 'ben' as UserId, name: 'Ben' },
        calleeSessions: [dev(0).sessionId, dev(1).sessionId],
        media: { audio: true, video: false },
      });
      world.now = RING_MS; // the timeout is due too
      const read = world.calls.get(callIdOf(1))!;
      // All contenders read the same ringing state; the store lets the first commit win.
      const results = order.map((e) => applyCallEvent(e, { now: world.now, ringTimeoutMs: RING_MS, call: read }));
      assert.ok(results.every((r) => r.ok && r.changed), 'each would win alone');
      // Applied one after another, as the store serialises them, only the first changes the call.
      const serial = order.map((e) => world.apply(e).length > 0 && world.calls.get(callIdOf(1))!.state);
      assert.notEqual(serial[0], 'ringing');
      const final = world.calls.get(callIdOf(1))!;
      for (const e of order.slice(1)) {
        const again = applyCallEvent(e, { now: world.now, ringTimeoutMs: RING_MS, call: final });
        assert.ok(!again.ok || !again.changed, `${e.type} after the winner changes nothing`);
      }
    }),
    { numRuns: 300, seed: 42 },
  );
});

test('the same sub in another tenant can do nothing to a call: call_not_found', () => {
  const world = new World();
  const a = { tenant: 'acme', userId: 'ann' as UserId, name: 'Ann', sessionId: 'ann#0' as SessionId };
  const b = { tenant: 'acme', userId: 'ben' as UserId, name: 'Ben', sessionId: 'ben#0' as SessionId };
  world.apply({ type: 'request', callId: callIdOf(1), tenant: 'acme', caller: a, callee: b, calleeSessions: [b.sessionId], media: { audio: true, video: false } });
  const impostor = { ...b, tenant: 'globex', sessionId: 'ben#9' as SessionId };
  const call = world.calls.get(callIdOf(1));
  for (const type of ['accept', 'reject', 'end'] as const) {
    const t = applyCallEvent({ type, callId: callIdOf(1), by: impostor }, { now: 0, ringTimeoutMs: RING_MS, call });
    assert.deepEqual(t.ok ? 'ok' : t.code, 'call_not_found', type);
  }
  const repeat = applyCallEvent(
    { type: 'request', callId: callIdOf(1), tenant: 'globex', caller: { ...a, tenant: 'globex' }, callee: b, calleeSessions: [], media: { audio: true, video: false } },
    { now: 0, ringTimeoutMs: RING_MS, call },
  );
  assert.equal(repeat.ok ? 'ok' : repeat.code, 'invalid_state', 'another tenant cannot repeat the call');
});

test('glare: two crossing requests leave exactly one ringing call, the other answered busy', () => {
  const world = new World();
  const a = { tenant: '', userId: 'ann' as UserId, name: 'Ann', sessionId: 'ann#0' as SessionId };
  const b = { tenant: '', userId: 'ben' as UserId, name: 'Ben', sessionId: 'ben#0' as SessionId };
  const e1 = world.apply({ type: 'request', callId: callIdOf(1), tenant: '', caller: a, callee: b, calleeSessions: [b.sessionId], media: { audio: true, video: false } });
  const e2 = world.apply({ type: 'request', callId: callIdOf(2), tenant: '', caller: b, callee: a, calleeSessions: [a.sessionId], media: { audio: true, video: false } });
  assert.ok(e1.some((e) => e.kind === 'emit' && e.event === 'call:incoming'));
  assert.ok(e2.some((e) => e.kind === 'emit' && e.event === 'call:busy' && e.to === b.sessionId));
  assert.equal(world.calls.get(callIdOf(1))!.state, 'ringing');
  assert.equal(world.calls.get(callIdOf(2))!.outcome, 'busy');
});
