/**
 * The shared store: state in Redis, so every node that shares it sees the same
 * calls, claims, sessions, presence, history and timers. Each write that must
 * be atomic is one Lua script (see `redis-keys.ts`, the only file that knows
 * key names and scripts). Commands fail fast while Redis is away — no offline
 * queue, a per-command timeout — so the transport answers `internal` instead
 * of hanging, and the client reconnects by itself when Redis returns.
 */
import { ReplyError, type Cluster } from 'ioredis';
import { RedisConnection } from './redis-connection.js';
import type { RedisClient, RedisTarget } from './redis-target.js';

export { failFastOptions } from './redis-connection.js';
import type { CallId, QualitySummary, SessionId, UserId, UserRef } from '@switchboard/protocol';
import type { CallRecord, UserKey } from '../calls/types.js';
import { userKey } from '../calls/types.js';
import {
  ADD_SESSION,
  ADMIT,
  APPEND_HISTORY,
  encodeAddSession,
  encodeAdmit,
  encodeCommitCall,
  encodeRemoveSession,
  encodeUpdateSession,
  CLAIM_DEAD_NODES,
  CLOCK,
  groupOf,
  groupOfNode,
  groupOfSession,
  groupOfTimer,
  KEY_GROUPS,
  QUALITY_FIELD_PREFIX,
  SAVE_QUALITY,
  CLAIM_DUE,
  CLAIM_TIMER,
  COMMIT_CALL,
  COMPLETE_LEASE,
  DEFAULT_PREFIX,
  type LuaScript,
  parseTimerMember,
  PRUNE_NODE_SESSIONS,
  PRUNE_SESSIONS,
  redisKeys,
  type RedisKeys,
  REMOVE_SESSION,
  type ScriptCall,
  SESSIONS_OF,
  splitUserKey,
  timerMember,
  UPDATE_SESSION,
} from './redis-keys.js';
import { DEFAULT_HISTORY_LIMIT } from './types.js';
import type {
  CallCommit,
  CallStore,
  ClaimedNode,
  ClaimedTimer,
  HistoryAppend,
  HistoryEntry,
  HistoryPage,
  RateRule,
  SessionRecord,
  TimerKind,
  Versioned,
} from './types.js';
import { checkDueAt, leaseEnd } from './timer-rules.js';

export interface RedisStoreOptions {
  /** Redis URL (`redis://[:password@]host:port[/db]`, `rediss://` for TLS); the store opens and closes its own connection. */
  url?: string;
  /** Or to this target (one Redis, or a master behind Sentinel). */
  target?: RedisTarget;
  /** A connection owned by the caller (not closed by `close()`); give it the fail-fast options of `failFastOptions`. */
  client?: RedisClient;
  /** Prefix of every key; no hash tag (`{…}`): the keys carry their own (see `KEY_GROUPS`). @default 'sb:' */
  prefix?: string;
  /** Newest history entries kept per user. @default 200 */
  historyLimit?: number;
  /** A user's history is dropped this long after their last call. @default 30 days */
  historyRetentionMs?: number;
  /** A disconnected session nobody removed vanishes this long after its grace ends. @default 24 hours */
  sessionSafetyMs?: number;
  /** A command with no answer within this long rejects. @default 2000 */
  commandTimeoutMs?: number;
  /** Called with connection errors (ioredis emits them while it reconnects). @default ignore them */
  onError?: (err: Error) => void;
}

/** History outlives a user's last call this long. */
const DEFAULT_HISTORY_RETENTION_MS = 30 * 24 * 3600_000;
/** Far past any grace: only a session that every node forgot is reaped by it. */
const DEFAULT_SESSION_SAFETY_MS = 24 * 3600_000;
/**
 * A session script that guessed the wrong node set is retried with the node it
 * named. A retry fails again only if another write moved the session in
 * between, so a write racing K others on the same session needs at most K + 1
 * tries; more than this means something is wrong.
 */
const NODE_GUESSES = 32;
/** Session keys read (MGET) or pruned per command by `sessionsOfNode`. */
const NODE_BATCH = 500;

export class RedisStore implements CallStore {
  readonly kind = 'redis';
  readonly shared = true;
  private readonly conn: RedisConnection;
  private readonly client: RedisClient;
  private readonly keys: RedisKeys;
  private readonly historyLimit: number;
  private readonly historyRetentionMs: number;
  private readonly sessionSafetyMs: number;
  /** `SORT ... GET` of session keys is possible (see `membersWithRecords`). */
  private sortGet: boolean;
  /** The next group `claimDue` looks in first, so no group's timers wait behind another's. */
  private nextTimerGroup = 0;

  constructor(options: RedisStoreOptions) {
    const prefix = options.prefix ?? DEFAULT_PREFIX;
    if (/[{}]/.test(prefix)) throw new Error(`the Redis key prefix "${prefix}" has a hash tag ({…}); keys carry their own, see KEY_GROUPS`);
    this.conn = new RedisConnection(options);
    this.client = this.conn.client;
    this.keys = redisKeys(prefix);
    // A prefix the pattern cannot express, or a cluster, which refuses SORT's GET.
    this.sortGet = !/[*?[\\]|->/.test(prefix) && !this.conn.cluster;
    this.historyLimit = options.historyLimit ?? DEFAULT_HISTORY_LIMIT;
    this.historyRetentionMs = options.historyRetentionMs ?? DEFAULT_HISTORY_RETENTION_MS;
    this.sessionSafetyMs = options.sessionSafetyMs ?? DEFAULT_SESSION_SAFETY_MS;
  }

  async getCall(tenant: string, id: CallId): Promise<Versioned<CallRecord> | undefined> {
    await this.whenReady();
    const [version, data] = await this.client.hmget(this.keys.call(tenant, id), 'v', 'd');
    if (version == null || data == null) return undefined;
    return { value: JSON.parse(data) as CallRecord, version: Number(version) };
  }

  async saveQuality(tenant: string, callId: CallId, segment: string, summary: QualitySummary): Promise<void> {
    await this.run(SAVE_QUALITY, { keys: [this.keys.call(tenant, callId)], args: [`${QUALITY_FIELD_PREFIX}${segment}`, JSON.stringify(summary)] });
  }

  /** The call's `q:` fields: a small hash answers a whole HSCAN at once, without sending the record itself. */
  async qualityOf(tenant: string, callId: CallId): Promise<Map<string, QualitySummary>> {
    await this.whenReady();
    const found = new Map<string, QualitySummary>();
    let cursor = '0';
    do {
      const [next, flat] = await this.client.hscan(this.keys.call(tenant, callId), cursor, 'MATCH', `${QUALITY_FIELD_PREFIX}*`, 'COUNT', 100);
      cursor = next;
      for (let i = 0; i + 1 < flat.length; i += 2) found.set(flat[i]!.slice(QUALITY_FIELD_PREFIX.length), JSON.parse(flat[i + 1]!) as QualitySummary);
    } while (cursor !== '0');
    return found;
  }

  /** One MGET per key group asked (one, unless users of several tenants are asked at once). */
  async getClaims(keys: UserKey[]): Promise<(CallId | null)[]> {
    if (keys.length === 0) return [];
    await this.whenReady();
    const held: (CallId | null)[] = new Array<CallId | null>(keys.length).fill(null);
    await Promise.all(
      [...byGroup(keys, (k) => groupOf(splitUserKey(k).tenant)).values()].map(async (at) => {
        const found = await this.client.mget(at.map((i) => this.keys.claim(keys[i]!)));
        at.forEach((i, j) => (held[i] = (found[j] ?? null) as CallId | null));
      }),
    );
    return held;
  }

  /** One script, its timer change included (see `COMMIT_CALL`). */
  async commitCall(commit: CallCommit): Promise<boolean> {
    return (await this.commit(commit, false)) !== null;
  }

  /** The same script, counting at its end. */
  commitCallCounting(commit: CallCommit): Promise<number | null> {
    return this.commit(commit, true);
  }

  /** Null when not written; else the count of others online, 0 when not `counting`. */
  private async commit(commit: CallCommit, counting: boolean): Promise<number | null> {
    if (commit.timer?.op === 'schedule') checkDueAt(commit.timer.dueAt);
    const result = await this.run(COMMIT_CALL, encodeCommitCall(this.keys, commit, { historyLimit: this.historyLimit, historyRetentionMs: this.historyRetentionMs }, counting));
    if (result === 1) return 0;
    if (Array.isArray(result) && result[0] === 1 && typeof result[1] === 'number') return result[1];
    return null;
  }

  async addSession(session: SessionRecord, maxSessions?: number): Promise<{ first: boolean } | null> {
    if (groupOfSession(session.id) !== groupOf(session.tenant)) {
      throw new Error(`session id ${session.id} is not in its tenant's key group: make it with sessionIdPrefix(tenant)`);
    }
    const members = await this.membersOf(userKey(session.tenant, session.userId));
    // A new session replaces no record; should one exist with this id, the script names its node.
    const count = await this.onNode(session.nodeId, (was) =>
      this.run(ADD_SESSION, encodeAddSession(this.keys, session, { was, members, maxSessions, safetyMs: this.sessionSafetyMs })),
    );
    if (Array.isArray(count) && count[0] === 'full') return null;
    return { first: count === 1 };
  }

  async getSession(id: SessionId): Promise<SessionRecord | undefined> {
    await this.whenReady();
    const raw = await this.client.get(this.keys.session(id));
    return raw === null ? undefined : (JSON.parse(raw) as SessionRecord);
  }

  /**
   * Guesses that the node does not change (the usual case; with `expected`,
   * the node it names, which is right whenever it still matches); a move
   * costs a second round trip.
   */
  async updateSession(session: SessionRecord, expected?: SessionRecord): Promise<boolean> {
    const updated = await this.onNode(expected?.nodeId ?? session.nodeId, (was) =>
      this.run(UPDATE_SESSION, encodeUpdateSession(this.keys, session, { was, expected, safetyMs: this.sessionSafetyMs })),
    );
    return updated === 1;
  }

  /**
   * Needs the session's user keys (a session's tenant and user never change)
   * and its node: from `expected`, or read first.
   */
  async removeSession(id: SessionId, expected?: SessionRecord): Promise<{ session: SessionRecord; last: boolean } | undefined> {
    const read = expected ?? (await this.getSession(id));
    if (!read) return undefined;
    const others = (await this.membersOf(userKey(read.tenant, read.userId))).filter((m) => m !== id);
    const result = (await this.onNode(read.nodeId, (was) =>
      this.run(REMOVE_SESSION, encodeRemoveSession(this.keys, read, { was, others, expected })),
    )) as ['removed', string, number] | null;
    if (result === null) return undefined;
    return { session: JSON.parse(result[1]) as SessionRecord, last: result[2] === 0 };
  }

  async sessionsOf(key: UserKey): Promise<SessionRecord[]> {
    const [ids, raw] = await this.membersWithRecords(key);
    if (ids.length === 0) return [];
    const found: SessionRecord[] = [];
    const missing: SessionId[] = [];
    raw.forEach((r, i) => (r === null ? missing.push(ids[i]!) : found.push(JSON.parse(r) as SessionRecord)));
    if (missing.length > 0) {
      const { tenant, userId } = splitUserKey(key);
      await this.run(PRUNE_SESSIONS, {
        keys: [this.keys.userSessions(key), this.keys.online(tenant), ...missing.map(this.keys.session)],
        args: [userId, ...missing],
      });
    }
    return found;
  }

  async onlineUsers(tenant: string): Promise<UserRef[]> {
    await this.whenReady();
    const users = await this.client.hgetall(this.keys.online(tenant));
    return Object.entries(users).map(([id, name]) => ({ id: id as UserId, name }));
  }

  /** One `HMGET` of the online hash per tenant asked (one, unless users of several tenants are asked at once). */
  async areOnline(keys: readonly UserKey[]): Promise<boolean[]> {
    if (keys.length === 0) return [];
    await this.whenReady();
    const online = new Array<boolean>(keys.length).fill(false);
    await Promise.all(
      [...byGroup(keys, (k) => splitUserKey(k).tenant)].map(async ([tenant, at]) => {
        const names = await this.client.hmget(this.keys.online(tenant), ...at.map((i) => splitUserKey(keys[i]!).userId));
        at.forEach((i, j) => (online[i] = names[j] != null));
      }),
    );
    return online;
  }

  /** One script for the whole list (see `APPEND_HISTORY`); none for an empty one. */
  async appendHistory(entries: readonly HistoryAppend[]): Promise<void> {
    for (const [group, at] of byGroup(entries, (e) => groupOf(splitUserKey(e.key).tenant))) {
      const list = at.map((i) => entries[i]!);
      await this.run(APPEND_HISTORY, {
        keys: [this.keys.historySeq(group), ...list.map((e) => this.keys.history(e.key))],
        args: [this.historyLimit, this.historyRetentionMs, ...list.map((e) => JSON.stringify(e.entry))],
      });
    }
  }

  async listHistory(key: UserKey, limit: number, before: string | null): Promise<HistoryPage> {
    if (!(limit >= 1) || (before !== null && !/^\d+$/.test(before))) return { calls: [], next: null };
    await this.whenReady();
    const count = Math.floor(limit);
    const max = before === null ? '+inf' : `(${before}`;
    // member, score, member, score, … newest first; one extra tells whether an older page exists.
    const flat = await this.client.zrevrangebyscore(this.keys.history(key), max, '-inf', 'WITHSCORES', 'LIMIT', 0, count + 1);
    const rows: { seq: string; entry: HistoryEntry }[] = [];
    for (let i = 0; i + 1 < flat.length; i += 2) {
      const member = flat[i]!;
      rows.push({ seq: flat[i + 1]!, entry: JSON.parse(member.slice(member.indexOf(':') + 1)) as HistoryEntry });
    }
    const page = rows.slice(0, count);
    const more = rows.length > count;
    return { calls: page.map((r) => r.entry), next: more ? page[page.length - 1]!.seq : null };
  }

  async schedule(kind: TimerKind, id: string, dueAt: number): Promise<void> {
    await this.whenReady();
    await this.client.zadd(this.keys.timers(groupOfTimer(kind, id)), dueAt, timerMember(kind, id));
  }

  async unschedule(kind: TimerKind, id: string): Promise<void> {
    await this.whenReady();
    await this.client.zrem(this.keys.timers(groupOfTimer(kind, id)), timerMember(kind, id));
  }

  async claimDue(now: number, max: number, leaseMs: number): Promise<ClaimedTimer[]> {
    const leaseUntil = leaseEnd(now, leaseMs);
    if (!(max >= 1)) return [];
    // Group by group, from a different one each sweep, until `max` are leased. A group that fails
    // (its master away, on a cluster) is skipped: what the others leased is handed out all the same.
    const claimed: ClaimedTimer[] = [];
    let failure: unknown;
    const first = this.nextTimerGroup;
    this.nextTimerGroup = (first + 1) % KEY_GROUPS;
    for (let i = 0; i < KEY_GROUPS && claimed.length < max; i++) {
      const group = (first + i) % KEY_GROUPS;
      try {
        const members = (await this.run(CLAIM_DUE, { keys: [this.keys.timers(group)], args: [now, Math.floor(max) - claimed.length, leaseUntil] })) as string[];
        for (const m of members) claimed.push({ ...parseTimerMember(m), leaseUntil });
      } catch (err) {
        failure ??= err;
      }
    }
    if (failure !== undefined && claimed.length === 0) throw failure;
    return claimed;
  }

  async claimTimer(kind: TimerKind, id: string, now: number, leaseMs: number): Promise<ClaimedTimer | null> {
    const leaseUntil = leaseEnd(now, leaseMs);
    const claimed = await this.run(CLAIM_TIMER, { keys: [this.keys.timers(groupOfTimer(kind, id))], args: [timerMember(kind, id), now, leaseUntil] });
    return claimed === 1 ? { kind, id, leaseUntil } : null;
  }

  async completeTimer(timer: ClaimedTimer): Promise<void> {
    await this.run(COMPLETE_LEASE, { keys: [this.keys.timers(groupOfTimer(timer.kind, timer.id))], args: [timerMember(timer.kind, timer.id), timer.leaseUntil] });
  }

  /** TIME of the master holding the first heartbeat shard: one clock for every node, whichever master it asks. */
  async clock(): Promise<number> {
    const [seconds, micros] = (await this.run(CLOCK, { keys: [this.keys.nodes(0)], args: [] })) as [number | string, number | string];
    return Number(seconds) * 1000 + Math.floor(Number(micros) / 1000);
  }

  async beat(nodeId: string, aliveUntil: number): Promise<void> {
    await this.whenReady();
    await this.client.zadd(this.keys.nodes(groupOfNode(nodeId)), aliveUntil, nodeId);
  }

  /**
   * Every group, in parallel. A group that fails (its master away, on a
   * cluster) keeps its dead nodes for the next call; those the others
   * leased are returned all the same — dropping them would leave them
   * unhandled until their lease ran out.
   */
  async claimDeadNodes(now: number, leaseMs: number): Promise<ClaimedNode[]> {
    const leaseUntil = leaseEnd(now, leaseMs);
    const found = await Promise.allSettled(
      ALL_GROUPS.map((g) => this.run(CLAIM_DEAD_NODES, { keys: [this.keys.nodes(g)], args: [now, leaseUntil] }) as Promise<string[]>),
    );
    const dead = found.flatMap((r) => (r.status === 'fulfilled' ? r.value.map((nodeId) => ({ nodeId, leaseUntil })) : []));
    const failed = found.find((r): r is PromiseRejectedResult => r.status === 'rejected');
    if (failed && dead.length === 0) throw failed.reason;
    return dead;
  }

  async completeDeadNode(node: ClaimedNode): Promise<void> {
    await this.run(COMPLETE_LEASE, { keys: [this.keys.nodes(groupOfNode(node.nodeId))], args: [node.nodeId, node.leaseUntil] });
  }

  async removeNode(nodeId: string): Promise<void> {
    await this.whenReady();
    await this.client.zrem(this.keys.nodes(groupOfNode(nodeId)), nodeId);
  }

  async notOnNode(nodeId: string, ids: readonly SessionId[]): Promise<SessionId[]> {
    if (ids.length === 0) return [];
    await this.whenReady();
    const missing: SessionId[] = [];
    for (const [group, at] of byGroup(ids, groupOfSession)) {
      const inGroup = at.map((i) => ids[i]!);
      for (let i = 0; i < inGroup.length; i += NODE_BATCH) {
        const batch = inGroup.slice(i, i + NODE_BATCH);
        const member = (await this.client.smismember(this.keys.nodeSessions(group, nodeId), ...batch)) as number[];
        batch.forEach((id, j) => member[j] === 0 && missing.push(id));
      }
    }
    return missing;
  }

  /** Group by group (each group's set and records share a slot), the groups in parallel. */
  async sessionsOfNode(nodeId: string, except?: ReadonlySet<SessionId>): Promise<SessionRecord[]> {
    await this.whenReady();
    const found = await Promise.all(ALL_GROUPS.map((g) => this.sessionsOfNodeIn(g, nodeId, except)));
    return found.flat();
  }

  private async sessionsOfNodeIn(group: number, nodeId: string, except?: ReadonlySet<SessionId>): Promise<SessionRecord[]> {
    const set = this.keys.nodeSessions(group, nodeId);
    const members = (await this.client.smembers(set)) as SessionId[];
    const ids = except ? members.filter((id) => !except.has(id)) : members;
    const found: SessionRecord[] = [];
    for (let i = 0; i < ids.length; i += NODE_BATCH) {
      const batch = ids.slice(i, i + NODE_BATCH);
      const raw = await this.client.mget(batch.map(this.keys.session));
      const missing: SessionId[] = [];
      raw.forEach((r, j) => (r === null ? missing.push(batch[j]!) : found.push(JSON.parse(r) as SessionRecord)));
      if (missing.length > 0) await this.run(PRUNE_NODE_SESSIONS, { keys: [set, ...missing.map(this.keys.session)], args: missing });
    }
    return found;
  }

  async admit(key: string, rule: RateRule, now: number): Promise<boolean> {
    return (await this.run(ADMIT, encodeAdmit(this.keys, key, rule, now))) === 1;
  }

  /**
   * One Redis: PING. A cluster: every master ioredis routes to answers and
   * says the cluster is ok, so a master that died (its slots unserved until
   * its replica takes over) makes the store not ready.
   */
  async ping(): Promise<void> {
    await this.whenReady();
    if (!this.client.isCluster) {
      await this.client.ping();
      return;
    }
    const masters = (this.client as Cluster).nodes('master');
    if (masters.length === 0) throw new Error('no Redis Cluster master is known');
    await Promise.all(
      masters.map(async (master) => {
        const info = String(await master.call('CLUSTER', 'INFO'));
        if (!/cluster_state:ok/.test(info)) throw new Error(`${master.options.host}:${master.options.port} says the cluster is not ok`);
      }),
    );
  }

  close(): Promise<void> {
    return this.conn.close();
  }


  /**
   * Runs a session script that must know the node set of the stored record:
   * first with `guess`, then, while the script answers `{ 'moved', nodeId }`
   * (the record names another node), with the node it named.
   */
  private async onNode(guess: string, attempt: (was: string) => Promise<unknown>): Promise<unknown> {
    let was = guess;
    for (let tries = 0; tries < NODE_GUESSES; tries++) {
      const result = await attempt(was);
      if (!Array.isArray(result) || result[0] !== 'moved') return result;
      was = String(result[1]);
    }
    throw new Error(`the session moved between nodes ${NODE_GUESSES} times during one write`);
  }

  /**
   * A user's session ids, each with its stored record (null when its key has
   * expired), in one round trip: `SORT_RO <set> BY nosort GET # GET
   * <group>session:*` reads the set and every record it names (a user's
   * sessions are in its tenant's group). A cluster (which refuses SORT's
   * GET), a prefix the pattern cannot express, or a Redis that refuses the
   * command (an ACL without read access to every key, which SORT's GET
   * needs; the last case for good) runs the same read as a script instead
   * (`SESSIONS_OF`).
   */
  private async membersWithRecords(user: UserKey): Promise<[SessionId[], (string | null)[]]> {
    if (this.sortGet) {
      await this.whenReady();
      const pattern = this.keys.sessionPattern(groupOf(splitUserKey(user).tenant));
      try {
        return pairsOf((await this.client.call('SORT_RO', this.keys.userSessions(user), 'BY', 'nosort', 'GET', '#', 'GET', pattern)) as (string | null)[]);
      } catch (err) {
        if (!(err instanceof ReplyError)) throw err;
        // Refused for good (an ACL, a Redis without SORT_RO); anything else just this once.
        if (/^(NOPERM|ERR unknown command|ERR .*(denied|not allowed))/.test((err as Error).message)) this.sortGet = false;
      }
    }
    const flat = (await this.run(SESSIONS_OF, { keys: [this.keys.userSessions(user)], args: [this.keys.sessionPrefix(groupOf(splitUserKey(user).tenant))] })) as (string | null)[];
    return pairsOf(flat);
  }

  private async membersOf(user: UserKey): Promise<SessionId[]> {
    await this.whenReady();
    return (await this.client.smembers(this.keys.userSessions(user))) as SessionId[];
  }

  /** Runs a script on the connection (see `RedisConnection.run`). */
  private run(script: LuaScript, call: ScriptCall): Promise<unknown> {
    return this.conn.run(script, call);
  }

  private whenReady(): Promise<void> {
    return this.conn.ready();
  }

}

/** `[id, record, id, record, …]` (a record null when its key has expired) as the ids and the records. */
function pairsOf(flat: readonly (string | null)[]): [SessionId[], (string | null)[]] {
  const ids: SessionId[] = [];
  const raw: (string | null)[] = [];
  for (let i = 0; i + 1 < flat.length; i += 2) {
    ids.push(flat[i] as SessionId);
    raw.push(flat[i + 1] ?? null);
  }
  return [ids, raw];
}

/** Every key group, 0 to KEY_GROUPS - 1. */
const ALL_GROUPS: readonly number[] = Array.from({ length: KEY_GROUPS }, (_, g) => g);

/**
 * The positions of `items` by key group (`groupOf` of each), groups in the
 * order first seen: a command may only take keys of one slot, so a batch over
 * several groups is one command per group.
 */
function byGroup<T, G = number>(items: readonly T[], groupOf: (item: T) => G): Map<G, number[]> {
  const groups = new Map<G, number[]>();
  items.forEach((item, i) => {
    const group = groupOf(item);
    const at = groups.get(group);
    if (at) at.push(i);
    else groups.set(group, [i]);
  });
  return groups;
}
