/**
 * The `CallStore`: everything that must be shared between server nodes —
 * calls, per-user call claims, sessions, presence, history and due timers.
 * Every method returns a Promise. Call transitions are optimistic: read a call
 * (with its version) and the claims it touches, compute the next state with
 * the pure machine, then `commitCall` writes it all at once only if nothing it
 * read has changed. A backend makes that one commit atomic (a Lua script in
 * Redis) and everything else follows.
 */
import type { CallId, CallOutcome, CallQuality, Media, QualitySummary, SessionId, UserId, UserRef } from '@switchboard/protocol';
import type { CallRecord, UserKey } from '../calls/types.js';

/** Newest history entries kept per user, unless told otherwise (`HISTORY_LIMIT`). */
export const DEFAULT_HISTORY_LIMIT = 200;

export interface Versioned<T> {
  value: T;
  /** Starts at 1 and grows by one with every committed write. */
  version: number;
}

/**
 * A change to a user's claim (the call the user is in).
 * `take`: the claim must hold exactly `expect` (null: none) or the whole commit fails.
 * `release`: drop the claim if it still names `callId`; otherwise leave it be.
 */
export type ClaimWrite =
  | { op: 'take'; key: UserKey; expect: CallId | null; callId: CallId }
  | { op: 'release'; key: UserKey; callId: CallId };

export interface CallCommit {
  call: CallRecord;
  /** The version read; 0 means the call must not exist yet. */
  expectVersion: number;
  claims: ClaimWrite[];
  /** Forget the call this long after the commit (set for ended calls, which linger as tombstones). */
  ttlMs: number | null;
  /**
   * One timer change that belongs with this transition (a ring timeout set
   * with the call, dropped when it is answered or ends), written in the same
   * atomic step and only if the commit succeeds: a lost race schedules
   * nothing, and a won one cannot leave its timer unwritten. It saves the
   * separate `schedule`/`unschedule` round trip.
   */
  timer?: TimerWrite;
  /**
   * The history records of the call this commit ends, appended in the same
   * atomic step (as `appendHistory` would) and only if the commit succeeds:
   * an ended call always has its history, a lost race writes none, and the
   * separate round trip is saved.
   */
  history?: HistoryAppend[];
  /**
   * The user's sessions as the caller read them (a new call's callee): the
   * commit fails, writing nothing, unless the store still holds exactly these.
   * A device that signed in between the read and the commit makes the request
   * read again and ring it too; one that signs in after the commit finds the
   * call by the claim it wrote (v1.1, "The ring reaches the user").
   */
  sessionsAsRead?: { key: UserKey; ids: readonly SessionId[] };
  /**
   * Messages published by the commit itself, in order, if and only if it is
   * written (Redis: a sharded publish inside the script): the transition's
   * events for sessions held by other nodes, so they go out with the state
   * they follow from, with no publish of the node's own. Every channel is in
   * the call's key group (its tenant's slot), as the session channels are.
   * Only a store shared by nodes takes them; the memory store refuses any.
   */
  publish?: readonly Publication[];
}

/**
 * One message a commit publishes (`CallCommit.publish`): `before`, the call
 * as the commit writes it (its JSON), then `after`. The store puts the call
 * in, so the record goes to Redis once however many messages carry it.
 */
export interface Publication {
  channel: string;
  before: string;
  after: string;
}

/**
 * A timer change carried by a commit; `schedule` and `unschedule` as the
 * `CallStore` methods of those names. `dueAt` (epoch ms) must be finite.
 */
export type TimerWrite =
  | { op: 'schedule'; kind: TimerKind; id: string; dueAt: number }
  | { op: 'unschedule'; kind: TimerKind; id: string };

export interface SessionRecord {
  id: SessionId;
  tenant: string;
  userId: UserId;
  name: string;
  /** The `contacts` claim of the token, when `CONTACTS=claims`. */
  contacts: UserId[] | null;
  /** The node whose socket carries this session (or carried it last). */
  nodeId: string;
  /** False while the session has lost its transport and is inside its reconnect grace. */
  connected: boolean;
  /** When a disconnected session expires; null while connected. */
  graceUntil: number | null;
  /** Resumptions counted in the current window, and when that window started. */
  resumes: number;
  resumeWindowStart: number;
  createdAt: number;
}

/** One entry of a user's call history: the wire shape of `GET /api/calls`. */
export interface HistoryEntry {
  callId: CallId;
  direction: 'outgoing' | 'incoming';
  peer: UserRef;
  outcome: CallOutcome;
  reason: string;
  createdAt: number;
  answeredAt: number | null;
  endedAt: number;
  durationMs: number;
  /** v1.1: what the call carried (absent in records written before v1.1). */
  media?: Media;
  /** v1.1: each party's summary of its quality reports, when one reported. */
  quality?: CallQuality;
}

/** One entry to append to one user's history. */
export interface HistoryAppend {
  key: UserKey;
  entry: HistoryEntry;
}

export interface HistoryPage {
  calls: HistoryEntry[];
  /** Cursor for the next (older) page, or null at the end. */
  next: string | null;
}

/**
 * A rate limit shared by every node.
 * `bucket`: a token bucket of `burst` tokens refilled at `perSecond` (a burst, then a steady rate).
 * `window`: at most `limit` events within any `windowMs` (exact: a sliding log of the last `limit`).
 */
export type RateRule = { kind: 'bucket'; burst: number; perSecond: number } | { kind: 'window'; limit: number; windowMs: number };

export type TimerKind = 'ring' | 'grace';

export interface ClaimedTimer {
  kind: TimerKind;
  id: string;
  /** The due time the lease moved the timer to. */
  leaseUntil: number;
}

/**
 * Calls and the per-user claims they hold: the call machine's state. An ended
 * call is kept as a tombstone for its commit's `ttlMs`, but a store may forget
 * one sooner (the memory store keeps at most its newest 20,000): a late event
 * for it then answers `call_not_found` where it would have answered
 * `invalid_state`. Both refuse the event and change nothing; a client treats
 * them alike.
 */
export interface CallRecords {
  /** A call of a tenant (a call id is the tenant's own: the same id in another tenant is another call). */
  getCall(tenant: string, id: CallId): Promise<Versioned<CallRecord> | undefined>;
  /** The call each user is in (ringing or active), in the order asked. */
  getClaims(keys: UserKey[]): Promise<(CallId | null)[]>;
  /** Writes the call and its claims if, and only if, nothing read has changed since. */
  commitCall(commit: CallCommit): Promise<boolean>;
  /**
   * `commitCall`, then in the same atomic step: how many users of the call's
   * tenant other than its two parties are online (have a session, connected
   * or in its grace); null when nothing was written. A user not counted came
   * online after the commit, so reads its outcome (presence reads claims after
   * adding the session): an announcement of it to a count of 0 reaches nobody
   * who needs it.
   */
  commitCallCounting(commit: CallCommit): Promise<number | null>;
  /**
   * Saves a running quality summary beside the call's record (v1.1): one per
   * `segment` (a socket's stretch of reports, named `<sessionId> <id>`), the
   * newest replacing the one before. No version changes, nothing is read;
   * nothing is saved for a call the store no longer holds, and the summaries
   * go with the record.
   */
  saveQuality(tenant: string, callId: CallId, segment: string, summary: QualitySummary): Promise<void>;
  /** Every summary saved beside the call's record, by segment. */
  qualityOf(tenant: string, callId: CallId): Promise<Map<string, QualitySummary>>;
}

/** Sessions: who is signed in, on which node, connected or in their grace. */
export interface SessionStore {
  /**
   * Stores a new session; `first` is true when it is the user's only session.
   * With `maxSessions`, in the same atomic step: null (nothing written) when
   * the user already has that many sessions (connected or in their grace),
   * so the cap holds however many sign-ins race on however many nodes.
   */
  addSession(session: SessionRecord, maxSessions?: number): Promise<{ first: boolean } | null>;
  getSession(id: SessionId): Promise<SessionRecord | undefined>;
  /**
   * Overwrites a session that still exists; false when it is gone. With
   * `expected` (the record as the caller read it), only if the stored record
   * is still exactly that: false when anything changed since (a resume or a
   * loss on another node), so a decision made on what was read cannot
   * overwrite a newer one.
   */
  updateSession(session: SessionRecord, expected?: SessionRecord): Promise<boolean>;
  /**
   * Removes a session; `last` is true when the user has no session left.
   * Undefined when it was already gone or, with `expected`, when the stored
   * record is no longer exactly what the caller read (a grace expiry racing a
   * resume removes nothing).
   */
  removeSession(id: SessionId, expected?: SessionRecord): Promise<{ session: SessionRecord; last: boolean } | undefined>;
  /** Every session of a user, connected or inside its grace. */
  sessionsOf(key: UserKey): Promise<SessionRecord[]>;
  /** Sessions whose `nodeId` is `nodeId` (connected or not), but those in `except` (not even read). */
  sessionsOfNode(nodeId: string, except?: ReadonlySet<SessionId>): Promise<SessionRecord[]>;
  /** Which of `ids` the store does not hold as sessions of `nodeId` (one membership check each, no record read). */
  notOnNode(nodeId: string, ids: readonly SessionId[]): Promise<SessionId[]>;
  /** Users of a tenant with at least one session (presence). */
  onlineUsers(tenant: string): Promise<UserRef[]>;
  /** Whether each of these users has at least one session now, in order (each as `onlineUsers` would list it). */
  areOnline(keys: readonly UserKey[]): Promise<boolean[]>;
}

/** Each user's call history. */
export interface HistoryStore {
  /**
   * Appends each entry to its own user's history, in the order given (so a
   * later entry is newer, and pages after it); the entries of an ended call,
   * one per party, go in one round trip. An empty list does nothing.
   */
  appendHistory(entries: readonly HistoryAppend[]): Promise<void>;
  listHistory(key: UserKey, limit: number, before: string | null): Promise<HistoryPage>;
}

/** Due timers (ring timeouts, reconnect graces) that fire on whichever node claims them. */
export interface TimerStore {
  /** Sets (or moves) the due time of a timer. A call's timers can instead ride on its commit (`CallCommit.timer`). */
  schedule(kind: TimerKind, id: string, dueAt: number): Promise<void>;
  unschedule(kind: TimerKind, id: string): Promise<void>;
  /**
   * Leases the timers due at `now` (at most `max`): each is handed to exactly
   * one caller, and its due time moves to `now + leaseMs`, so if the claimer
   * dies before `completeTimer` the timer fires again after the lease.
   */
  claimDue(now: number, max: number, leaseMs: number): Promise<ClaimedTimer[]>;
  /** Leases one timer if it is due at `now`; null when it is not due, gone, or leased by another. */
  claimTimer(kind: TimerKind, id: string, now: number, leaseMs: number): Promise<ClaimedTimer | null>;
  /** Removes a leased timer, unless it was rescheduled since (its due time is no longer `leaseUntil`). */
  completeTimer(timer: ClaimedTimer): Promise<void>;
}

/** A dead node leased to one caller, who hands its sessions over (`claimDeadNodes`). */
export interface ClaimedNode {
  nodeId: string;
  /** The alive-until the lease moved the node to: until then nobody else claims it. */
  leaseUntil: number;
}

/** The nodes sharing the store, and which of them are alive. */
export interface NodeStore {
  /**
   * The store's clock (epoch ms): what heartbeats are written and judged by,
   * so that nodes whose clocks disagree still agree on who is late.
   */
  clock(): Promise<number>;
  /** Records that `nodeId` is alive until `aliveUntil` (epoch ms). */
  beat(nodeId: string, aliveUntil: number): Promise<void>;
  /**
   * Leases the nodes whose `aliveUntil` is before `now`: each is handed to
   * exactly one caller, and its alive-until moves to `now + leaseMs`, so if
   * the claimer dies (or the store fails) before `completeDeadNode`, the node
   * is dead again after the lease and someone claims it again. Its sessions
   * are never left to a claim that went nowhere.
   */
  claimDeadNodes(now: number, leaseMs: number): Promise<ClaimedNode[]>;
  /** Forgets a claimed dead node once its sessions are handed over, unless it beat since (its alive-until is no longer `leaseUntil`). */
  completeDeadNode(node: ClaimedNode): Promise<void>;
  /** Forgets a node that stopped cleanly. */
  removeNode(nodeId: string): Promise<void>;
}

/** Rate limits shared by every node. */
export interface LimitStore {
  /**
   * Counts one event against the limit `key` (any string; `RateRule`), shared
   * by every node of the store: true when it is within the limit (and counted),
   * false when it is over (and not counted). `now` is epoch ms.
   */
  admit(key: string, rule: RateRule, now: number): Promise<boolean>;
}

/** Everything the nodes share, by role: what each part of the server needs is one of these. */
export interface CallStore extends CallRecords, SessionStore, HistoryStore, TimerStore, NodeStore, LimitStore {
  readonly kind: 'memory' | 'redis';
  /** Shared with other nodes: every read is a round trip, and another node may write between two of ours. */
  readonly shared: boolean;
  /** Resolves when the store answers; rejects otherwise. */
  ping(): Promise<void>;
  close(): Promise<void>;
}
