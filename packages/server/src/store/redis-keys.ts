/**
 * The one place that knows Switchboard's Redis layout: every key name and
 * every Lua script. Each key says what it holds and what bounds its life —
 * a TTL, or an owner that deletes it.
 *
 * Scripts take every key they touch through KEYS (none is built inside Lua,
 * but for `SESSIONS_OF`, which reads the records a set names, as `SORT … GET`
 * does), and every key one script takes is in one key group (`KEY_GROUPS`): one
 * Redis Cluster hash slot. Scripts never re-encode JSON: records are opaque strings
 * (Lua's cjson would turn `[]` into `{}`). The session scripts decode a stored
 * session only to read its `nodeId` (see `NODE_OF`); the node set that goes
 * with it comes through KEYS from the caller's guess, and a wrong guess is
 * answered with `{ 'moved', <nodeId> }` for the caller to try again.
 */
import { createHash } from 'node:crypto';
import type { CallId, SessionId } from '@switchboard/protocol';
import type { UserKey } from '../calls/types.js';
import { callKey, parseRingTimerId, splitKey, userKey } from '../calls/types.js';
import { bucketParams, windowParams } from './rate-rules.js';
import type { CallCommit, RateRule, SessionRecord, TimerKind } from './types.js';

const userKeyOf = (session: SessionRecord): UserKey => userKey(session.tenant, session.userId);

/** The default key prefix. */
export const DEFAULT_PREFIX = 'sb:';

/**
 * Key groups: every tenant's state lives in one of `KEY_GROUPS` groups, each
 * one Redis Cluster hash slot (`{g<n>}`). A call, the claims of its parties,
 * their history, their sessions, the tenant's presence and the group's timers
 * share a slot, so every script stays one atomic round trip; different
 * tenants spread over the groups, and the groups over the cluster's masters.
 * Keys of no tenant (rate limits, node heartbeats sharded by node) are not
 * grouped. A single Redis ignores the tags. See docs/scaling.md, "Key layout".
 */
export const KEY_GROUPS = 16;

/** FNV-1a, 32 bits: a stable, fast spread of tenant names over the groups. */
function fnv1a(text: string): number {
  let hash = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) {
    hash ^= text.charCodeAt(i);
    hash = Math.imul(hash, 0x01000193);
  }
  return hash >>> 0;
}

const groups = new Map<string, number>();

/** The key group of a tenant (cached: tenants are few, and the map is dropped should it grow past 10,000). */
export function groupOf(tenant: string): number {
  let group = groups.get(tenant);
  if (group === undefined) {
    if (groups.size >= 10_000) groups.clear();
    group = fnv1a(tenant) % KEY_GROUPS;
    groups.set(tenant, group);
  }
  return group;
}

/**
 * A session id names its tenant's key group (`g<n>.<random>`), so the store
 * finds a session from its id alone (a resume, a grace timer). The rest is
 * the random part; the protocol only asks for an opaque string.
 */
export function sessionIdPrefix(tenant: string): string {
  return `g${groupOf(tenant)}.`;
}

/** The key group a session id names; an id without one (made elsewhere, by a test) is in the default tenant's group. */
export function groupOfSession(id: string): number {
  const dot = id.indexOf('.');
  if (dot > 1 && dot <= 3 && id.charCodeAt(0) === 103 /* g */) {
    const group = Number(id.slice(1, dot));
    if (Number.isInteger(group) && group >= 0 && group < KEY_GROUPS) return group;
  }
  return groupOf('');
}

/** The key group of a timer: a ring timer's call's, a grace timer's session's. */
export function groupOfTimer(kind: TimerKind, id: string): number {
  return kind === 'ring' ? groupOf(parseRingTimerId(id).tenant) : groupOfSession(id);
}

/** A node's heartbeat shard: nodes spread over the groups' `nodes` keys too. */
export function groupOfNode(nodeId: string): number {
  return fnv1a(nodeId) % KEY_GROUPS;
}

/** The hash tag of a key group (`{g<n>}`): a key or a channel that carries it is in the group's slot. */
export function groupTag(group: number): string {
  return `{g${group}}`;
}

/** What Redis Cluster hashes of a key or channel: the content of its first hash tag, else all of it. */
function slotTagOf(name: string): string {
  const open = name.indexOf('{');
  const close = open < 0 ? -1 : name.indexOf('}', open + 1);
  return close > open + 1 ? name.slice(open + 1, close) : name;
}

export function redisKeys(prefix: string) {
  const tag = (group: number) => `${prefix}${groupTag(group)}:`;
  const ofTenant = (tenant: string) => tag(groupOf(tenant));
  const ofUser = (user: UserKey) => ofTenant(splitUserKey(user).tenant);
  return {
    /**
     * HASH `v` → version, `d` → CallRecord JSON, and `q:<segment>` → a
     * quality summary saved beside it (`SAVE_QUALITY`; they share its life).
     * Ringing and active calls: no TTL; the owner is the transition that ends
     * the call, which commits it with `ttlMs` (a tombstone with a PX TTL).
     * A call id is the tenant's: the same id in two tenants is two calls.
     */
    call: (tenant: string, id: CallId) => `${ofTenant(tenant)}call:${callKey(tenant, id)}`,
    /**
     * STRING → the CallId the user is in (ringing or active).
     * Owner: the commit that ends that call releases it (DEL when it still names the call).
     */
    claim: (user: UserKey) => `${ofUser(user)}claim:${user}`,
    /**
     * STRING → SessionRecord JSON, in the group its id names (`sessionIdPrefix`).
     * Owner: `removeSession`. Safety TTL while the session is disconnected:
     * it vanishes `sessionSafetyMs` after its grace ends if nobody removed it;
     * no TTL while connected (the node carrying it owns it).
     */
    session: (id: SessionId) => `${tag(groupOfSession(id))}session:${id}`,
    /** The session keys of a group as a `SORT … GET` pattern (`*` is the id). */
    sessionPattern: (group: number) => `${tag(group)}session:*`,
    /** What a session key of a group starts with (the id follows): for `SESSIONS_OF`. */
    sessionPrefix: (group: number) => `${tag(group)}session:`,
    /**
     * SET of the user's SessionIds.
     * Owner: `removeSession` (Redis drops the set with its last member);
     * members whose session key expired are pruned by addSession/removeSession/sessionsOf.
     */
    userSessions: (user: UserKey) => `${ofUser(user)}user-sessions:${user}`,
    /**
     * HASH userId → display name: the tenant's users with at least one session.
     * Owner: `removeSession` of a user's last session (HDEL; Redis drops the empty hash), and the same pruning.
     */
    online: (tenant: string) => `${ofTenant(tenant)}online:${tenant.length}:${tenant}`,
    /**
     * ZSET member `<seq>:<HistoryEntry JSON>`, score seq: the user's newest
     * `historyLimit` entries. TTL: `historyRetentionMs`, refreshed on every append.
     */
    history: (user: UserKey) => `${ofUser(user)}history:${user}`,
    /**
     * STRING counter (INCR) behind the history cursors of a group's users
     * (a cursor orders one user's entries only). One key of constant size per
     * group, never deleted: a reset could hand out a cursor twice.
     */
    historySeq: (group: number) => `${tag(group)}history-seq`,
    /**
     * ZSET member `<kind>:<id>`, score due time (epoch ms): the timers of a
     * group (`groupOfTimer`), one key per group, so a call's ring timer is
     * written by the commit that makes the call and sweeps spread over the groups.
     * A claim (claimTimer/claimDue) does not remove a member: it leases it by moving
     * its score to the lease's end, so the timer fires again if its claimer dies.
     * Members are owned by `completeTimer` (after a claim; it removes the member
     * unless it was rescheduled meanwhile) and `unschedule` (or a commit's
     * `unschedule` timer change, see `COMMIT_CALL`).
     */
    timers: (group: number) => `${tag(group)}timers`,
    /**
     * ZSET member nodeId, score alive-until (epoch ms), written by every `beat`:
     * one key per group, a node's beats in the one `groupOfNode` names. Its
     * members are owned by `completeDeadNode` (a node that stopped beating is
     * leased by whoever claims it dead, as timers are, and removed once its
     * sessions are handed over) and `removeNode` (a node that stops cleanly).
     */
    nodes: (group: number) => `${tag(group)}nodes`,
    /**
     * SET of the SessionIds of one group whose record names the node (`nodeId`), connected or in grace.
     * Owner: the session scripts — addSession adds, updateSession moves an id
     * when its `nodeId` changes, removeSession removes it; Redis drops the set
     * with its last member. Members whose session key expired (its safety TTL)
     * are pruned by `sessionsOfNode`: the one way a member outlives its session,
     * so the set of a node that is never read again keeps at most those.
     */
    nodeSessions: (group: number, nodeId: string) => `${tag(group)}node-sessions:${nodeId}`,
    /**
     * STRING (a token bucket's next arrival time) or LIST (a sliding log of
     * event times) behind one shared rate limit (`CallStore.admit`). No tag:
     * limits spread over the cluster by their own names.
     * TTL: as long as the limit remembers anything, set by every write of `ADMIT`.
     */
    rate: (key: string) => `${prefix}rate:${key}`,
  };
}

export type RedisKeys = ReturnType<typeof redisKeys>;

export function timerMember(kind: TimerKind, id: string): string {
  return `${kind}:${id}`;
}

export function parseTimerMember(member: string): { kind: TimerKind; id: string } {
  const at = member.indexOf(':');
  return { kind: member.slice(0, at) as TimerKind, id: member.slice(at + 1) };
}

/** A `UserKey` taken apart (`<tenant length>:<tenant>:<userId>`, see `userKey`). */
export function splitUserKey(key: UserKey): { tenant: string; userId: string } {
  const { tenant, id } = splitKey(key);
  return { tenant, userId: id };
}

export interface LuaScript {
  readonly name: string;
  readonly lua: string;
  /** SHA1 of `lua`, for EVALSHA. */
  readonly sha: string;
}

function script(name: string, lua: string): LuaScript {
  return { name, lua, sha: createHash('sha1').update(lua).digest('hex') };
}

/*
 * History appending, shared by `COMMIT_CALL` and `APPEND_HISTORY`: one entry
 * per key from KEYS[firstKey..], its JSON at ARGV[firstArg..], each under the
 * next number of `seqKey`; then each history touched is cut to its newest
 * `limit` entries and its retention (ms) refreshed, once. One script, so a
 * user's entries are ordered exactly as their sequence numbers.
 */
const HISTORY = `
local function appendHistory(seqKey, firstKey, lastKey, firstArg, limit, retention)
  local seen, touched = {}, {}
  for i = firstKey, lastKey do
    local seq = redis.call('INCR', seqKey)
    redis.call('ZADD', KEYS[i], seq, seq .. ':' .. ARGV[firstArg + i - firstKey])
    if not seen[KEYS[i]] then
      seen[KEYS[i]] = true
      touched[#touched + 1] = KEYS[i]
    end
  end
  for _, key in ipairs(touched) do
    redis.call('ZREMRANGEBYRANK', key, 0, -1 - tonumber(limit))
    redis.call('PEXPIRE', key, retention)
  end
  return lastKey - firstKey + 1
end
`;

/**
 * Writes a call and its claims only if the call's version and every `take`
 * claim are what the caller read, and with them the commit's timer change and
 * history records, if any, and, when given, the callee's sessions are still
 * exactly those the caller read (`sessionsAsRead`); then, if asked, counts the
 * tenant's online users other than the call's parties (`commitCallCounting`).
 * KEYS[1] call, KEYS[2] timers, KEYS[3] history sequence, KEYS[4] the call
 * tenant's online hash (the last three passed even when unused), KEYS[5..4+n]
 * the n claim keys, then one history key per record, then, with a sessions
 * check, the callee's session set.
 * ARGV[1] expected version (0: must not exist), ARGV[2] call JSON,
 * ARGV[3] ttl ms ('' = none), ARGV[4] timer op ('' = none, 'schedule',
 * 'unschedule'), ARGV[5] timer member ('' = none), ARGV[6] due at ms
 * ('' unless scheduling), ARGV[7] n, ARGV[8] history limit, ARGV[9] history
 * retention ms, ARGV[10] m, the number of distinct parties ('' = no count),
 * ARGV[11..10+m] their user ids, then per claim from ARGV[11+m]: op
 * ('take'|'release'), expected holder ('' = none, '=<callId>' = that call),
 * callId to write/release; then one HistoryEntry JSON per history key; then
 * the session ids read and their count ('' = no sessions check); then, per
 * message the commit publishes, its channel and the text before and after
 * the call JSON (ARGV[2]) in it; and last of all the number of those
 * messages (see `CallCommit.publish`: each channel in this call's slot,
 * published with SPUBLISH once everything is written).
 * Returns 1 when written without a count, {1, others} when written with one,
 * 0 when anything read had changed (nothing written, nothing published).
 * The timer is written first of all writes: should Redis refuse its score,
 * the script stops before anything else changed (a script's writes are not
 * rolled back).
 */
export const COMMIT_CALL = script(
  'commitCall',
  `${HISTORY}
local version = tonumber(redis.call('HGET', KEYS[1], 'v') or '0')
if version ~= tonumber(ARGV[1]) then return 0 end
local claims = tonumber(ARGV[7])
local parties = tonumber(ARGV[10]) or 0
for i = 1, claims do
  local base = 10 + parties + (i - 1) * 3
  if ARGV[base + 1] == 'take' then
    local held = redis.call('GET', KEYS[4 + i])
    local expect = ARGV[base + 2]
    if expect == '' then
      if held then return 0 end
    elseif held ~= string.sub(expect, 2) then
      return 0
    end
  end
end
local lastKey = #KEYS
local published = tonumber(ARGV[#ARGV])
local sessionsAt = #ARGV - 1 - 3 * published
if ARGV[sessionsAt] ~= '' then
  local set, m = KEYS[#KEYS], tonumber(ARGV[sessionsAt])
  lastKey = #KEYS - 1
  if redis.call('SCARD', set) ~= m then return 0 end
  for i = sessionsAt - m, sessionsAt - 1 do
    if redis.call('SISMEMBER', set, ARGV[i]) == 0 then return 0 end
  end
end
if ARGV[4] == 'schedule' then
  redis.call('ZADD', KEYS[2], ARGV[6], ARGV[5])
elseif ARGV[4] == 'unschedule' then
  redis.call('ZREM', KEYS[2], ARGV[5])
end
for i = 1, claims do
  local base = 10 + parties + (i - 1) * 3
  local callId = ARGV[base + 3]
  if ARGV[base + 1] == 'take' then
    redis.call('SET', KEYS[4 + i], callId)
  elseif redis.call('GET', KEYS[4 + i]) == callId then
    redis.call('DEL', KEYS[4 + i])
  end
end
redis.call('HSET', KEYS[1], 'v', version + 1, 'd', ARGV[2])
if ARGV[3] == '' then
  redis.call('PERSIST', KEYS[1])
else
  redis.call('PEXPIRE', KEYS[1], ARGV[3])
end
appendHistory(KEYS[3], 5 + claims, lastKey, 11 + parties + claims * 3, ARGV[8], ARGV[9])
for i = sessionsAt + 1, #ARGV - 1, 3 do
  redis.call('SPUBLISH', ARGV[i], ARGV[i + 1] .. ARGV[2] .. ARGV[i + 2])
end
if ARGV[10] == '' then return 1 end
local others = redis.call('HLEN', KEYS[4])
for i = 1, parties do
  others = others - redis.call('HEXISTS', KEYS[4], ARGV[10 + i])
end
return {1, others}
`,
);

/** What a script is called with. */
export interface ScriptCall {
  keys: string[];
  args: (string | number)[];
}

/** History limits every history append carries. */
export interface HistoryLimits {
  historyLimit: number;
  historyRetentionMs: number;
}

/** KEYS and ARGV of `COMMIT_CALL` for `commit`, laid out as its comment says; with `counting`, the call's distinct parties. */
export function encodeCommitCall(keys: RedisKeys, commit: CallCommit, limits: HistoryLimits, counting: boolean): ScriptCall {
  const { timer } = commit;
  if (timer && groupOfTimer(timer.kind, timer.id) !== groupOf(commit.call.tenant)) {
    throw new Error(`the ${timer.kind} timer ${timer.id} is not in the key group of call ${commit.call.id}'s tenant: a commit writes only its own group`);
  }
  const args: (string | number)[] = [
    commit.expectVersion,
    JSON.stringify(commit.call),
    commit.ttlMs === null ? '' : Math.max(0, Math.ceil(commit.ttlMs)),
    timer?.op ?? '',
    timer ? timerMember(timer.kind, timer.id) : '',
    timer?.op === 'schedule' ? timer.dueAt : '',
    commit.claims.length,
    limits.historyLimit,
    limits.historyRetentionMs,
  ];
  if (!counting) args.push('');
  else {
    const parties = [...new Set([commit.call.caller.userId, commit.call.callee.userId])];
    args.push(parties.length, ...parties);
  }
  for (const claim of commit.claims) {
    if (claim.op === 'take') args.push('take', claim.expect === null ? '' : `=${claim.expect}`, claim.callId);
    else args.push('release', '', claim.callId);
  }
  const history = commit.history ?? [];
  for (const { entry } of history) args.push(JSON.stringify(entry));
  const sessions = commit.sessionsAsRead;
  if (sessions) args.push(...sessions.ids, sessions.ids.length);
  else args.push('');
  const published = commit.publish ?? [];
  for (const { channel, before, after } of published) {
    if (slotTagOf(channel) !== `g${groupOf(commit.call.tenant)}`) throw new Error(`a commit of tenant "${commit.call.tenant}" cannot publish on ${channel}: not in its key group`);
    args.push(channel, before, after);
  }
  args.push(published.length);
  return {
    keys: [
      keys.call(commit.call.tenant, commit.call.id),
      keys.timers(groupOf(commit.call.tenant)),
      keys.historySeq(groupOf(commit.call.tenant)),
      keys.online(commit.call.tenant),
      ...commit.claims.map((c) => keys.claim(c.key)),
      ...history.map((h) => keys.history(h.key)),
      ...(sessions ? [keys.userSessions(sessions.key)] : []),
    ],
    args,
  };
}

/*
 * Session pruning, shared by the session scripts below: a member of a set of
 * SessionIds (a user's or a node's) whose session key has expired (its safety
 * TTL) is dropped. The members to check come from an SMEMBERS read just before,
 * passed as KEYS[first..] with their ids at ARGV[argFirst..]; anything added
 * since is live.
 */
const PRUNE = `
local function prune(set, first, argFirst)
  for i = first, #KEYS do
    if redis.call('EXISTS', KEYS[i]) == 0 then
      redis.call('SREM', set, ARGV[argFirst + i - first])
    end
  end
end
`;

/*
 * The node a stored session record names ('' when it names none). cjson only
 * reads here: the record itself is written back as the caller sent it.
 */
const NODE_OF = `
local function nodeOf(raw)
  local node = cjson.decode(raw).nodeId
  if type(node) ~= 'string' then return '' end
  return node
end
`;

/**
 * KEYS[1] session, KEYS[2] user's session set, KEYS[3] tenant's online hash,
 * KEYS[4] the node set of this record's nodeId, KEYS[5] the node set of the
 * record being replaced, if any (the caller's guess: normally KEYS[4]),
 * KEYS[6..] member session keys.
 * ARGV[1] session id, ARGV[2] session JSON, ARGV[3] userId, ARGV[4] name,
 * ARGV[5] expire-at ms ('' = no TTL), ARGV[6] nodeId, ARGV[7] the guessed
 * nodeId of the record being replaced, ARGV[8] the most sessions the user
 * may have ('' = no cap), ARGV[9..] member ids.
 * Returns how many sessions the user has now (1 = this is the first);
 * { 'full', sessions } when a new session would pass the cap (counted after
 * pruning, nothing written); or { 'moved', nodeId } when a record with this
 * id exists and names another node than guessed (nothing written: call again
 * with that node's set).
 */
export const ADD_SESSION = script(
  'addSession',
  `${PRUNE}${NODE_OF}
local old = redis.call('GET', KEYS[1])
if old then
  local was = nodeOf(old)
  if was ~= ARGV[7] then return { 'moved', was } end
  if was ~= ARGV[6] then redis.call('SREM', KEYS[5], ARGV[1]) end
end
prune(KEYS[2], 6, 9)
if not old and ARGV[8] ~= '' then
  local held = redis.call('SCARD', KEYS[2])
  if held >= tonumber(ARGV[8]) then return { 'full', held } end
end
redis.call('SET', KEYS[1], ARGV[2])
if ARGV[5] ~= '' then redis.call('PEXPIREAT', KEYS[1], ARGV[5]) end
redis.call('SADD', KEYS[2], ARGV[1])
redis.call('HSET', KEYS[3], ARGV[3], ARGV[4])
redis.call('SADD', KEYS[4], ARGV[1])
return redis.call('SCARD', KEYS[2])
`,
);

/**
 * KEYS[1] session, KEYS[2] the node set of the stored record's nodeId (the
 * caller's guess), KEYS[3] the node set of the new record's nodeId.
 * ARGV[1] session JSON, ARGV[2] expire-at ms ('' = no TTL), ARGV[3] session id,
 * ARGV[4] the guessed nodeId of the stored record, ARGV[5] the new record's nodeId,
 * ARGV[6] the stored record's JSON as the caller read it ('' = whatever it is).
 * Overwrites a session that still exists (SET drops the old TTL) and moves its
 * id to the new node's set when `nodeId` changes. Returns 1; 0 when the session
 * is gone or is no longer ARGV[6]; { 'moved', nodeId } when the stored record
 * names another node than guessed (nothing written: call again with that node's set).
 */
export const UPDATE_SESSION = script(
  'updateSession',
  `${NODE_OF}
local old = redis.call('GET', KEYS[1])
if not old then return 0 end
if ARGV[6] ~= '' and old ~= ARGV[6] then return 0 end
local was = nodeOf(old)
if was ~= ARGV[4] then return { 'moved', was } end
redis.call('SET', KEYS[1], ARGV[1])
if ARGV[2] ~= '' then redis.call('PEXPIREAT', KEYS[1], ARGV[2]) end
if was ~= ARGV[5] then redis.call('SREM', KEYS[2], ARGV[3]) end
redis.call('SADD', KEYS[3], ARGV[3])
return 1
`,
);

/**
 * KEYS[1] session, KEYS[2] user's session set, KEYS[3] tenant's online hash,
 * KEYS[4] the node set of the stored record's nodeId (the caller's guess), KEYS[5..] member session keys.
 * ARGV[1] session id, ARGV[2] userId, ARGV[3] the guessed nodeId, ARGV[4] the
 * stored record's JSON as the caller read it ('' = whatever it is), ARGV[5..] member ids.
 * Returns nil when the session is gone or is no longer ARGV[4]; { 'moved', nodeId }
 * when it names another node than guessed (nothing removed: call again with
 * that node's set); else { 'removed', session JSON, sessions the user has left }.
 */
export const REMOVE_SESSION = script(
  'removeSession',
  `${PRUNE}${NODE_OF}
local raw = redis.call('GET', KEYS[1])
if not raw then return nil end
if ARGV[4] ~= '' and raw ~= ARGV[4] then return nil end
local was = nodeOf(raw)
if was ~= ARGV[3] then return { 'moved', was } end
redis.call('DEL', KEYS[1])
redis.call('SREM', KEYS[2], ARGV[1])
redis.call('SREM', KEYS[4], ARGV[1])
prune(KEYS[2], 5, 5)
local left = redis.call('SCARD', KEYS[2])
if left == 0 then redis.call('HDEL', KEYS[3], ARGV[2]) end
return { 'removed', raw, left }
`,
);

/** When a stored session's key expires ('' = never): only a disconnected one, `safetyMs` after its grace. */
function expireAt(session: SessionRecord, safetyMs: number): number | '' {
  return session.connected || session.graceUntil === null ? '' : session.graceUntil + safetyMs;
}

/**
 * KEYS and ARGV of `ADD_SESSION`: `members` are the user's session ids as
 * just read (to prune), `was` the guessed node of a record with this id,
 * `maxSessions` the cap (none when undefined or infinite).
 */
export function encodeAddSession(
  keys: RedisKeys,
  session: SessionRecord,
  at: { was: string; members: readonly SessionId[]; maxSessions: number | undefined; safetyMs: number },
): ScriptCall {
  const user = userKeyOf(session);
  const cap = at.maxSessions === undefined || at.maxSessions === Infinity ? '' : at.maxSessions;
  return {
    keys: [
      keys.session(session.id),
      keys.userSessions(user),
      keys.online(session.tenant),
      keys.nodeSessions(groupOfSession(session.id), session.nodeId),
      keys.nodeSessions(groupOfSession(session.id), at.was),
      ...at.members.map(keys.session),
    ],
    args: [session.id, JSON.stringify(session), session.userId, session.name, expireAt(session, at.safetyMs), session.nodeId, at.was, cap, ...at.members],
  };
}

/** KEYS and ARGV of `UPDATE_SESSION`: `was` the guessed node of the stored record, `expected` the record as read (if any). */
export function encodeUpdateSession(
  keys: RedisKeys,
  session: SessionRecord,
  at: { was: string; expected: SessionRecord | undefined; safetyMs: number },
): ScriptCall {
  return {
    keys: [keys.session(session.id), keys.nodeSessions(groupOfSession(session.id), at.was), keys.nodeSessions(groupOfSession(session.id), session.nodeId)],
    args: [JSON.stringify(session), expireAt(session, at.safetyMs), session.id, at.was, session.nodeId, at.expected ? JSON.stringify(at.expected) : ''],
  };
}

/**
 * KEYS and ARGV of `REMOVE_SESSION` for the session `read` (its user and
 * tenant name the keys): `others` the user's other session ids as just read,
 * `expected` the record the removal is conditional on (if any).
 */
export function encodeRemoveSession(
  keys: RedisKeys,
  read: SessionRecord,
  at: { was: string; others: readonly SessionId[]; expected: SessionRecord | undefined },
): ScriptCall {
  return {
    keys: [keys.session(read.id), keys.userSessions(userKeyOf(read)), keys.online(read.tenant), keys.nodeSessions(groupOfSession(read.id), at.was), ...at.others.map(keys.session)],
    args: [read.id, read.userId, at.was, at.expected ? JSON.stringify(at.expected) : '', ...at.others],
  };
}

/**
 * A user's session ids, each followed by its record (nil when its key has
 * expired): `SORT … GET` as one script, where SORT cannot (a cluster refuses
 * its GET). KEYS[1] the user's session set; ARGV[1] the session key prefix of
 * its group (`sessionPrefix`). The record keys are built here from the
 * members, the one exception to "every key through KEYS": they cannot be
 * known before the set is read, and they are in the set's slot, since
 * `addSession` only adds a session whose id names its tenant's group.
 * Read-only.
 */
export const SESSIONS_OF = script(
  'sessionsOf',
  `local ids = redis.call('SMEMBERS', KEYS[1])
local out = {}
for i = 1, #ids do
  out[2 * i - 1] = ids[i]
  out[2 * i] = redis.call('GET', ARGV[1] .. ids[i])
end
return out
`,
);

/**
 * KEYS[1] user's session set, KEYS[2] tenant's online hash, KEYS[3..] session keys found missing.
 * ARGV[1] userId, ARGV[2..] their ids. Returns how many sessions the user has left.
 */
export const PRUNE_SESSIONS = script(
  'pruneSessions',
  `${PRUNE}
prune(KEYS[1], 3, 2)
local left = redis.call('SCARD', KEYS[1])
if left == 0 then redis.call('HDEL', KEYS[2], ARGV[1]) end
return left
`,
);

/**
 * KEYS[1] a node's session set, KEYS[2..] session keys found missing. ARGV[1..] their ids.
 * Drops the ids whose session key is still gone (Redis drops the set with its last member).
 */
export const PRUNE_NODE_SESSIONS = script(
  'pruneNodeSessions',
  `${PRUNE}
prune(KEYS[1], 2, 1)
return 0
`,
);

/**
 * KEYS[1] history sequence, KEYS[2..] one user's history per entry (a user
 * with several entries is passed once per entry).
 * ARGV[1] entries kept, ARGV[2] retention ms, ARGV[3..] entry JSON, ARGV[1 + i] going to KEYS[i].
 * Appends the entries in order, each with the next sequence number, then trims
 * and refreshes the retention of each history touched, once. One script, so a
 * user's entries are ordered exactly as their sequence numbers (a call's own
 * records usually ride on the commit that ends it instead, see `COMMIT_CALL`).
 * Returns how many were appended.
 */
export const APPEND_HISTORY = script(
  'appendHistory',
  `${HISTORY}
return appendHistory(KEYS[1], 2, #KEYS, 3, ARGV[1], ARGV[2])
`,
);

/**
 * KEYS[1] the limit's key. ARGV[1] 'bucket' or 'window', ARGV[2] now (ms).
 * bucket (GCRA, see rate-rules.ts): ARGV[3] interval ms, ARGV[4] tolerance ms;
 * the key holds the theoretical arrival time of the next event.
 * window: ARGV[3] limit, ARGV[4] window ms; the key is a LIST of the times
 * of the last `limit` events admitted, newest first.
 * Returns 1 when admitted (and counted), 0 when over the limit (nothing written).
 */
export const ADMIT = script(
  'admit',
  `
local now = tonumber(ARGV[2])
if ARGV[1] == 'bucket' then
  local interval, tolerance = tonumber(ARGV[3]), tonumber(ARGV[4])
  local tat = tonumber(redis.call('GET', KEYS[1]) or ARGV[2])
  if tat < now then tat = now end
  if tat - now > tolerance then return 0 end
  redis.call('SET', KEYS[1], tostring(tat + interval), 'PX', math.max(1, math.ceil(tat + interval - now)))
  return 1
end
local limit, window = tonumber(ARGV[3]), tonumber(ARGV[4])
local oldest = redis.call('LINDEX', KEYS[1], limit - 1)
if oldest and tonumber(oldest) > now - window then return 0 end
redis.call('LPUSH', KEYS[1], ARGV[2])
redis.call('LTRIM', KEYS[1], 0, limit - 1)
redis.call('PEXPIRE', KEYS[1], window)
return 1
`,
);

/** KEYS and ARGV of `ADMIT` for one event at `now` against `rule` (see rate-rules.ts for the arithmetic). */
export function encodeAdmit(keys: RedisKeys, key: string, rule: RateRule, now: number): ScriptCall {
  if (rule.kind === 'bucket') {
    const { intervalMs, toleranceMs } = bucketParams(rule);
    return { keys: [keys.rate(key)], args: ['bucket', now, intervalMs, toleranceMs] };
  }
  const { limit, windowMs } = windowParams(rule);
  return { keys: [keys.rate(key)], args: ['window', now, limit, windowMs] };
}

/**
 * KEYS[1] timers. ARGV[1] member, ARGV[2] now, ARGV[3] lease end.
 * Leases the timer if it is due (its due time moves to the lease end);
 * 1 for exactly one caller until the lease runs out.
 */
export const CLAIM_TIMER = script(
  'claimTimer',
  `
local due = redis.call('ZSCORE', KEYS[1], ARGV[1])
if due and tonumber(due) <= tonumber(ARGV[2]) then
  redis.call('ZADD', KEYS[1], ARGV[3], ARGV[1])
  return 1
end
return 0
`,
);

/**
 * KEYS[1] timers. ARGV[1] now, ARGV[2] max, ARGV[3] lease end.
 * Leases and returns up to max due members, longest overdue first; each is
 * handed out once until its lease runs out.
 */
export const CLAIM_DUE = script(
  'claimDue',
  `
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, ARGV[2])
for _, member in ipairs(due) do redis.call('ZADD', KEYS[1], ARGV[3], member) end
return due
`,
);

/**
 * KEYS[1] timers (or nodes). ARGV[1] member, ARGV[2] lease end.
 * Removes the member only if its score is still the lease end: a timer
 * rescheduled meanwhile keeps its new due time, a node that beat since stays alive. 1 when removed.
 */
export const COMPLETE_LEASE = script(
  'completeLease',
  `
local due = redis.call('ZSCORE', KEYS[1], ARGV[1])
if due and tonumber(due) == tonumber(ARGV[2]) then
  redis.call('ZREM', KEYS[1], ARGV[1])
  return 1
end
return 0
`,
);

/**
 * A quality summary saved beside a call's record, only while the record is
 * there (HSET alone would make a key with no TTL for a call already gone).
 * KEYS[1] call. ARGV[1] field (`q:<segment>`), ARGV[2] summary JSON.
 */
export const SAVE_QUALITY = script(
  'saveQuality',
  `
if redis.call('EXISTS', KEYS[1]) == 1 then redis.call('HSET', KEYS[1], ARGV[1], ARGV[2]) end
return 0
`,
);

/** The field of a quality summary in a call's hash. */
export const QUALITY_FIELD_PREFIX = 'q:';

/** KEYS[1] the key whose master's clock is asked (a cluster routes by it). Returns TIME: seconds, microseconds. */
export const CLOCK = script('clock', `return redis.call('TIME')`);

/**
 * KEYS[1] nodes. ARGV[1] now, ARGV[2] lease end.
 * Leases and returns the nodes whose alive-until is before now: each dead
 * node goes to one caller until its lease runs out (`COMPLETE_LEASE` removes it).
 */
export const CLAIM_DEAD_NODES = script(
  'claimDeadNodes',
  `
local dead = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', '(' .. ARGV[1])
for _, node in ipairs(dead) do redis.call('ZADD', KEYS[1], ARGV[2], node) end
return dead
`,
);
