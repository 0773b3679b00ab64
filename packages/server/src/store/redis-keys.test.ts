/**
 * Each script's encoder lays out KEYS and ARGV where its Lua reads them: the
 * positions below are the ones the scripts' text uses (checked against that
 * text too), so the two cannot drift apart unseen. The store contract runs
 * the real scripts on a real Redis.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { CallId, SessionId, UserId } from '@switchboard/protocol';
import { NO_FLAGS, ringTimerId, userKey, type CallRecord } from '../calls/types.js';
import {
  ADD_SESSION,
  ADMIT,
  COMMIT_CALL,
  encodeAddSession,
  encodeAdmit,
  encodeCommitCall,
  encodeRemoveSession,
  encodeUpdateSession,
  groupOf,
  sessionIdPrefix,
  redisKeys,
  REMOVE_SESSION,
  UPDATE_SESSION,
} from './redis-keys.js';
import type { CallCommit, SessionRecord } from './types.js';

const keys = redisKeys('p:');
/** The key group of tenant `t`, where every key of these scripts goes. */
const G = `p:{g${groupOf('t')}}:`;
const S1 = `${sessionIdPrefix('t')}s1` as SessionId;
const S7 = `${sessionIdPrefix('t')}s7` as SessionId;
/** The hash tag of a key: what Redis Cluster hashes to find its slot. */
const tagOf = (key: string) => /\{([^}]*)\}/.exec(key)?.[1] ?? key;
const oneSlot = (list: string[]) => assert.equal(new Set(list.map(tagOf)).size, 1, `one slot for ${list.join(', ')}`);
const party = (userId: string, sessionId: string | null) => ({ userId: userId as UserId, name: userId, sessionId: sessionId as SessionId | null, flags: { ...NO_FLAGS }, reconnecting: false });
const call: CallRecord = {
  id: 'c1' as CallId,
  tenant: 't',
  state: 'ended',
  caller: party('ann', 's1'),
  callee: party('ben', null),
  ringing: [],
  media: { audio: true, video: false },
  createdAt: 1,
  answeredAt: null,
  endedAt: 2,
  ringDeadline: 3,
  outcome: 'busy',
  endReason: 'busy',
  endedBy: null,
};
/** ARGV[n] of the Lua, 1-based, as the encoder laid it out. */
const argv = (args: unknown[], n: number) => args[n - 1];

test('COMMIT_CALL: claims and history where the Lua looks for them, with and without the count of parties', () => {
  const entry = { callId: call.id, direction: 'outgoing' as const, peer: { id: 'ben' as UserId, name: 'ben' }, outcome: 'busy' as const, reason: 'busy', createdAt: 1, answeredAt: null, endedAt: 2, durationMs: 0 };
  const commit: CallCommit = {
    call,
    expectVersion: 4,
    claims: [
      { op: 'take', key: userKey('t', 'ann'), expect: null, callId: call.id },
      { op: 'release', key: userKey('t', 'ben'), callId: call.id },
    ],
    ttlMs: 1000.4,
    timer: { op: 'unschedule', kind: 'ring', id: ringTimerId('t', 'c1' as CallId) },
    history: [
      { key: userKey('t', 'ann'), entry },
      { key: userKey('t', 'ben'), entry: { ...entry, direction: 'incoming' } },
    ],
  };
  assert.match(COMMIT_CALL.lua, /local base = 10 \+ parties \+ \(i - 1\) \* 3/);
  assert.match(COMMIT_CALL.lua, /appendHistory\(KEYS\[3\], 5 \+ claims, lastKey, 11 \+ parties \+ claims \* 3/);
  for (const counting of [false, true]) {
    const { keys: k, args } = encodeCommitCall(keys, commit, { historyLimit: 200, historyRetentionMs: 9 }, counting);
    const parties = counting ? 2 : 0;
    assert.deepEqual(k, [`${G}call:1:t:c1`, `${G}timers`, `${G}history-seq`, `${G}online:1:t`, `${G}claim:1:t:ann`, `${G}claim:1:t:ben`, `${G}history:1:t:ann`, `${G}history:1:t:ben`]);
    oneSlot(k);
    assert.deepEqual([argv(args, 1), argv(args, 3), argv(args, 4), argv(args, 5), argv(args, 7), argv(args, 8), argv(args, 9)], [4, 1001, 'unschedule', 'ring:1:t:c1', 2, 200, 9]);
    assert.equal(argv(args, 10), counting ? 2 : '');
    if (counting) assert.deepEqual([argv(args, 11), argv(args, 12)], ['ann', 'ben']);
    const claim = (i: number) => [1, 2, 3].map((o) => argv(args, 10 + parties + (i - 1) * 3 + o));
    assert.deepEqual(claim(1), ['take', '', 'c1']);
    assert.deepEqual(claim(2), ['release', '', 'c1']);
    assert.equal(JSON.parse(String(argv(args, 11 + parties + 2 * 3))).direction, 'outgoing');
    assert.equal(JSON.parse(String(argv(args, 11 + parties + 2 * 3 + 1))).direction, 'incoming');
    assert.equal(args.length, 10 + parties + 2 * 3 + 2 + 1 + 1);
    assert.deepEqual(args.slice(-2), ['', 0], 'no sessions check, then no message to publish');
  }
  const checked = encodeCommitCall(keys, { ...commit, sessionsAsRead: { key: userKey('t', 'ben'), ids: [S1, S7] } }, { historyLimit: 200, historyRetentionMs: 9 }, false);
  assert.match(COMMIT_CALL.lua, /local published = tonumber\(ARGV\[#ARGV\]\)\nlocal sessionsAt = #ARGV - 1 - 3 \* published/);
  assert.match(COMMIT_CALL.lua, /local set, m = KEYS\[#KEYS\], tonumber\(ARGV\[sessionsAt\]\)/);
  assert.equal(checked.keys.at(-1), `${G}user-sessions:1:t:ben`, "the callee's session set, last of the keys");
  assert.deepEqual(checked.args.slice(-4), [S1, S7, 2, 0], 'the ids read, then their count, then no message');
  oneSlot(checked.keys);

  // Messages to publish: each channel and the text around the call after the sessions check, their number last of all.
  const channel = `p:io#/#s:{g${groupOf('t')}}${S1}#`;
  const publishing = encodeCommitCall(
    keys,
    { ...commit, sessionsAsRead: { key: userKey('t', 'ben'), ids: [S7] }, publish: [{ channel, before: '[1,', after: ']' }, { channel, before: '[2,', after: ']' }] },
    { historyLimit: 200, historyRetentionMs: 9 },
    false,
  );
  assert.deepEqual(publishing.args.slice(-9), [S7, 1, channel, '[1,', ']', channel, '[2,', ']', 2]);
  assert.match(COMMIT_CALL.lua, /local sessionsAt = #ARGV - 1 - 3 \* published/);
  assert.match(COMMIT_CALL.lua, /for i = sessionsAt \+ 1, #ARGV - 1, 3 do\n {2}redis\.call\('SPUBLISH', ARGV\[i\], ARGV\[i \+ 1\] \.\. ARGV\[2\] \.\. ARGV\[i \+ 2\]\)/);
  assert.deepEqual(publishing.keys, checked.keys, 'a channel is no key');
  assert.throws(
    () => encodeCommitCall(keys, { ...commit, publish: [{ channel: 'p:io#/#s:{g99}x#', before: '[', after: ']' }] }, { historyLimit: 1, historyRetentionMs: 1 }, false),
    /cannot publish on p:io#\/#s:\{g99\}x#: not in its key group/,
  );
  assert.throws(() => encodeCommitCall(keys, { ...commit, timer: { op: 'unschedule', kind: 'ring', id: ringTimerId('another', 'c1' as CallId) } }, { historyLimit: 1, historyRetentionMs: 1 }, false), /key group/);
});

const session = (patch: Partial<SessionRecord> = {}): SessionRecord => ({
  id: S1,
  tenant: 't',
  userId: 'ann' as UserId,
  name: 'Ann',
  contacts: null,
  nodeId: 'n1',
  connected: true,
  graceUntil: null,
  resumes: 0,
  resumeWindowStart: 0,
  createdAt: 0,
  ...patch,
});

test('the session scripts: the cap, the node guesses and the record as read where the Lua reads them', () => {
  assert.match(ADD_SESSION.lua, /prune\(KEYS\[2\], 6, 9\)/);
  assert.match(ADD_SESSION.lua, /tonumber\(ARGV\[8\]\)/);
  const add = encodeAddSession(keys, session(), { was: 'n0', members: [S7], maxSessions: 3, safetyMs: 5 });
  assert.deepEqual(add.keys, [`${G}session:${S1}`, `${G}user-sessions:1:t:ann`, `${G}online:1:t`, `${G}node-sessions:n1`, `${G}node-sessions:n0`, `${G}session:${S7}`]);
  oneSlot(add.keys);
  assert.deepEqual([argv(add.args, 1), argv(add.args, 3), argv(add.args, 4), argv(add.args, 5), argv(add.args, 6), argv(add.args, 7), argv(add.args, 8), argv(add.args, 9)], [S1, 'ann', 'Ann', '', 'n1', 'n0', 3, S7]);
  assert.equal(argv(encodeAddSession(keys, session(), { was: 'n1', members: [], maxSessions: Infinity, safetyMs: 5 }).args, 8), '', 'no cap');

  const lost = session({ connected: false, graceUntil: 100 });
  assert.match(UPDATE_SESSION.lua, /ARGV\[6\] ~= '' and old ~= ARGV\[6\]/);
  const update = encodeUpdateSession(keys, lost, { was: 'n1', expected: session(), safetyMs: 5 });
  assert.deepEqual(update.keys, [`${G}session:${S1}`, `${G}node-sessions:n1`, `${G}node-sessions:n1`]);
  assert.deepEqual(update.args.slice(1), [105, S1, 'n1', 'n1', JSON.stringify(session())], 'a lost session expires its safety margin after its grace');

  assert.match(REMOVE_SESSION.lua, /ARGV\[4\] ~= '' and raw ~= ARGV\[4\]/);
  assert.match(REMOVE_SESSION.lua, /prune\(KEYS\[2\], 5, 5\)/);
  const remove = encodeRemoveSession(keys, lost, { was: 'n1', others: [S7], expected: undefined });
  assert.deepEqual(remove.keys, [`${G}session:${S1}`, `${G}user-sessions:1:t:ann`, `${G}online:1:t`, `${G}node-sessions:n1`, `${G}session:${S7}`]);
  oneSlot(remove.keys);
  assert.deepEqual(remove.args, [S1, 'ann', 'n1', '', S7]);
});

test('ADMIT: a bucket as its interval and tolerance, a window as its limit and length', () => {
  assert.match(ADMIT.lua, /ARGV\[1\] == 'bucket'/);
  assert.deepEqual(encodeAdmit(keys, 'k', { kind: 'bucket', burst: 10, perSecond: 2 }, 7), { keys: ['p:rate:k'], args: ['bucket', 7, 500, 4500] });
  assert.deepEqual(encodeAdmit(keys, 'k', { kind: 'window', limit: 6, windowMs: 60_000 }, 7), { keys: ['p:rate:k'], args: ['window', 7, 6, 60_000] });
});
