/**
 * The embedded store: one process, state in plain maps. Each method completes
 * synchronously inside its Promise, so `commitCall`'s version check, and the
 * timer change it carries, are atomic.
 */
import type { CallId, QualitySummary, SessionId, UserRef } from '@switchboard/protocol';
import type { CallRecord, UserKey } from '../calls/types.js';
import { callKey, userKey } from '../calls/types.js';
import { DEFAULT_HISTORY_LIMIT } from './types.js';
import { splitUserKey } from './redis-keys.js';
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
import { admitBucket, admitWindow, keepMs } from './rate-rules.js';

/** A stored session is still `expected` (none expected: any is): compared as Redis compares them, by their JSON. */
function unchanged(stored: SessionRecord, expected: SessionRecord | undefined): boolean {
  return expected === undefined || stored === expected || JSON.stringify(stored) === JSON.stringify(expected);
}

/**
 * A call as held here. A call with an expiry (an ended call's tombstone, kept
 * for minutes) is held as its JSON: one flat string per call instead of a
 * dozen small objects, which every major GC would otherwise walk — at a few
 * thousand calls a second, tombstones are most of the heap.
 */
interface StoredCall {
  value: CallRecord | string;
  version: number;
  expiresAt: number | null;
  /** Quality summaries saved beside the record, by segment (`saveQuality`). */
  quality?: Map<string, QualitySummary>;
}

export interface MemoryStoreOptions {
  /** Newest history entries kept per user. @default 200 */
  historyLimit?: number;
  /** Clock, for tests. @default Date.now */
  now?: () => number;
  /**
   * Ended calls kept at most, newest first, whatever their TTL: at thousands of
   * calls a second, five minutes of tombstones would be most of the process's
   * heap, and every major GC (a stall of the event loop) walks it. A call
   * forgotten early answers a late event with `call_not_found` instead of
   * `invalid_state`. @default 20000
   */
  maxTombstones?: number;
}

const DEFAULT_MAX_TOMBSTONES = 20_000;

export class MemoryStore implements CallStore {
  readonly kind = 'memory';
  readonly shared = false;
  /** By `callKey` (a call id is its tenant's own). */
  private readonly calls = new Map<string, StoredCall>();
  /** Tombstones in the order they were written, which with one TTL for all is the order they expire: swept from the front. */
  private readonly expiries: { key: string; at: number }[] = [];
  private expiriesHead = 0;
  private readonly claims = new Map<UserKey, CallId>();
  private readonly sessions = new Map<SessionId, SessionRecord>();
  private readonly userSessions = new Map<UserKey, Set<SessionId>>();
  private readonly tenants = new Map<string, Map<UserKey, SessionRecord>>();
  /**
   * Each user's entries, oldest first; only the newest `historyLimit` count. Appending pushes
   * (an unshift moves every entry), and the list is cut back once it holds twice the limit.
   * Entries are kept as JSON (read back only when listed), for the reason tombstones are.
   */
  private readonly history = new Map<UserKey, { seqs: number[]; entries: string[] }>();
  /** Sessions by the node whose socket carries them (their `nodeId`). */
  private readonly nodeSessions = new Map<string, Set<SessionId>>();
  private readonly timers = new Map<string, { kind: TimerKind; id: string; dueAt: number }>();
  /** Node id → alive until (epoch ms). */
  private readonly nodes = new Map<string, number>();
  /** Rate limits (`admit`): each key's state until it may be forgotten. */
  private readonly rates = new Map<string, { state: number | number[]; expiresAt: number }>();
  private historySeq = 0;
  private readonly maxTombstones: number;
  private readonly historyLimit: number;
  private readonly now: () => number;
  private readonly sweeper: NodeJS.Timeout;

  constructor(options: MemoryStoreOptions = {}) {
    this.historyLimit = options.historyLimit ?? DEFAULT_HISTORY_LIMIT;
    this.maxTombstones = options.maxTombstones ?? DEFAULT_MAX_TOMBSTONES;
    this.now = options.now ?? Date.now;
    this.sweeper = setInterval(() => this.sweep(), 10_000);
    this.sweeper.unref();
  }

  async getCall(tenant: string, id: CallId): Promise<Versioned<CallRecord> | undefined> {
    const key = callKey(tenant, id);
    const stored = this.calls.get(key);
    if (!stored) return undefined;
    if (stored.expiresAt !== null && stored.expiresAt <= this.now()) {
      this.calls.delete(key);
      return undefined;
    }
    const value = typeof stored.value === 'string' ? (JSON.parse(stored.value) as CallRecord) : stored.value;
    return { value, version: stored.version };
  }

  async getClaims(keys: UserKey[]): Promise<(CallId | null)[]> {
    return keys.map((k) => this.claims.get(k) ?? null);
  }

  async commitCall(commit: CallCommit): Promise<boolean> {
    return this.commit(commit);
  }

  async commitCallCounting(commit: CallCommit): Promise<number | null> {
    if (!this.commit(commit)) return null;
    const { tenant, caller, callee } = commit.call;
    const online = this.tenants.get(tenant);
    if (!online) return 0;
    const parties = new Set([userKey(tenant, caller.userId), userKey(tenant, callee.userId)]);
    let others = 0;
    for (const key of online.keys()) if (!parties.has(key)) others++;
    return others;
  }

  private commit(commit: CallCommit): boolean {
    // Its deliveries are all in this process (LoopbackDelivery): nothing may ask it to publish.
    if (commit.publish?.length) throw new Error('the memory store publishes nothing: a commit with messages needs a shared store');
    const { timer } = commit;
    if (timer?.op === 'schedule') checkDueAt(timer.dueAt);
    const key = callKey(commit.call.tenant, commit.call.id);
    const current = this.calls.get(key);
    const live = current && (current.expiresAt === null || current.expiresAt > this.now()) ? current : undefined;
    if ((live?.version ?? 0) !== commit.expectVersion) return false;
    for (const claim of commit.claims) {
      if (claim.op === 'take' && (this.claims.get(claim.key) ?? null) !== claim.expect) return false;
    }
    if (commit.sessionsAsRead) {
      const { key, ids } = commit.sessionsAsRead;
      const held = this.userSessions.get(key);
      if ((held?.size ?? 0) !== ids.length || ids.some((id) => !held!.has(id))) return false;
    }
    for (const claim of commit.claims) {
      if (claim.op === 'take') this.claims.set(claim.key, claim.callId);
      else if (this.claims.get(claim.key) === claim.callId) this.claims.delete(claim.key);
    }
    const expiresAt = commit.ttlMs === null ? null : this.now() + commit.ttlMs;
    this.calls.set(key, {
      value: expiresAt === null ? commit.call : JSON.stringify(commit.call),
      version: commit.expectVersion + 1,
      expiresAt,
      ...(live?.quality ? { quality: live.quality } : {}),
    });
    if (expiresAt !== null) {
      this.expiries.push({ key, at: expiresAt });
      // Over the cap, the oldest tombstones go now rather than at their expiry.
      while (this.expiries.length - this.expiriesHead > this.maxTombstones) this.forgetOldest(Infinity);
    }
    if (timer?.op === 'schedule') this.setTimer(timer.kind, timer.id, timer.dueAt);
    else if (timer?.op === 'unschedule') this.dropTimer(timer.kind, timer.id);
    if (commit.history) this.append(commit.history);
    return true;
  }

  async saveQuality(tenant: string, callId: CallId, segment: string, summary: QualitySummary): Promise<void> {
    const stored = this.live(callKey(tenant, callId));
    if (stored) (stored.quality ??= new Map()).set(segment, summary);
  }

  async qualityOf(tenant: string, callId: CallId): Promise<Map<string, QualitySummary>> {
    return new Map(this.live(callKey(tenant, callId))?.quality ?? []);
  }

  /** The call as held (by `callKey`), unless it is gone or its tombstone has expired. */
  private live(key: string): StoredCall | undefined {
    const stored = this.calls.get(key);
    return stored && (stored.expiresAt === null || stored.expiresAt > this.now()) ? stored : undefined;
  }

  async addSession(session: SessionRecord, maxSessions = Infinity): Promise<{ first: boolean } | null> {
    const key = userKey(session.tenant, session.userId);
    const previous = this.sessions.get(session.id);
    let set = this.userSessions.get(key);
    if (!previous && (set?.size ?? 0) >= maxSessions) return null;
    this.sessions.set(session.id, session);
    this.moveNode(session.id, previous?.nodeId, session.nodeId);
    if (!set) this.userSessions.set(key, (set = new Set()));
    set.add(session.id);
    let tenant = this.tenants.get(session.tenant);
    if (!tenant) this.tenants.set(session.tenant, (tenant = new Map()));
    tenant.set(key, session);
    return { first: set.size === 1 };
  }

  async getSession(id: SessionId): Promise<SessionRecord | undefined> {
    return this.sessions.get(id);
  }

  async updateSession(session: SessionRecord, expected?: SessionRecord): Promise<boolean> {
    const previous = this.sessions.get(session.id);
    if (!previous || !unchanged(previous, expected)) return false;
    this.sessions.set(session.id, session);
    this.moveNode(session.id, previous.nodeId, session.nodeId);
    return true;
  }

  async removeSession(id: SessionId, expected?: SessionRecord): Promise<{ session: SessionRecord; last: boolean } | undefined> {
    const session = this.sessions.get(id);
    if (!session || !unchanged(session, expected)) return undefined;
    this.sessions.delete(id);
    this.moveNode(id, session.nodeId, undefined);
    const key = userKey(session.tenant, session.userId);
    const set = this.userSessions.get(key);
    set?.delete(id);
    const last = !set || set.size === 0;
    const tenant = this.tenants.get(session.tenant);
    if (last) {
      this.userSessions.delete(key);
      tenant?.delete(key);
      if (tenant?.size === 0) this.tenants.delete(session.tenant);
    } else if (tenant && set) {
      const other = this.sessions.get(set.values().next().value as SessionId);
      if (other) tenant.set(key, other);
    }
    return { session, last };
  }

  async sessionsOf(key: UserKey): Promise<SessionRecord[]> {
    return this.recordsOf(this.userSessions.get(key));
  }

  /** The stored sessions among `ids`. */
  private recordsOf(ids: Iterable<SessionId> | undefined): SessionRecord[] {
    const out: SessionRecord[] = [];
    for (const id of ids ?? []) {
      const s = this.sessions.get(id);
      if (s) out.push(s);
    }
    return out;
  }

  async onlineUsers(tenant: string): Promise<UserRef[]> {
    const users = this.tenants.get(tenant);
    if (!users) return [];
    return [...users.values()].map((s) => ({ id: s.userId, name: s.name }));
  }

  async areOnline(keys: readonly UserKey[]): Promise<boolean[]> {
    return keys.map((key) => this.tenants.get(splitUserKey(key).tenant)?.has(key) ?? false);
  }

  async appendHistory(entries: readonly HistoryAppend[]): Promise<void> {
    this.append(entries);
  }

  private append(entries: readonly HistoryAppend[]): void {
    for (const { key, entry } of entries) {
      let list = this.history.get(key);
      if (!list) this.history.set(key, (list = { seqs: [], entries: [] }));
      list.seqs.push(++this.historySeq);
      list.entries.push(JSON.stringify(entry));
      if (list.seqs.length >= 2 * this.historyLimit) {
        const drop = list.seqs.length - this.historyLimit;
        list.seqs.splice(0, drop);
        list.entries.splice(0, drop);
      }
    }
  }

  async listHistory(key: UserKey, limit: number, before: string | null): Promise<HistoryPage> {
    const list = this.history.get(key);
    if (!list) return { calls: [], next: null };
    const { seqs, entries } = list;
    const cursor = before === null ? Infinity : Number(before);
    const oldest = Math.max(0, seqs.length - this.historyLimit);
    // Newest first: walk back from the end to the first entry older than the cursor.
    let i = seqs.length - 1;
    while (i >= oldest && seqs[i]! >= cursor) i--;
    const calls: HistoryEntry[] = [];
    let last = 0;
    for (; i >= oldest && calls.length < limit; i--) {
      calls.push(JSON.parse(entries[i]!) as HistoryEntry);
      last = seqs[i]!;
    }
    const more = i >= oldest && calls.length > 0;
    return { calls, next: more ? String(last) : null };
  }

  async schedule(kind: TimerKind, id: string, dueAt: number): Promise<void> {
    this.setTimer(kind, id, dueAt);
  }

  async unschedule(kind: TimerKind, id: string): Promise<void> {
    this.dropTimer(kind, id);
  }

  private setTimer(kind: TimerKind, id: string, dueAt: number): void {
    this.timers.set(`${kind}:${id}`, { kind, id, dueAt });
  }

  private dropTimer(kind: TimerKind, id: string): void {
    this.timers.delete(`${kind}:${id}`);
  }

  async claimDue(now: number, max: number, leaseMs: number): Promise<ClaimedTimer[]> {
    const leaseUntil = leaseEnd(now, leaseMs);
    if (!(max >= 1)) return [];
    const due = [...this.timers.values()].filter((t) => t.dueAt <= now);
    // The longest overdue first, as Redis hands them out.
    due.sort((a, b) => a.dueAt - b.dueAt);
    return due.slice(0, Math.floor(max)).map((timer) => {
      timer.dueAt = leaseUntil;
      return { kind: timer.kind, id: timer.id, leaseUntil };
    });
  }

  async claimTimer(kind: TimerKind, id: string, now: number, leaseMs: number): Promise<ClaimedTimer | null> {
    const leaseUntil = leaseEnd(now, leaseMs);
    const timer = this.timers.get(`${kind}:${id}`);
    if (!timer || timer.dueAt > now) return null;
    timer.dueAt = leaseUntil;
    return { kind, id, leaseUntil };
  }

  async completeTimer(timer: ClaimedTimer): Promise<void> {
    const key = `${timer.kind}:${timer.id}`;
    if (this.timers.get(key)?.dueAt === timer.leaseUntil) this.timers.delete(key);
  }

  async clock(): Promise<number> {
    return this.now();
  }

  async beat(nodeId: string, aliveUntil: number): Promise<void> {
    this.nodes.set(nodeId, aliveUntil);
  }

  async claimDeadNodes(now: number, leaseMs: number): Promise<ClaimedNode[]> {
    const leaseUntil = leaseEnd(now, leaseMs);
    const dead: ClaimedNode[] = [];
    for (const [nodeId, aliveUntil] of this.nodes) {
      if (aliveUntil >= now) continue;
      this.nodes.set(nodeId, leaseUntil); // an existing key: the iteration goes on unchanged
      dead.push({ nodeId, leaseUntil });
    }
    return dead;
  }

  async completeDeadNode(node: ClaimedNode): Promise<void> {
    if (this.nodes.get(node.nodeId) === node.leaseUntil) this.nodes.delete(node.nodeId);
  }

  async removeNode(nodeId: string): Promise<void> {
    this.nodes.delete(nodeId);
  }

  async notOnNode(nodeId: string, ids: readonly SessionId[]): Promise<SessionId[]> {
    const held = this.nodeSessions.get(nodeId);
    return ids.filter((id) => !held?.has(id));
  }

  async sessionsOfNode(nodeId: string, except?: ReadonlySet<SessionId>): Promise<SessionRecord[]> {
    const ids = [...(this.nodeSessions.get(nodeId) ?? [])];
    return this.recordsOf(except ? ids.filter((id) => !except.has(id)) : ids);
  }

  async admit(key: string, rule: RateRule, now: number): Promise<boolean> {
    const held = this.rates.get(key);
    const live = held && held.expiresAt > now ? held.state : undefined;
    const next = rule.kind === 'bucket' ? admitBucket(rule, live as number | undefined, now) : admitWindow(rule, (live as number[] | undefined) ?? [], now);
    if (next === null) return false;
    this.rates.set(key, { state: next, expiresAt: now + keepMs(rule, next, now) });
    return true;
  }

  async ping(): Promise<void> {}

  async close(): Promise<void> {
    clearInterval(this.sweeper);
  }

  /** Moves a session in the node index (from `from`, to `to`; undefined: none). */
  private moveNode(id: SessionId, from: string | undefined, to: string | undefined): void {
    if (from === to) return;
    if (from !== undefined) {
      const set = this.nodeSessions.get(from);
      set?.delete(id);
      if (set?.size === 0) this.nodeSessions.delete(from);
    }
    if (to !== undefined) {
      let set = this.nodeSessions.get(to);
      if (!set) this.nodeSessions.set(to, (set = new Set()));
      set.add(id);
    }
  }

  private sweep(): void {
    this.sweepTombstones();
    const now = this.now();
    for (const [key, held] of this.rates) if (held.expiresAt <= now) this.rates.delete(key);
  }

  private sweepTombstones(): void {
    const now = this.now();
    const queue = this.expiries;
    // Entries expire in about the order they were written: stop at the first one still due later.
    // (A call re-committed since has a newer entry further back; its old one finds a later expiry and is skipped.)
    while (this.expiriesHead < queue.length && queue[this.expiriesHead]!.at <= now) this.forgetOldest(now);
  }

  /**
   * Takes the oldest entry off the expiry queue and deletes its call if it is
   * still that tombstone (a call committed again since has a later entry) and
   * due by `until`.
   */
  private forgetOldest(until: number): void {
    const queue = this.expiries;
    const { key, at } = queue[this.expiriesHead++]!;
    const stored = this.calls.get(key);
    if (stored && stored.expiresAt !== null && stored.expiresAt <= at && stored.expiresAt <= until) this.calls.delete(key);
    if (this.expiriesHead > 1024 && this.expiriesHead * 2 > queue.length) {
      queue.splice(0, this.expiriesHead);
      this.expiriesHead = 0;
    }
  }
}
