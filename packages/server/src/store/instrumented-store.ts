/**
 * A `CallStore` that times every operation of the store it wraps into a
 * histogram (`switchboard_redis_operation_seconds{op,result}`), so Redis
 * latency is visible without the stores or the transport knowing about
 * metrics. The interface is unchanged: callers cannot tell it is there.
 */
import type { CallId, QualitySummary, SessionId, UserRef } from '@switchboard/protocol';
import type { CallRecord, UserKey } from '../calls/types.js';
import type { Histogram } from 'prom-client';
import type {
  CallCommit,
  CallStore,
  ClaimedNode,
  ClaimedTimer,
  HistoryAppend,
  HistoryPage,
  RateRule,
  SessionRecord,
  TimerKind,
  Versioned,
} from './types.js';

export class InstrumentedStore implements CallStore {
  readonly kind: CallStore['kind'];
  readonly shared: boolean;

  constructor(
    private readonly inner: CallStore,
    private readonly seconds: Histogram<'op' | 'result'>,
  ) {
    this.kind = inner.kind;
    this.shared = inner.shared;
  }

  /** The histogram's child per operation and result, resolved once (a labelled observe hashes its labels each time). */
  private readonly children = new Map<string, { observe(value: number): void }>();

  private observe(op: string, result: 'ok' | 'error', startedAt: number): void {
    const key = `${op} ${result}`;
    let child = this.children.get(key);
    if (!child) this.children.set(key, (child = this.seconds.labels({ op, result })));
    child.observe((performance.now() - startedAt) / 1000);
  }

  private async time<T>(op: string, work: () => Promise<T>): Promise<T> {
    const startedAt = performance.now();
    try {
      const value = await work();
      this.observe(op, 'ok', startedAt);
      return value;
    } catch (err) {
      this.observe(op, 'error', startedAt);
      throw err;
    }
  }

  getCall(tenant: string, id: CallId): Promise<Versioned<CallRecord> | undefined> {
    return this.time('getCall', () => this.inner.getCall(tenant, id));
  }
  getClaims(keys: UserKey[]): Promise<(CallId | null)[]> {
    return this.time('getClaims', () => this.inner.getClaims(keys));
  }
  commitCall(commit: CallCommit): Promise<boolean> {
    return this.time('commitCall', () => this.inner.commitCall(commit));
  }
  /** Timed as `commitCall`: the same write, with a count. */
  saveQuality(tenant: string, callId: CallId, segment: string, summary: QualitySummary): Promise<void> {
    return this.time('saveQuality', () => this.inner.saveQuality(tenant, callId, segment, summary));
  }
  qualityOf(tenant: string, callId: CallId): Promise<Map<string, QualitySummary>> {
    return this.time('qualityOf', () => this.inner.qualityOf(tenant, callId));
  }
  commitCallCounting(commit: CallCommit): Promise<number | null> {
    return this.time('commitCall', () => this.inner.commitCallCounting(commit));
  }
  addSession(session: SessionRecord, maxSessions?: number): Promise<{ first: boolean } | null> {
    return this.time('addSession', () => this.inner.addSession(session, maxSessions));
  }
  getSession(id: SessionId): Promise<SessionRecord | undefined> {
    return this.time('getSession', () => this.inner.getSession(id));
  }
  updateSession(session: SessionRecord, expected?: SessionRecord): Promise<boolean> {
    return this.time('updateSession', () => this.inner.updateSession(session, expected));
  }
  removeSession(id: SessionId, expected?: SessionRecord): Promise<{ session: SessionRecord; last: boolean } | undefined> {
    return this.time('removeSession', () => this.inner.removeSession(id, expected));
  }
  sessionsOf(key: UserKey): Promise<SessionRecord[]> {
    return this.time('sessionsOf', () => this.inner.sessionsOf(key));
  }
  onlineUsers(tenant: string): Promise<UserRef[]> {
    return this.time('onlineUsers', () => this.inner.onlineUsers(tenant));
  }
  areOnline(keys: readonly UserKey[]): Promise<boolean[]> {
    return this.time('areOnline', () => this.inner.areOnline(keys));
  }
  /** An empty list is passed through untimed: no round trip to time. */
  appendHistory(entries: readonly HistoryAppend[]): Promise<void> {
    if (entries.length === 0) return this.inner.appendHistory(entries);
    return this.time('appendHistory', () => this.inner.appendHistory(entries));
  }
  listHistory(key: UserKey, limit: number, before: string | null): Promise<HistoryPage> {
    return this.time('listHistory', () => this.inner.listHistory(key, limit, before));
  }
  schedule(kind: TimerKind, id: string, dueAt: number): Promise<void> {
    return this.time('schedule', () => this.inner.schedule(kind, id, dueAt));
  }
  unschedule(kind: TimerKind, id: string): Promise<void> {
    return this.time('unschedule', () => this.inner.unschedule(kind, id));
  }
  claimDue(now: number, max: number, leaseMs: number): Promise<ClaimedTimer[]> {
    return this.time('claimDue', () => this.inner.claimDue(now, max, leaseMs));
  }
  claimTimer(kind: TimerKind, id: string, now: number, leaseMs: number): Promise<ClaimedTimer | null> {
    return this.time('claimTimer', () => this.inner.claimTimer(kind, id, now, leaseMs));
  }
  completeTimer(timer: ClaimedTimer): Promise<void> {
    return this.time('completeTimer', () => this.inner.completeTimer(timer));
  }
  clock(): Promise<number> {
    return this.time('clock', () => this.inner.clock());
  }
  beat(nodeId: string, aliveUntil: number): Promise<void> {
    return this.time('beat', () => this.inner.beat(nodeId, aliveUntil));
  }
  claimDeadNodes(now: number, leaseMs: number): Promise<ClaimedNode[]> {
    return this.time('claimDeadNodes', () => this.inner.claimDeadNodes(now, leaseMs));
  }
  completeDeadNode(node: ClaimedNode): Promise<void> {
    return this.time('completeDeadNode', () => this.inner.completeDeadNode(node));
  }
  removeNode(nodeId: string): Promise<void> {
    return this.time('removeNode', () => this.inner.removeNode(nodeId));
  }
  notOnNode(nodeId: string, ids: readonly SessionId[]): Promise<SessionId[]> {
    return this.time('notOnNode', () => this.inner.notOnNode(nodeId, ids));
  }
  sessionsOfNode(nodeId: string, except?: ReadonlySet<SessionId>): Promise<SessionRecord[]> {
    return this.time('sessionsOfNode', () => this.inner.sessionsOfNode(nodeId, except));
  }
  admit(key: string, rule: RateRule, now: number): Promise<boolean> {
    return this.time('admit', () => this.inner.admit(key, rule, now));
  }
  ping(): Promise<void> {
    return this.time('ping', () => this.inner.ping());
  }
  close(): Promise<void> {
    return this.inner.close();
  }
}
