/**
 * The `CallStore` contract: one suite that every backend must pass, run by
 * `test/store.test.ts` against the memory store and a real Redis. `makeStore`
 * builds a fresh, empty store with default options for every test (the
 * history bound assumes the default `historyLimit` of 200).
 */
import assert from 'node:assert/strict';
import { afterEach, beforeEach, describe, test } from 'node:test';
import { pollUntil as waitFor } from '../../../test/support/wait.js';
import type { CallId, QualitySummary, SessionId, UserId } from '@switchboard/protocol';
import type { CallRecord, UserKey } from '../src/calls/types.js';
import { NO_FLAGS, ringTimerId, userKey } from '../src/calls/types.js';
import { sessionIdPrefix } from '../src/store/redis-keys.js';
import type { CallCommit, CallStore, ClaimedNode, ClaimedTimer, ClaimWrite, HistoryEntry, SessionRecord, TimerKind, TimerWrite } from '../src/store/types.js';

export type StoreFactory = () => Promise<{ store: CallStore; cleanup(): Promise<void> }>;

const TENANT = 'acme';
const POLL_MS = 10;
const WAIT_MS = 5000;
const RACERS = 50;

const cid = (s: string) => s as CallId;
/** A session id as the server makes them: in its tenant's key group (`sessionIdPrefix`), which a Redis store needs. */
const sid = (s: string, tenant = TENANT) => `${sessionIdPrefix(tenant)}${s}` as SessionId;
/** The name a test gave a session id (`sid`'s argument). */
const nameOf = (id: string) => id.slice(id.indexOf('.') + 1);
const uid = (s: string) => s as UserId;
const user = (id: string, tenant = TENANT): UserKey => userKey(tenant, id);

function callRecord(id: string, caller = 'alice', callee = 'bob', patch: Partial<CallRecord> = {}): CallRecord {
  return {
    id: cid(id),
    tenant: TENANT,
    state: 'ringing',
    caller: { userId: uid(caller), name: caller.toUpperCase(), sessionId: sid(`${caller}-s1`), flags: { ...NO_FLAGS }, reconnecting: false },
    callee: { userId: uid(callee), name: callee.toUpperCase(), sessionId: null, flags: { ...NO_FLAGS }, reconnecting: false },
    ringing: [],
    media: { audio: true, video: false },
    createdAt: 1_700_000_000_000,
    answeredAt: null,
    endedAt: null,
    ringDeadline: 1_700_000_030_000,
    outcome: null,
    endReason: null,
    endedBy: null,
    ...patch,
  };
}

const take = (key: UserKey, callId: string, expect: string | null = null): ClaimWrite => ({
  op: 'take',
  key,
  expect: expect === null ? null : cid(expect),
  callId: cid(callId),
});
const release = (key: UserKey, callId: string): ClaimWrite => ({ op: 'release', key, callId: cid(callId) });

function sessionRecord(id: string, userId: string, patch: Partial<SessionRecord> = {}): SessionRecord {
  return {
    id: sid(id, patch.tenant ?? TENANT),
    tenant: TENANT,
    userId: uid(userId),
    name: userId.toUpperCase(),
    contacts: null,
    nodeId: 'node-a',
    connected: true,
    graceUntil: null,
    resumes: 0,
    resumeWindowStart: 1_700_000_000_000,
    createdAt: 1_700_000_000_000,
    ...patch,
  };
}

function historyEntry(callId: string, patch: Partial<HistoryEntry> = {}): HistoryEntry {
  return {
    callId: cid(callId),
    direction: 'outgoing',
    peer: { id: uid('bob'), name: 'Bob' },
    outcome: 'completed',
    reason: 'hangup',
    createdAt: 1_700_000_000_000,
    answeredAt: null,
    endedAt: 1_700_000_060_000,
    durationMs: 0,
    ...patch,
  };
}

/** Polls `check` until it holds, failing after `timeoutMs`. */

const count = (results: boolean[]) => results.filter(Boolean).length;
const ids = (sessions: SessionRecord[]) => sessions.map((s) => nameOf(s.id)).sort();
const byId = <T extends { id: string }>(items: T[]) => [...items].sort((a, b) => nameOf(a.id).localeCompare(nameOf(b.id)));

export function describeCallStore(name: string, makeStore: StoreFactory): void {
  describe(`CallStore contract: ${name}`, () => {
    let store: CallStore;
    let cleanup: () => Promise<void>;
    beforeEach(async () => {
      ({ store, cleanup } = await makeStore());
    });
    afterEach(async () => {
      await cleanup();
    });
    /** Commits `call` as a new call (version 0) with no claims and no TTL, unless `overrides` say otherwise. */
    const commit = (call: CallRecord, overrides: Partial<Omit<CallCommit, 'call'>> = {}) =>
      store.commitCall({ call, expectVersion: 0, claims: [], ttlMs: null, ...overrides });

    describe('quality summaries beside a call', () => {
      const summary = (samples: number, mos = 4.4): QualitySummary => ({
        samples,
        mos: { min: mos, mean: mos },
        rttMs: { mean: 40, max: 60 },
        jitterMs: { mean: 2, max: 5 },
        lossPct: { mean: 0.5, max: 2 },
        worstLevel: 'good',
      });

      test('saveQuality keeps one summary per segment, the newest; they survive commits and go with the record', async () => {
        const call = callRecord('q1');
        assert.ok(await commit(call));
        await store.saveQuality(TENANT, cid('q1'), 's-alice a1', summary(1));
        await store.saveQuality(TENANT, cid('q1'), 's-alice a1', summary(6, 3.9));
        await store.saveQuality(TENANT, cid('q1'), 's-bob b1', summary(4));
        assert.equal((await store.getCall(TENANT, cid('q1')))?.version, 1, 'no version change');
        assert.ok(await store.commitCall({ call: { ...call, state: 'active' }, expectVersion: 1, claims: [], ttlMs: null }));
        assert.deepEqual(
          await store.qualityOf(TENANT, cid('q1')),
          new Map([
            ['s-alice a1', summary(6, 3.9)],
            ['s-bob b1', summary(4)],
          ]),
        );
        assert.ok(await store.commitCall({ call: { ...call, state: 'ended' }, expectVersion: 2, claims: [], ttlMs: 50 }));
        assert.equal((await store.qualityOf(TENANT, cid('q1'))).size, 2, 'the tombstone keeps them');
        await waitFor('the tombstone to expire', async () => (await store.getCall(TENANT, cid('q1'))) === undefined, 3000);
        assert.deepEqual(await store.qualityOf(TENANT, cid('q1')), new Map(), 'gone with the record');
      });

      test('saveQuality for a call the store does not hold saves nothing', async () => {
        await store.saveQuality(TENANT, cid('nobody'), 's-x y', summary(3));
        assert.deepEqual(await store.qualityOf(TENANT, cid('nobody')), new Map());
        assert.equal(await store.getCall(TENANT, cid('nobody')), undefined, 'and makes no record');
      });
    });

    describe('calls and versions', () => {
      test('commitCall creates a call only at expectVersion 0, and getCall returns it intact at version 1', async () => {
        const call = callRecord('c1');
        assert.equal(await store.getCall(TENANT, cid('c1')), undefined);
        assert.equal(await commit(call, { expectVersion: 1 }), false, 'no version 1 to build on');
        assert.equal(await store.getCall(TENANT, cid('c1')), undefined);

        assert.equal(await commit(call), true);
        assert.deepEqual(await store.getCall(TENANT, cid('c1')), { value: call, version: 1 });

        const again = callRecord('c1', 'alice', 'bob', { state: 'active' });
        assert.equal(await commit(again), false, 'exists already');
        assert.deepEqual(await store.getCall(TENANT, cid('c1')), { value: call, version: 1 });
      });

      test('each commit bumps the version by one; a stale or future version is refused and changes nothing', async () => {
        await commit(callRecord('c1'));
        const active = callRecord('c1', 'alice', 'bob', { state: 'active', answeredAt: 1_700_000_005_000, ringing: [sid('bob-s1')] });
        assert.equal(await commit(active, { expectVersion: 1 }), true);
        const muted = { ...active, caller: { ...active.caller, flags: { ...NO_FLAGS, muted: true } } };
        assert.equal(await commit(muted, { expectVersion: 2 }), true);
        assert.deepEqual(await store.getCall(TENANT, cid('c1')), { value: muted, version: 3 });

        const stale = { ...active, endReason: 'stale' };
        assert.equal(await commit(stale, { expectVersion: 2 }), false);
        assert.equal(await commit(stale, { expectVersion: 4 }), false);
        assert.deepEqual(await store.getCall(TENANT, cid('c1')), { value: muted, version: 3 });
      });

      test(`${RACERS} concurrent commits on the same version: exactly one wins and its write is the one stored`, async () => {
        await commit(callRecord('c1'));
        const writes = Array.from({ length: RACERS }, (_, i) => callRecord('c1', 'alice', 'bob', { endReason: `writer-${i}` }));
        const results = await Promise.all(writes.map((call) => commit(call, { expectVersion: 1 })));
        assert.equal(count(results), 1);
        const stored = await store.getCall(TENANT, cid('c1'));
        assert.equal(stored?.version, 2);
        assert.deepEqual(stored?.value, writes[results.indexOf(true)]);
      });

      test(`${RACERS} concurrent creates of one callId: exactly one wins`, async () => {
        const writes = Array.from({ length: RACERS }, (_, i) => callRecord('c1', `caller-${i}`, 'bob'));
        const results = await Promise.all(writes.map((call) => commit(call)));
        assert.equal(count(results), 1);
        assert.deepEqual(await store.getCall(TENANT, cid('c1')), { value: writes[results.indexOf(true)], version: 1 });
      });
    });

    describe('claims', () => {
      test('take writes a claim only over what was read, and getClaims answers in the order asked', async () => {
        assert.deepEqual(await store.getClaims([]), []);
        assert.deepEqual(await store.getClaims([user('alice'), user('bob')]), [null, null]);

        const created = await store.commitCall({
          call: callRecord('c1'),
          expectVersion: 0,
          claims: [take(user('alice'), 'c1'), take(user('bob'), 'c1')],
          ttlMs: null,
        });
        assert.equal(created, true);
        assert.deepEqual(await store.getClaims([user('bob'), user('carol'), user('alice')]), [cid('c1'), null, cid('c1')]);

        const busy = await commit(callRecord('c2', 'carol', 'bob'), { claims: [take(user('bob'), 'c2')] });
        assert.equal(busy, false, 'bob is claimed by c1, not free');
        assert.equal(await store.getCall(TENANT, cid('c2')), undefined);

        const over = await store.commitCall({
          call: callRecord('c2', 'carol', 'bob'),
          expectVersion: 0,
          claims: [take(user('bob'), 'c2', 'c1')],
          ttlMs: null,
        });
        assert.equal(over, true, 'a take that read c1 replaces c1');
        assert.deepEqual(await store.getClaims([user('alice'), user('bob')]), [cid('c1'), cid('c2')]);
      });

      test('claims of the same user id in two tenants are distinct', async () => {
        await commit(callRecord('c1'), { claims: [take(user('alice', 'one'), 'c1')] });
        assert.deepEqual(await store.getClaims([user('alice', 'one'), user('alice', 'two'), user('alice')]), [cid('c1'), null, null]);
      });

      test('release drops a claim only while it still names the call', async () => {
        await commit(callRecord('c1'), { claims: [take(user('alice'), 'c1'), take(user('bob'), 'c1')] });
        await commit(callRecord('c2', 'carol', 'dave'), { claims: [take(user('carol'), 'c2')] });

        const foreign = await store.commitCall({
          call: callRecord('c2', 'carol', 'dave', { state: 'ended' }),
          expectVersion: 1,
          claims: [release(user('carol'), 'c2'), release(user('alice'), 'c2'), release(user('dave'), 'c2')],
          ttlMs: null,
        });
        assert.equal(foreign, true, 'releasing a claim held by another call, or by none, is no conflict');
        assert.deepEqual(await store.getClaims([user('alice'), user('bob'), user('carol'), user('dave')]), [cid('c1'), cid('c1'), null, null]);

        await store.commitCall({
          call: callRecord('c1', 'alice', 'bob', { state: 'ended' }),
          expectVersion: 1,
          claims: [release(user('alice'), 'c1'), release(user('bob'), 'c1')],
          ttlMs: null,
        });
        assert.deepEqual(await store.getClaims([user('alice'), user('bob')]), [null, null]);
      });

      test('a failed commit changes nothing at all: neither the call nor any claim', async () => {
        await commit(callRecord('c1'), { claims: [take(user('alice'), 'c1'), take(user('bob'), 'c1')] });
        const before = await store.getCall(TENANT, cid('c1'));

        // One take conflicts (bob holds c1): the other take and the release must not happen either.
        const conflicted = await store.commitCall({
          call: callRecord('c2', 'carol', 'bob'),
          expectVersion: 0,
          claims: [take(user('carol'), 'c2'), release(user('alice'), 'c1'), take(user('bob'), 'c2')],
          ttlMs: 60_000,
        });
        assert.equal(conflicted, false);
        assert.equal(await store.getCall(TENANT, cid('c2')), undefined);
        assert.deepEqual(await store.getClaims([user('carol'), user('alice'), user('bob')]), [null, cid('c1'), cid('c1')]);

        // The claims would be fine but the version is stale: no claim moves, the call stays as it was.
        const stale = await store.commitCall({
          call: callRecord('c1', 'alice', 'bob', { state: 'ended' }),
          expectVersion: 0,
          claims: [release(user('alice'), 'c1'), take(user('carol'), 'c1')],
          ttlMs: 60_000,
        });
        assert.equal(stale, false);
        assert.deepEqual(await store.getCall(TENANT, cid('c1')), before);
        assert.deepEqual(await store.getClaims([user('alice'), user('bob'), user('carol')]), [cid('c1'), cid('c1'), null]);
      });

      test("with the callee's sessions as read, a commit holds only while the store has exactly those: one added or removed since fails it, writing nothing", async () => {
        await store.addSession(sessionRecord('s1', 'bob'));
        await store.addSession(sessionRecord('s2', 'bob', { connected: false, graceUntil: Date.now() + 30_000 }));
        const asRead = (...names: string[]) => ({ key: user('bob'), ids: names.map((n) => sid(n)) });
        const claims = [take(user('alice'), 'c1'), take(user('bob'), 'c1')];
        assert.equal(await commit(callRecord('c1'), { claims, sessionsAsRead: asRead('s1') }), false, 'one in its grace was not read');
        assert.equal(await commit(callRecord('c1'), { claims, sessionsAsRead: asRead('s1', 's2', 's3') }), false, 'one read is gone');
        assert.equal(await store.getCall(TENANT, cid('c1')), undefined, 'nothing written');
        assert.deepEqual(await store.getClaims([user('alice'), user('bob')]), [null, null]);
        await store.addSession(sessionRecord('s3', 'bob'));
        assert.equal(await commit(callRecord('c1'), { claims, sessionsAsRead: asRead('s1', 's2') }), false, 'a device signed in since the read');
        assert.equal(await commit(callRecord('c1'), { claims, sessionsAsRead: asRead('s3', 's1', 's2') }), true, 'exactly those, in any order');
        await store.addSession(sessionRecord('s4', 'carol'));
        assert.equal(await commit(callRecord('c2', 'dave', 'carol'), { claims: [take(user('carol'), 'c2')], sessionsAsRead: { key: user('carol'), ids: [sid('s4')] } }), true);
        assert.equal(await commit(callRecord('c3', 'erin', 'nobody'), { sessionsAsRead: { key: user('nobody'), ids: [] } }), true, 'a user with no session read as none');
      });

      test(`${RACERS} concurrent creates of different calls taking the same callee: exactly one rings`, async () => {
        const results = await Promise.all(
          Array.from({ length: RACERS }, (_, i) =>
            store.commitCall({
              call: callRecord(`c${i}`, `caller-${i}`, 'bob'),
              expectVersion: 0,
              claims: [take(user(`caller-${i}`), `c${i}`), take(user('bob'), `c${i}`)],
              ttlMs: null,
            }),
          ),
        );
        assert.equal(count(results), 1);
        const winner = results.indexOf(true);
        assert.deepEqual(await store.getClaims([user('bob')]), [cid(`c${winner}`)]);
        const callers = await store.getClaims(Array.from({ length: RACERS }, (_, i) => user(`caller-${i}`)));
        assert.deepEqual(callers, results.map((won, i) => (won ? cid(`c${i}`) : null)));
        const calls = await Promise.all(results.map((_, i) => store.getCall(TENANT, cid(`c${i}`))));
        assert.deepEqual(calls.map((c) => c !== undefined), results);
      });
    });

    describe('tombstones', () => {
      test('a commit with ttlMs leaves a tombstone that vanishes after its TTL, and the id may then be made anew', async () => {
        const ttlMs = 600;
        await commit(callRecord('c1'));
        const ended = callRecord('c1', 'alice', 'bob', { state: 'ended', outcome: 'cancelled', endReason: 'cancelled' });
        const committedAt = Date.now();
        assert.equal(await commit(ended, { expectVersion: 1, ttlMs }), true);
        assert.deepEqual(await store.getCall(TENANT, cid('c1')), { value: ended, version: 2 }, 'still there right after the commit');

        await waitFor('the tombstone to vanish', async () => (await store.getCall(TENANT, cid('c1'))) === undefined);
        const lived = Date.now() - committedAt;
        assert.ok(lived >= ttlMs - 25, `vanished after ${lived} ms, before its ${ttlMs} ms TTL`);
        assert.equal(await commit(ended, { expectVersion: 2 }), false, 'its version is gone too');
        assert.equal(await commit(callRecord('c1')), true);
        assert.equal((await store.getCall(TENANT, cid('c1')))?.version, 1);
      });

      test('a later commit without ttlMs keeps the call for good', async () => {
        const ttlMs = 300;
        await commit(callRecord('kept'), { ttlMs });
        await commit(callRecord('kept', 'alice', 'bob', { state: 'active' }), { expectVersion: 1 });
        // A witness committed afterwards with the same TTL: once it is gone, the first TTL has run out too.
        await commit(callRecord('witness'), { ttlMs });
        await waitFor('the witness to vanish', async () => (await store.getCall(TENANT, cid('witness'))) === undefined);
        assert.equal((await store.getCall(TENANT, cid('kept')))?.version, 2);
      });
    });

    describe('a timer change carried by a commit', () => {
      const now = 1_700_000_000_000;
      const LEASE = 60_000;
      /** A timer's id as the server makes them: a ring timer's names its call, a grace timer's is its session's. */
      const timerId = (id: string, kind: TimerKind) => (kind === 'ring' ? ringTimerId(TENANT, cid(id)) : sid(id));
      const lease = (kind: TimerKind, id: string, leaseUntil: number): ClaimedTimer => ({ kind, id: timerId(id, kind), leaseUntil });
      const schedule = (id: string, dueAt: number, kind: TimerKind = 'ring'): TimerWrite => ({ op: 'schedule', kind, id: timerId(id, kind), dueAt });
      const unschedule = (id: string, kind: TimerKind = 'ring'): TimerWrite => ({ op: 'unschedule', kind, id: timerId(id, kind) });

      test('a commit that schedules a timer makes it claimable by claimTimer and claimDue once due', async () => {
        const created = await store.commitCall({
          call: callRecord('c1'),
          expectVersion: 0,
          claims: [take(user('alice'), 'c1'), take(user('bob'), 'c1')],
          ttlMs: null,
          timer: schedule('c1', now),
        });
        assert.equal(created, true);
        await commit(callRecord('c2', 'carol', 'dave'), { timer: schedule('c2', now + 1000) });
        assert.deepEqual(await store.getClaims([user('alice'), user('bob')]), [cid('c1'), cid('c1')], 'the claims are written alongside');

        assert.equal(await store.claimTimer('ring', timerId('c1', 'ring'), now - 1, LEASE), null, 'not due yet');
        assert.equal(await store.claimTimer('grace', timerId('c1', 'grace'), now, LEASE), null, 'of its own kind only');
        assert.deepEqual(await store.claimTimer('ring', timerId('c1', 'ring'), now, LEASE), lease('ring', 'c1', now + LEASE));
        assert.deepEqual(await store.claimDue(now + 999, 10, LEASE), []);
        assert.deepEqual(await store.claimDue(now + 1000, 10, LEASE), [lease('ring', 'c2', now + 1000 + LEASE)]);
      });

      test('a commit that schedules an existing timer moves its due time, later or earlier', async () => {
        await store.schedule('ring', timerId('c1', 'ring'), now);
        await store.schedule('grace', timerId('s1', 'grace'), now + 1000);
        await commit(callRecord('c1'), { timer: schedule('c1', now + 2000) });
        await commit(callRecord('c2'), { timer: schedule('s1', now - 1000, 'grace') });
        assert.equal(await store.claimTimer('ring', timerId('c1', 'ring'), now + 1999, LEASE), null);
        assert.deepEqual(await store.claimDue(now, 10, LEASE), [lease('grace', 's1', now + LEASE)]);
        assert.deepEqual(await store.claimDue(now + 2000, 10, LEASE), [lease('ring', 'c1', now + 2000 + LEASE)]);
      });

      test('a commit that unschedules a timer removes it; unscheduling an unknown one is harmless', async () => {
        await store.schedule('ring', timerId('c1', 'ring'), now);
        await store.schedule('ring', timerId('c2', 'ring'), now);
        await commit(callRecord('c1'), { claims: [take(user('alice'), 'c1')] });
        const answered = callRecord('c1', 'alice', 'bob', { state: 'active' });
        assert.equal(await commit(answered, { expectVersion: 1, timer: unschedule('c1') }), true);
        assert.equal(await commit(callRecord('c3'), { timer: unschedule('never') }), true);
        assert.deepEqual(await store.getCall(TENANT, cid('c1')), { value: answered, version: 2 });
        assert.equal(await store.claimTimer('ring', timerId('c1', 'ring'), now + 10 * LEASE, LEASE), null);
        assert.deepEqual(await store.claimDue(now, 10, LEASE), [lease('ring', 'c2', now + LEASE)], 'other timers stay');
      });

      test('a commit that fails leaves the timers untouched, whether its version or a claim was stale', async () => {
        await commit(callRecord('c1'), { claims: [take(user('bob'), 'c1')] });
        await store.schedule('ring', timerId('c1', 'ring'), now);
        await store.schedule('ring', timerId('moved', 'ring'), now);

        const ended = callRecord('c1', 'alice', 'bob', { state: 'ended' });
        for (const expectVersion of [0, 2]) {
          assert.equal(await commit(ended, { expectVersion, ttlMs: 60_000, timer: unschedule('c1') }), false);
          assert.equal(await commit(ended, { expectVersion, ttlMs: 60_000, timer: schedule('new', now) }), false);
          assert.equal(await commit(ended, { expectVersion, ttlMs: 60_000, timer: schedule('moved', now + 5000) }), false);
        }
        // The version would do (a new call) but bob's claim is not free.
        const busy = { call: callRecord('c2', 'carol', 'bob'), expectVersion: 0, claims: [take(user('carol'), 'c2'), take(user('bob'), 'c2')], ttlMs: null };
        assert.equal(await store.commitCall({ ...busy, timer: schedule('c2', now) }), false);
        assert.equal(await store.commitCall({ ...busy, timer: unschedule('c1') }), false);

        assert.deepEqual((await store.getCall(TENANT, cid('c1')))?.version, 1);
        assert.equal(await store.getCall(TENANT, cid('c2')), undefined);
        const due = await store.claimDue(now, 10, LEASE);
        assert.deepEqual(byId(due), [lease('ring', 'c1', now + LEASE), lease('ring', 'moved', now + LEASE)], 'the same timers, due as they were');
      });

      test('a timer due at a non-finite time is refused, and the commit with it writes nothing', async () => {
        for (const dueAt of [Number.NaN, Number.POSITIVE_INFINITY]) {
          await assert.rejects(
            commit(callRecord('c1'), { claims: [take(user('alice'), 'c1')], timer: schedule('c1', dueAt) }),
            RangeError,
          );
        }
        assert.equal(await store.getCall(TENANT, cid('c1')), undefined);
        assert.deepEqual(await store.getClaims([user('alice')]), [null]);
        assert.deepEqual(await store.claimDue(now + 10 * LEASE, 10, LEASE), []);
      });

      test(`${RACERS} concurrent commits on one version, each scheduling its own timer: only the winner's is scheduled`, async () => {
        await commit(callRecord('c1'));
        const results = await Promise.all(
          Array.from({ length: RACERS }, (_, i) =>
            store.commitCall({ call: callRecord('c1', 'alice', 'bob', { endReason: `writer-${i}` }), expectVersion: 1, claims: [], ttlMs: null, timer: schedule(`t${i}`, now) }),
          ),
        );
        assert.equal(count(results), 1);
        assert.deepEqual(await store.claimDue(now, RACERS, LEASE), [lease('ring', `t${results.indexOf(true)}`, now + LEASE)]);
      });
    });

    describe('sessions and presence', () => {
      test('addSession says first only for the first session of a user; getSession returns it intact', async () => {
        const s1 = sessionRecord('s1', 'alice', { contacts: [uid('bob')], connected: true });
        assert.deepEqual(await store.addSession(s1), { first: true });
        assert.deepEqual(await store.addSession(sessionRecord('s2', 'alice')), { first: false });
        assert.deepEqual(await store.addSession(sessionRecord('s3', 'bob')), { first: true });
        assert.deepEqual(await store.addSession(sessionRecord('s4', 'alice', { tenant: 'other' })), { first: true }, 'another tenant, another user');
        assert.deepEqual(await store.getSession(sid('s1')), s1);
        assert.equal(await store.getSession(sid('nope')), undefined);
      });

      test('updateSession overwrites a live session (kept while in its grace) and is false once it is gone', async () => {
        await store.addSession(sessionRecord('s1', 'alice'));
        const lost = sessionRecord('s1', 'alice', { connected: false, graceUntil: Date.now() + 30_000, nodeId: 'node-b', resumes: 2 });
        assert.equal(await store.updateSession(lost), true);
        assert.deepEqual(await store.getSession(sid('s1')), lost);
        assert.deepEqual(await store.sessionsOf(user('alice')), [lost]);

        const back = { ...lost, connected: true, graceUntil: null };
        assert.equal(await store.updateSession(back), true);
        assert.deepEqual(await store.getSession(sid('s1')), back);

        await store.removeSession(sid('s1'));
        assert.equal(await store.updateSession(back), false);
        assert.equal(await store.getSession(sid('s1')), undefined, 'an update does not bring a session back');
        assert.equal(await store.updateSession(sessionRecord('never', 'alice')), false);
      });

      test('removeSession returns the session and whether it was the last, and undefined once gone', async () => {
        const s1 = sessionRecord('s1', 'alice');
        const s2 = sessionRecord('s2', 'alice', { name: 'Alice Phone' });
        await store.addSession(s1);
        await store.addSession(s2);
        assert.deepEqual(await store.removeSession(sid('s1')), { session: s1, last: false });
        assert.deepEqual(
          (await store.onlineUsers(TENANT)).map((u) => u.id),
          ['alice'],
          'still online with one session left',
        );
        assert.equal(await store.getSession(sid('s1')), undefined);
        assert.deepEqual(await store.removeSession(sid('s2')), { session: s2, last: true });
        assert.equal(await store.removeSession(sid('s2')), undefined);
        assert.equal(await store.removeSession(sid('never')), undefined);
        assert.deepEqual(await store.sessionsOf(user('alice')), []);
        assert.deepEqual(await store.onlineUsers(TENANT), []);

        assert.deepEqual(await store.addSession(s1), { first: true }, 'after the last is gone, the next one is first again');
      });

      test('sessionsOf lists every session of one user, in its own tenant only', async () => {
        const mine = [sessionRecord('s1', 'alice'), sessionRecord('s2', 'alice', { connected: false, graceUntil: Date.now() + 30_000 })];
        for (const s of [...mine, sessionRecord('s3', 'bob'), sessionRecord('s4', 'alice', { tenant: 'other' })]) await store.addSession(s);
        assert.deepEqual(byId(await store.sessionsOf(user('alice'))), mine);
        assert.deepEqual(ids(await store.sessionsOf(user('alice', 'other'))), ['s4']);
        assert.deepEqual(ids(await store.sessionsOf(user('bob'))), ['s3']);
        assert.deepEqual(await store.sessionsOf(user('nobody')), []);
      });

      test('onlineUsers lists each user of a tenant once, with a name; tenants are isolated', async () => {
        await store.addSession(sessionRecord('s1', 'alice'));
        await store.addSession(sessionRecord('s2', 'alice'));
        await store.addSession(sessionRecord('s3', 'bob'));
        await store.addSession(sessionRecord('s4', 'alice', { tenant: 'other', name: 'Other Alice' }));
        await store.addSession(sessionRecord('s5', 'carol', { tenant: '' }));
        assert.deepEqual(byId(await store.onlineUsers(TENANT)), [
          { id: 'alice', name: 'ALICE' },
          { id: 'bob', name: 'BOB' },
        ]);
        assert.deepEqual(await store.onlineUsers('other'), [{ id: 'alice', name: 'Other Alice' }]);
        assert.deepEqual(await store.onlineUsers(''), [{ id: 'carol', name: 'CAROL' }], 'the default tenant is a tenant too');
        assert.deepEqual(await store.onlineUsers('nobody'), []);

        await store.removeSession(sid('s4', 'other'));
        assert.deepEqual(await store.onlineUsers('other'), []);
        assert.deepEqual(byId(await store.onlineUsers(TENANT)).map((u) => u.id), ['alice', 'bob'], 'the same id in another tenant is untouched');
      });

      test('areOnline says, in order, which users have a session now, across tenants', async () => {
        assert.deepEqual(await store.areOnline([]), []);
        await store.addSession(sessionRecord('s1', 'alice'));
        await store.addSession(sessionRecord('s2', 'alice'));
        await store.addSession(sessionRecord('s3', 'bob', { tenant: 'other' }));
        const asked = [user('alice'), user('bob'), user('bob', 'other'), user('alice', 'other'), user('nobody')];
        assert.deepEqual(await store.areOnline(asked), [true, false, true, false, false]);
        await store.removeSession(sid('s1'));
        assert.deepEqual(await store.areOnline([user('alice')]), [true], 'one session left');
        await store.removeSession(sid('s2'));
        await store.removeSession(sid('s3', 'other'));
        assert.deepEqual(await store.areOnline(asked), [false, false, false, false, false]);
      });

      test('concurrent addSession for a new user: exactly one is first', async () => {
        const results = await Promise.all(Array.from({ length: RACERS }, (_, i) => store.addSession(sessionRecord(`s${i}`, 'alice'))));
        assert.equal(count(results.map((r) => r!.first)), 1);
        assert.equal((await store.sessionsOf(user('alice'))).length, RACERS);
      });

      test('addSession with a cap refuses (null, nothing written) a session past it, counting sessions in grace, not gone ones', async () => {
        assert.deepEqual(await store.addSession(sessionRecord('s1', 'alice'), 2), { first: true });
        assert.deepEqual(await store.addSession(sessionRecord('s2', 'alice', { connected: false, graceUntil: Date.now() + 30_000 }), 2), { first: false });
        assert.equal(await store.addSession(sessionRecord('s3', 'alice'), 2), null, 'a third is past the cap of two');
        assert.equal(await store.getSession(sid('s3')), undefined);
        assert.deepEqual(ids(await store.sessionsOf(user('alice'))), ['s1', 's2']);
        assert.deepEqual(await store.addSession(sessionRecord('s4', 'bob'), 2), { first: true }, 'another user has a cap of its own');
        await store.removeSession(sid('s1'));
        assert.deepEqual(await store.addSession(sessionRecord('s3', 'alice'), 2), { first: false }, 'a removed one frees a place');
      });

      test(`${RACERS} concurrent addSession of one user with a cap of 3: exactly 3 are stored`, async () => {
        const results = await Promise.all(Array.from({ length: RACERS }, (_, i) => store.addSession(sessionRecord(`s${i}`, 'alice'), 3)));
        assert.equal(results.filter((r) => r !== null).length, 3);
        assert.equal(count(results.map((r) => r?.first === true)), 1);
        assert.equal((await store.sessionsOf(user('alice'))).length, 3);
        assert.equal((await store.sessionsOfNode('node-a')).length, 3, 'the refused ones are not indexed either');
      });

      test('updateSession and removeSession with the record as read write nothing once it has changed (a resume racing an expiry)', async () => {
        const live = sessionRecord('s1', 'alice');
        await store.addSession(live);
        const lost = { ...live, connected: false, graceUntil: Date.now() + 30_000 };
        assert.equal(await store.updateSession(lost, live), true, 'written over the record as read');
        // Node 1 read the session in its grace; node 2 resumes it before node 1 acts.
        const readByExpiry = (await store.getSession(sid('s1')))!;
        const resumed = { ...lost, connected: true, graceUntil: null, nodeId: 'node-b', resumes: 1 };
        assert.equal(await store.updateSession(resumed, readByExpiry), true);
        assert.equal(await store.removeSession(sid('s1'), readByExpiry), undefined, 'the expiry removes nothing');
        assert.equal(await store.updateSession({ ...readByExpiry, resumes: 9 }, readByExpiry), false, 'nor overwrites it');
        assert.deepEqual(await store.getSession(sid('s1')), resumed);
        assert.deepEqual(await store.sessionsOfNode('node-b'), [resumed]);
        assert.deepEqual(await store.removeSession(sid('s1'), resumed), { session: resumed, last: true }, 'the record as it is now is removed');
        assert.deepEqual(await store.onlineUsers(TENANT), []);
      });

      test(`${RACERS} concurrent conditional updates of one session read once: exactly one is written`, async () => {
        const live = sessionRecord('s1', 'alice');
        await store.addSession(live);
        const read = (await store.getSession(sid('s1')))!;
        const results = await Promise.all(
          Array.from({ length: RACERS }, (_, i) => store.updateSession({ ...read, nodeId: `node-${i % 4}`, resumes: i + 1 }, read)),
        );
        assert.equal(count(results), 1);
        const stored = (await store.getSession(sid('s1')))!;
        assert.deepEqual(await store.sessionsOfNode(stored.nodeId), [stored]);
      });

      test('concurrent removeSession, each session twice: each is returned once and exactly one is the last', async () => {
        for (let i = 0; i < RACERS; i++) await store.addSession(sessionRecord(`s${i}`, 'alice'));
        const attempts = Array.from({ length: RACERS * 2 }, (_, i) => sid(`s${i % RACERS}`));
        const results = await Promise.all(attempts.map((id) => store.removeSession(id)));
        const removed = results.filter((r) => r !== undefined);
        assert.deepEqual(removed.map((r) => nameOf(r.session.id)).sort(), Array.from({ length: RACERS }, (_, i) => `s${i}`).sort());
        assert.equal(count(removed.map((r) => r.last)), 1);
        assert.deepEqual(await store.sessionsOf(user('alice')), []);
        assert.deepEqual(await store.onlineUsers(TENANT), []);
      });
    });

    describe('history', () => {
      test('newest first, limited, paged with before/next to the end, per user', async () => {
        for (let i = 0; i < 7; i++) {
          await store.appendHistory([{ key: user('alice'), entry: historyEntry(`a${i}`, { durationMs: i * 1000, answeredAt: i % 2 ? 1_700_000_001_000 : null }) }]);
          if (i === 3) await store.appendHistory([{ key: user('bob'), entry: historyEntry('b0', { direction: 'incoming' }) }]);
        }
        const first = await store.listHistory(user('alice'), 3, null);
        assert.deepEqual(first.calls.map((c) => c.callId), ['a6', 'a5', 'a4']);
        assert.deepEqual(first.calls[1], historyEntry('a5', { durationMs: 5000, answeredAt: 1_700_000_001_000 }));
        assert.equal(typeof first.next, 'string');
        const second = await store.listHistory(user('alice'), 3, first.next);
        assert.deepEqual(second.calls.map((c) => c.callId), ['a3', 'a2', 'a1']);
        const third = await store.listHistory(user('alice'), 3, second.next);
        assert.deepEqual(third, { calls: [historyEntry('a0', { durationMs: 0, answeredAt: null })], next: null });

        assert.equal((await store.listHistory(user('alice'), 7, null)).next, null, 'a page that ends exactly at the end has no next');
        assert.equal((await store.listHistory(user('alice'), 100, null)).calls.length, 7);
        assert.deepEqual(await store.listHistory(user('bob'), 10, null), { calls: [historyEntry('b0', { direction: 'incoming' })], next: null });
        assert.deepEqual(await store.listHistory(user('alice', 'other'), 10, null), { calls: [], next: null });
      });

      test('keeps only the newest 200 (historyLimit) entries of each user', async () => {
        for (let i = 0; i < 205; i++) await store.appendHistory([{ key: user('alice'), entry: historyEntry(`a${i}`) }]);
        await store.appendHistory([{ key: user('bob'), entry: historyEntry('b0') }]);
        const seen: string[] = [];
        let before: string | null = null;
        for (let pages = 0; pages < 10; pages++) {
          const page = await store.listHistory(user('alice'), 64, before);
          seen.push(...page.calls.map((c) => c.callId));
          before = page.next;
          if (before === null) break;
        }
        assert.equal(before, null);
        assert.deepEqual(seen, Array.from({ length: 200 }, (_, i) => `a${204 - i}`));
        assert.equal((await store.listHistory(user('bob'), 10, null)).calls.length, 1);
      });

      test('one appendHistory call puts each entry in its own user history, in the order given, with working cursors', async () => {
        await store.appendHistory([{ key: user('alice'), entry: historyEntry('before') }]);
        const append = (key: UserKey, callId: string) => ({ key, entry: historyEntry(callId) });
        await store.appendHistory([
          append(user('alice'), 'a0'),
          append(user('bob'), 'b0'),
          append(user('alice'), 'a1'),
          append(user('bob'), 'b1'),
          append(user('alice', 'other'), 'o0'),
          append(user('alice'), 'a2'),
        ]);
        await store.appendHistory([append(user('bob'), 'after')]);

        const callIds = async (key: UserKey, limit: number, before: string | null) => {
          const page = await store.listHistory(key, limit, before);
          return { ids: page.calls.map((c) => c.callId), next: page.next };
        };
        const first = await callIds(user('alice'), 2, null);
        assert.deepEqual(first.ids, ['a2', 'a1'], 'a later entry of the list is newer');
        const second = await callIds(user('alice'), 2, first.next);
        assert.deepEqual(second, { ids: ['a0', 'before'], next: null }, 'entries appended before the list are older');
        const bobs = await callIds(user('bob'), 1, null);
        assert.deepEqual(bobs.ids, ['after'], 'entries appended after the list are newer');
        assert.deepEqual((await callIds(user('bob'), 10, bobs.next)).ids, ['b1', 'b0']);
        assert.deepEqual((await callIds(user('alice', 'other'), 10, null)).ids, ['o0'], 'the same user id in another tenant is another history');
        assert.deepEqual((await callIds(user('carol'), 10, null)).ids, []);
      });

      test('history records carried by a commit are written with it, in order, after earlier ones, and only if it succeeds', async () => {
        await store.appendHistory([{ key: user('alice'), entry: historyEntry('before') }]);
        await commit(callRecord('c1'), { claims: [take(user('alice'), 'c1'), take(user('bob'), 'c1')] });
        const ended = { ...callRecord('c1'), state: 'ended' as const };
        const records = [
          { key: user('alice'), entry: historyEntry('c1') },
          { key: user('bob'), entry: historyEntry('c1', { direction: 'incoming' }) },
        ];
        const end = (expectVersion: number) =>
          commit(ended, { expectVersion, claims: [release(user('alice'), 'c1'), release(user('bob'), 'c1')], ttlMs: 60_000, history: records });
        assert.equal(await end(5), false, 'a commit that loses its race');
        assert.deepEqual((await store.listHistory(user('bob'), 10, null)).calls, [], '... writes no history');
        assert.equal(await end(1), true);
        assert.deepEqual((await store.listHistory(user('alice'), 10, null)).calls.map((c) => c.callId), ['c1', 'before']);
        assert.deepEqual((await store.listHistory(user('bob'), 10, null)).calls, [historyEntry('c1', { direction: 'incoming' })]);
        assert.deepEqual(await store.getClaims([user('alice'), user('bob')]), [null, null], 'the claims were released by the same commit');
        await store.appendHistory([{ key: user('alice'), entry: historyEntry('after') }]);
        assert.deepEqual((await store.listHistory(user('alice'), 10, null)).calls.map((c) => c.callId), ['after', 'c1', 'before']);
      });

      test("commitCallCounting commits as commitCall does and counts the online users of the tenant other than the call's parties", async () => {
        const ringing = callRecord('c1');
        const claims = [take(user('alice'), 'c1'), take(user('bob'), 'c1')];
        assert.equal(await store.commitCallCounting({ call: ringing, expectVersion: 0, claims, ttlMs: null }), 0, 'nobody online at all');
        assert.deepEqual(await store.getClaims([user('alice'), user('bob')]), [cid('c1'), cid('c1')], 'written as commitCall writes');
        assert.equal((await store.getCall(TENANT, cid('c1')))?.version, 1);
        await store.addSession(sessionRecord('a1', 'alice'));
        await store.addSession(sessionRecord('a2', 'alice'));
        await store.addSession(sessionRecord('b1', 'bob'));
        await store.addSession(sessionRecord('x1', 'xavier', { tenant: 'other' }));
        const active = { ...ringing, state: 'active' as const };
        assert.equal(await store.commitCallCounting({ call: active, expectVersion: 1, claims: [], ttlMs: null }), 0, "the parties' own sessions, and another tenant's users, are not counted");
        await store.addSession(sessionRecord('c1', 'carol'));
        await store.addSession(sessionRecord('c2', 'carol'));
        await store.addSession(sessionRecord('d1', 'dave', { connected: false, graceUntil: 1_700_000_060_000 }));
        const muted = { ...active, caller: { ...active.caller, flags: { ...active.caller.flags, muted: true } } };
        assert.equal(await store.commitCallCounting({ call: muted, expectVersion: 2, claims: [], ttlMs: null }), 2, 'each other user once, one in its grace too');
        assert.equal(await store.commitCallCounting({ call: muted, expectVersion: 2, claims: [], ttlMs: null }), null, 'a stale version: nothing written, no count');
        assert.equal((await store.getCall(TENANT, cid('c1')))?.version, 3);
        assert.equal(await store.commitCallCounting({ call: callRecord('c2', 'carol', 'carol'), expectVersion: 0, claims: [], ttlMs: null }), 3, 'a user calling themself is left out once');
        const ended = { ...muted, state: 'ended' as const };
        const history = [{ key: user('alice'), entry: historyEntry('c1') }];
        const counted = await store.commitCallCounting({ call: ended, expectVersion: 3, claims: [release(user('alice'), 'c1'), release(user('bob'), 'c1')], ttlMs: 60_000, history });
        assert.equal(counted, 2, 'with claims released and history written in the same step');
        assert.deepEqual(await store.getClaims([user('alice'), user('bob')]), [null, null]);
        assert.deepEqual((await store.listHistory(user('alice'), 10, null)).calls.map((c) => c.callId), ['c1']);
      });

      test('appending an empty list changes nothing', async () => {
        await store.appendHistory([]);
        assert.deepEqual(await store.listHistory(user('alice'), 10, null), { calls: [], next: null });
        await store.appendHistory([{ key: user('alice'), entry: historyEntry('a0') }]);
        await store.appendHistory([]);
        assert.deepEqual(await store.listHistory(user('alice'), 10, null), { calls: [historyEntry('a0')], next: null });
      });
    });

    describe('timers', () => {
      const now = 1_700_000_000_000;
      const LEASE = 60_000;
      const lease = (kind: TimerKind, id: string, leaseUntil: number): ClaimedTimer => ({ kind, id, leaseUntil });

      test('claimTimer is null before the due time, leases the timer once at it, and is null while the lease runs', async () => {
        await store.schedule('ring', 'c1', now);
        assert.equal(await store.claimTimer('ring', 'c1', now - 1, LEASE), null);
        assert.equal(await store.claimTimer('grace', 'c1', now, LEASE), null, 'another kind is another timer');
        assert.equal(await store.claimTimer('ring', 'c2', now, LEASE), null);
        assert.deepEqual(await store.claimTimer('ring', 'c1', now, LEASE), lease('ring', 'c1', now + LEASE));
        assert.equal(await store.claimTimer('ring', 'c1', now, LEASE), null, 'leased already');
        assert.equal(await store.claimTimer('ring', 'c1', now + LEASE - 1, LEASE), null, 'still leased just before the lease ends');
        assert.deepEqual(await store.claimDue(now + LEASE - 1, 10, LEASE), []);
      });

      test('a lease nobody completes runs out and the timer is claimable again (its claimer crashed)', async () => {
        await store.schedule('ring', 'c1', now);
        await store.schedule('grace', 's1', now);
        assert.deepEqual(await store.claimTimer('ring', 'c1', now, LEASE), lease('ring', 'c1', now + LEASE));
        assert.deepEqual(await store.claimDue(now, 10, LEASE), [lease('grace', 's1', now + LEASE)]);
        assert.deepEqual(await store.claimDue(now + LEASE - 1, 10, LEASE), []);

        const again = now + LEASE;
        assert.deepEqual(await store.claimTimer('grace', 's1', again, LEASE), lease('grace', 's1', again + LEASE));
        assert.deepEqual(await store.claimDue(again, 10, LEASE), [lease('ring', 'c1', again + LEASE)]);
      });

      test('completeTimer removes a leased timer; completing again, or an unknown timer, is harmless', async () => {
        await store.schedule('ring', 'c1', now);
        await store.schedule('grace', 's1', now);
        const one = await store.claimTimer('ring', 'c1', now, LEASE);
        assert.ok(one);
        await store.completeTimer(one);
        const [two, ...rest] = await store.claimDue(now, 10, LEASE);
        assert.deepEqual(rest, []);
        assert.ok(two);
        await store.completeTimer(two);
        await store.completeTimer(two);
        await store.completeTimer(lease('ring', 'never', now + LEASE));
        assert.equal(await store.claimTimer('ring', 'c1', now + 10 * LEASE, LEASE), null);
        assert.deepEqual(await store.claimDue(now + 10 * LEASE, 10, LEASE), []);
      });

      test('completeTimer keeps a timer rescheduled during its lease, later or earlier, and one that was unscheduled stays gone', async () => {
        for (const id of ['later', 'earlier', 'gone']) await store.schedule('ring', id, now);
        const leases = await store.claimDue(now, 10, LEASE);
        assert.equal(leases.length, 3);
        await store.schedule('ring', 'later', now + 2 * LEASE);
        await store.schedule('ring', 'earlier', now - 1);
        await store.unschedule('ring', 'gone');
        for (const l of leases) await store.completeTimer(l);

        assert.deepEqual(await store.claimDue(now, 10, LEASE), [lease('ring', 'earlier', now + LEASE)]);
        assert.equal(await store.claimTimer('ring', 'later', now + 2 * LEASE - 1, LEASE), null);
        assert.deepEqual(await store.claimTimer('ring', 'later', now + 2 * LEASE, LEASE), lease('ring', 'later', now + 3 * LEASE));
        assert.equal(await store.claimTimer('ring', 'gone', now + 10 * LEASE, LEASE), null);
      });

      test('the claimer of a lease that ran out cannot complete the timer away from its next claimer', async () => {
        await store.schedule('ring', 'c1', now);
        const first = await store.claimTimer('ring', 'c1', now, LEASE);
        const second = await store.claimTimer('ring', 'c1', now + LEASE, LEASE);
        assert.ok(first && second);
        await store.completeTimer(first);
        assert.deepEqual(await store.claimTimer('ring', 'c1', now + 2 * LEASE, LEASE), lease('ring', 'c1', now + 3 * LEASE), 'still there for the second lease to run out');
      });

      test('unschedule removes a timer; unscheduling an unknown one is harmless', async () => {
        await store.schedule('grace', 's1', now);
        await store.schedule('grace', 's2', now);
        await store.unschedule('grace', 's1');
        await store.unschedule('ring', 'never');
        assert.equal(await store.claimTimer('grace', 's1', now + 1000, LEASE), null);
        assert.deepEqual(await store.claimDue(now + 1000, 10, LEASE), [lease('grace', 's2', now + 1000 + LEASE)]);
      });

      test('scheduling again moves the due time, later or earlier', async () => {
        await store.schedule('ring', 'later', now);
        await store.schedule('ring', 'later', now + 1000);
        await store.schedule('ring', 'earlier', now + 1000);
        await store.schedule('ring', 'earlier', now - 1000);
        assert.equal(await store.claimTimer('ring', 'later', now, LEASE), null);
        assert.deepEqual(await store.claimDue(now, 10, LEASE), [lease('ring', 'earlier', now + LEASE)]);
        assert.deepEqual(await store.claimTimer('ring', 'later', now + 1000, LEASE), lease('ring', 'later', now + 1000 + LEASE));
      });

      test('claimDue hands out at most max timers at a time, and nothing for a max below 1', async () => {
        for (let i = 0; i < 5; i++) await store.schedule('ring', `t${i}`, now - i);
        assert.deepEqual(await store.claimDue(now, 0, LEASE), []);
        const sizes: number[] = [];
        for (let round = 0; round < 4; round++) sizes.push((await store.claimDue(now, 2, LEASE)).length);
        assert.deepEqual(sizes, [2, 2, 1, 0]);
      });

      test('a lease must be positive', async () => {
        await store.schedule('ring', 'c1', now);
        await assert.rejects(store.claimTimer('ring', 'c1', now, 0), RangeError);
        await assert.rejects(store.claimDue(now, 10, -1), RangeError);
        assert.deepEqual(await store.claimTimer('ring', 'c1', now, LEASE), lease('ring', 'c1', now + LEASE), 'a refused claim leased nothing');
      });

      test(`exactly one of ${RACERS} concurrent claimTimer calls gets the lease of a due timer`, async () => {
        await store.schedule('ring', 'c1', now);
        const results = await Promise.all(Array.from({ length: RACERS }, () => store.claimTimer('ring', 'c1', now, LEASE)));
        assert.deepEqual(
          results.filter((r) => r !== null),
          [lease('ring', 'c1', now + LEASE)],
        );
      });

      test(`one due timer raced by ${RACERS} claimTimer and claimDue calls goes to exactly one of them`, async () => {
        await store.schedule('grace', 's1', now);
        const results = await Promise.all(
          Array.from({ length: RACERS }, (_, i) =>
            i % 2 ? store.claimTimer('grace', 's1', now, LEASE).then((r) => (r ? [r] : [])) : store.claimDue(now, 10, LEASE),
          ),
        );
        assert.deepEqual(results.flat(), [lease('grace', 's1', now + LEASE)]);
      });

      test('claimDue hands each due timer to exactly one of several concurrent sweepers, at most max at a time', async () => {
        const due: { kind: TimerKind; id: string }[] = [];
        for (let i = 0; i < 40; i++) {
          const timer = { kind: (i % 2 ? 'ring' : 'grace') as TimerKind, id: i === 7 ? 'with:colon' : `t${i}` };
          due.push(timer);
          await store.schedule(timer.kind, timer.id, now - i);
        }
        for (let i = 0; i < 5; i++) await store.schedule('ring', `future${i}`, now + 1000);

        const sweeps = await Promise.all(
          Array.from({ length: 6 }, async () => {
            const got: ClaimedTimer[] = [];
            for (let round = 0; round < 50; round++) {
              const batch = await store.claimDue(now, 7, LEASE);
              assert.ok(batch.length <= 7, `claimDue returned ${batch.length} > max`);
              if (batch.length === 0) return got;
              got.push(...batch);
            }
            return assert.fail('claimDue kept handing out timers: leased ones must not be due again before their lease ends');
          }),
        );
        const keyOf = (t: { kind: TimerKind; id: string }) => `${t.kind}/${t.id}`;
        assert.deepEqual(sweeps.flat().map(keyOf).sort(), due.map(keyOf).sort(), 'every due timer once, none twice');
        assert.ok(sweeps.flat().every((t) => t.leaseUntil === now + LEASE));
        assert.equal(await store.claimTimer('ring', 'future0', now, LEASE), null);
        assert.equal((await store.claimDue(now + 1000, 100, LEASE)).length, 5, 'the future timers, not the leased ones');
        assert.equal((await store.claimDue(now + LEASE, 100, LEASE)).length, 40, 'the leases nobody completed ran out');
      });
    });

    describe('nodes', () => {
      const now = 1_700_000_000_000;
      const LEASE = 20_000;

      test('clock is the store’s time in epoch ms, and it moves forward', async () => {
        const before = Date.now();
        const first = await store.clock();
        const second = await store.clock();
        assert.ok(Number.isInteger(first), `${first} is whole milliseconds`);
        // One machine in the tests: the store's clock and ours agree within a second.
        assert.ok(Math.abs(first - before) < 1000, `store clock ${first} vs ${before}`);
        assert.ok(second >= first);
      });

      /** The node ids of some claims, sorted, after checking each carries the lease taken at `at`. */
      const claimed = (claims: ClaimedNode[], at: number) => {
        for (const c of claims) assert.equal(c.leaseUntil, at + LEASE, `${c.nodeId} leased until ${at} + LEASE`);
        return claims.map((c) => c.nodeId).sort();
      };
      /** Claims the dead nodes at `at` and completes every claim: the nodes handed over for good. */
      const reap = async (at: number) => {
        const claims = await store.claimDeadNodes(at, LEASE);
        for (const c of claims) await store.completeDeadNode(c);
        return claimed(claims, at);
      };

      test('claimDeadNodes leases and returns the nodes whose aliveUntil is before now; a completed claim forgets the node', async () => {
        assert.deepEqual(await reap(now), []);
        await store.beat('node-a', now + 1000);
        await store.beat('node-b', now + 2000);
        await store.beat('node-c', now);
        assert.deepEqual(await reap(now), [], 'alive until now is alive at now');
        assert.deepEqual(await reap(now + 1), ['node-c']);
        assert.deepEqual(await reap(now + 1), [], 'claimed already');
        await store.beat('node-b', now + 5000);
        assert.deepEqual(await reap(now + 3000), ['node-a'], 'a later beat keeps a node alive');
        assert.deepEqual(await reap(now + 5001), ['node-b']);
        assert.deepEqual(await reap(now + 1_000_000), [], 'completed claims are gone for good');
      });

      test('a claim nobody completes (its claimer died) runs out, and the node is claimed again; completing the old claim then removes nothing', async () => {
        await store.beat('node-a', now);
        const [first, ...none] = await store.claimDeadNodes(now + 1, LEASE);
        assert.deepEqual([first?.nodeId, none], ['node-a', []]);
        assert.deepEqual(await store.claimDeadNodes(now + LEASE, LEASE), [], 'leased until now + 1 + LEASE');
        const again = await store.claimDeadNodes(now + 2 + LEASE, LEASE);
        assert.deepEqual(claimed(again, now + 2 + LEASE), ['node-a'], 'claimed again once the lease ran out');
        await store.completeDeadNode(first!);
        assert.deepEqual(await store.claimDeadNodes(now + 3 + 2 * LEASE, LEASE).then((c) => claimed(c, now + 3 + 2 * LEASE)), ['node-a'], 'the stale claim removed nothing');
      });

      test('a node declared dead that beats again is alive again, and completing its claim leaves it', async () => {
        await store.beat('node-a', now);
        const claims = await store.claimDeadNodes(now + 1, LEASE);
        assert.deepEqual(claimed(claims, now + 1), ['node-a']);
        await store.beat('node-a', now + 1000);
        for (const c of claims) await store.completeDeadNode(c);
        assert.deepEqual(await reap(now + 1000), [], 'alive until its new beat');
        assert.deepEqual(await reap(now + 1001), ['node-a']);
      });

      test('removeNode forgets a node; removing an unknown one, or completing a claim never made, is harmless', async () => {
        await store.beat('node-a', now);
        await store.beat('node-b', now);
        await store.removeNode('node-a');
        await store.removeNode('never');
        await store.completeDeadNode({ nodeId: 'never', leaseUntil: now });
        await store.completeDeadNode({ nodeId: 'node-b', leaseUntil: now + 1 });
        assert.deepEqual(await reap(now + 1), ['node-b']);
      });

      test(`each dead node goes to exactly one of ${RACERS} concurrent claimDeadNodes calls`, async () => {
        const dead = Array.from({ length: 20 }, (_, i) => `dead-${i}`);
        for (const [i, nodeId] of dead.entries()) await store.beat(nodeId, now - 1 - i);
        for (let i = 0; i < 5; i++) await store.beat(`alive-${i}`, now + 1000);
        const results = await Promise.all(Array.from({ length: RACERS }, () => store.claimDeadNodes(now, LEASE)));
        assert.deepEqual(claimed(results.flat(), now), [...dead].sort(), 'every dead node once, none twice, no live one');
        assert.deepEqual(await reap(now + 1001), Array.from({ length: 5 }, (_, i) => `alive-${i}`), 'the leased ones are not dead again yet');
      });

      test('claimDeadNodes refuses a lease that is not a positive number of ms', async () => {
        await store.beat('node-a', now);
        for (const bad of [0, -1, Number.NaN, Number.POSITIVE_INFINITY]) await assert.rejects(store.claimDeadNodes(now + 1, bad), RangeError);
        assert.deepEqual(await reap(now + 1), ['node-a'], 'nothing was claimed by the refused calls');
      });

      test('sessionsOfNode lists the sessions whose nodeId is that node, connected or in grace', async () => {
        const onA = [
          sessionRecord('s1', 'alice'),
          sessionRecord('s2', 'alice', { connected: false, graceUntil: Date.now() + 30_000 }),
          sessionRecord('s3', 'bob', { tenant: 'other' }),
        ];
        const onB = [sessionRecord('s4', 'carol', { nodeId: 'node-b' })];
        for (const s of [...onA, ...onB]) await store.addSession(s);
        assert.deepEqual(byId(await store.sessionsOfNode('node-a')), onA);
        assert.deepEqual(await store.sessionsOfNode('node-b'), onB);
        assert.deepEqual(await store.sessionsOfNode('node-c'), []);

        await store.removeSession(sid('s1'));
        await store.removeSession(sid('s4'));
        assert.deepEqual(ids(await store.sessionsOfNode('node-a')), ['s2', 's3']);
        assert.deepEqual(await store.sessionsOfNode('node-b'), []);
      });

      test('sessionsOfNode leaves out the sessions it is told to (not even read)', async () => {
        for (const id of ['s1', 's2', 's3']) await store.addSession(sessionRecord(id, `user-${id}`));
        assert.deepEqual(ids(await store.sessionsOfNode('node-a', new Set([sid('s1'), sid('s3'), sid('elsewhere')]))), ['s2']);
        assert.deepEqual(await store.sessionsOfNode('node-a', new Set([sid('s1'), sid('s2'), sid('s3')])), []);
      });

      test('notOnNode says which of the ids the node does not hold', async () => {
        await store.addSession(sessionRecord('s1', 'alice'));
        await store.addSession(sessionRecord('s2', 'bob', { nodeId: 'node-b' }));
        assert.deepEqual(await store.notOnNode('node-a', [sid('s1'), sid('s2'), sid('gone')]), [sid('s2'), sid('gone')]);
        assert.deepEqual(await store.notOnNode('node-a', []), []);
        await store.removeSession(sid('s1'));
        assert.deepEqual(await store.notOnNode('node-a', [sid('s1')]), [sid('s1')]);
      });

      test('the node index follows updateSession: an update in place, a move to another node and back', async () => {
        await store.addSession(sessionRecord('s1', 'alice'));
        await store.addSession(sessionRecord('s2', 'bob'));
        const lost = sessionRecord('s1', 'alice', { connected: false, graceUntil: Date.now() + 30_000 });
        assert.equal(await store.updateSession(lost), true);
        assert.deepEqual(byId(await store.sessionsOfNode('node-a')), [lost, sessionRecord('s2', 'bob')], 'an update in place keeps it, as updated');

        const moved = sessionRecord('s1', 'alice', { nodeId: 'node-b', resumes: 1 });
        assert.equal(await store.updateSession(moved), true);
        assert.deepEqual(ids(await store.sessionsOfNode('node-a')), ['s2']);
        assert.deepEqual(await store.sessionsOfNode('node-b'), [moved]);

        const back = sessionRecord('s1', 'alice', { resumes: 2 });
        assert.equal(await store.updateSession(back), true);
        assert.deepEqual(byId(await store.sessionsOfNode('node-a')), [back, sessionRecord('s2', 'bob')]);
        assert.deepEqual(await store.sessionsOfNode('node-b'), []);

        await store.removeSession(sid('s1'));
        assert.equal(await store.updateSession(sessionRecord('s1', 'alice', { nodeId: 'node-c' })), false);
        assert.deepEqual(await store.sessionsOfNode('node-c'), [], 'an update of a gone session indexes nothing');
        assert.deepEqual(ids(await store.sessionsOfNode('node-a')), ['s2']);
      });

      test('the node index follows concurrent updates that move sessions between nodes, and removals among them', async () => {
        const nodes = ['node-a', 'node-b', 'node-c', 'node-d'];
        for (let i = 0; i < 10; i++) await store.addSession(sessionRecord(`s${i}`, `user-${i}`));
        await Promise.all(
          Array.from({ length: RACERS * 2 }, (_, i) => {
            const id = `s${i % 10}`;
            // s8 and s9 are removed while others move them.
            if ((id === 's8' || id === 's9') && i % 7 === 0) return store.removeSession(sid(id));
            return store.updateSession(sessionRecord(id, `user-${i % 10}`, { nodeId: nodes[i % nodes.length]!, resumes: i }));
          }),
        );
        const stored = (await Promise.all(Array.from({ length: 10 }, (_, i) => store.getSession(sid(`s${i}`))))).filter(
          (s): s is SessionRecord => s !== undefined,
        );
        assert.deepEqual(ids(stored), ['s0', 's1', 's2', 's3', 's4', 's5', 's6', 's7']);
        for (const nodeId of nodes) {
          assert.deepEqual(
            byId(await store.sessionsOfNode(nodeId)),
            byId(stored.filter((s) => s.nodeId === nodeId)),
            `each session is listed under exactly the node its record names (${nodeId})`,
          );
        }
      });
    });

    describe('shared rate limits', () => {
      test('a bucket admits its burst at once, then one event per interval; keys are independent', async () => {
        const rule = { kind: 'bucket', burst: 3, perSecond: 1 } as const;
        const t = Date.now();
        const at = (ms: number, key = 'k') => store.admit(key, rule, t + ms);
        assert.deepEqual([await at(0), await at(0), await at(0), await at(0)], [true, true, true, false]);
        assert.equal(await at(0, 'other'), true, 'another key has a bucket of its own');
        assert.equal(await at(500), false, 'half an interval refills nothing');
        assert.equal(await at(1000), true, 'one interval refills one');
        assert.equal(await at(1000), false);
        assert.deepEqual([await at(9000), await at(9000), await at(9000), await at(9000)], [true, true, true, false], 'refilled to the burst, no more');
      });

      test('a window admits at most limit events within any windowMs', async () => {
        const rule = { kind: 'window', limit: 3, windowMs: 1000 } as const;
        const t = Date.now();
        const at = (ms: number) => store.admit('w', rule, t + ms);
        assert.deepEqual([await at(0), await at(10), await at(500), await at(999)], [true, true, true, false]);
        assert.equal(await at(1000), true, 'the first has left the window');
        assert.equal(await at(1005), false, 'the second has not');
        assert.equal(await at(1010), true);
        assert.deepEqual([await at(1500), await at(1501)], [true, false]);
        assert.equal(await at(10_000), true, 'long after, a fresh window');
      });

      test(`${RACERS} concurrent admits of a window of 6: exactly 6 pass`, async () => {
        const rule = { kind: 'window', limit: 6, windowMs: 60_000 } as const;
        const now = Date.now();
        assert.equal(count(await Promise.all(Array.from({ length: RACERS }, () => store.admit('pair', rule, now)))), 6);
      });

      test('a rule that cannot work is refused', async () => {
        await assert.rejects(store.admit('k', { kind: 'bucket', burst: 0, perSecond: 1 }, Date.now()), RangeError);
        await assert.rejects(store.admit('k', { kind: 'window', limit: 2, windowMs: 0 }, Date.now()), RangeError);
      });
    });

    test('ping resolves while the store answers', async () => {
      await store.ping();
    });
  });
}
