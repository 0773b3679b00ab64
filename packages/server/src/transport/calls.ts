/**
 * Runs call events: read the call and the claims it touches, apply the pure
 * machine, commit atomically (retrying on a lost race), then carry out the
 * effects — emits to sessions, relay bindings, timers, history, metrics.
 */
import type { CallId, CallQuality, PresenceStatus, QualitySummary, SessionId } from '@switchboard/protocol';
import { applyCallEvent } from '../calls/machine.js';
import { peerOf, roleOf } from '../calls/parties.js';
import { callQualityOf } from '../calls/quality.js';
import type { CallContext, CallInput, CallRecord, Effect, UserKey } from '../calls/types.js';
import { callKey, ringTimerId, splitKey, tenantOf, userKey } from '../calls/types.js';
import type { CallCommit, ClaimWrite, HistoryAppend, HistoryEntry, TimerWrite, Versioned } from '../store/types.js';
import type { Bindings } from './bindings.js';
import type { Conn, Deps } from './context.js';
import { refusals, SwitchboardError } from './errors.js';
import { KeyedMutex } from './keyed-mutex.js';
import type { DueTimers } from './timers.js';
import type { Presence } from './presence.js';

/** Ended calls are remembered this long, so late events get `invalid_state` and repeats stay idempotent. */
export const TOMBSTONE_MS = 5 * 60_000;
/** A transition that keeps losing races this often gives up with `internal`. */
const MAX_COMMIT_ATTEMPTS = 16;

export type CallOk = { call: CallRecord | undefined };

/** How many live calls a node keeps its last known version of. */
const RECENT_CALLS = 4096;

type RingTimerEffect = Extract<Effect, { kind: 'schedule-ring-timeout' | 'cancel-ring-timeout' }>;

function isRingTimerEffect(effect: Effect): effect is RingTimerEffect {
  return effect.kind === 'schedule-ring-timeout' || effect.kind === 'cancel-ring-timeout';
}

/** No session: nothing sealed. */
const NO_SESSIONS: ReadonlySet<SessionId> = new Set();

function timerWriteOf(tenant: string, effect: RingTimerEffect): TimerWrite {
  const id = ringTimerId(tenant, effect.callId);
  return effect.kind === 'schedule-ring-timeout' ? { op: 'schedule', kind: 'ring', id, dueAt: effect.dueAt } : { op: 'unschedule', kind: 'ring', id };
}

/** Both parties' history records of an ended call. */
interface EndedHistory {
  caller: HistoryAppend;
  callee: HistoryAppend;
}

function historyOf(call: CallRecord, now: number, quality: CallQuality | undefined): EndedHistory {
  const outcome = call.outcome ?? 'failed';
  const endedAt = call.endedAt ?? now;
  const reason = call.endReason ?? outcome;
  const durationMs = call.answeredAt === null ? 0 : Math.max(0, endedAt - call.answeredAt);
  // One literal per record, not `{ ...common, direction, peer }`: under load V8 placed the spread
  // copies in the old generation, which alone was half of what a call promoted (docs/benchmarks.md).
  const entry = (direction: 'outgoing' | 'incoming', peer: CallRecord['caller']): HistoryEntry => ({
    callId: call.id,
    outcome,
    reason,
    createdAt: call.createdAt,
    answeredAt: call.answeredAt,
    endedAt,
    durationMs,
    direction,
    peer: { id: peer.userId, name: peer.name },
    media: call.media,
    ...(quality ? { quality } : {}),
  });
  return {
    caller: { key: userKey(call.tenant, call.caller.userId), entry: entry('outgoing', call.callee) },
    callee: { key: userKey(call.tenant, call.callee.userId), entry: entry('incoming', call.caller) },
  };
}

/** The status a committed transition gives the call's parties: busy when it starts ringing, available when it ends. */
function statusChangeOf(event: CallInput, call: CallRecord, stored: Versioned<CallRecord> | undefined): PresenceStatus | null {
  if (event.type === 'request' && call.state === 'ringing') return 'busy';
  if (call.state === 'ended' && stored && stored.value.state !== 'ended') return 'available';
  return null;
}

/**
 * The last version of each live call this node committed or read. It is a
 * guess, never an authority: a transition computed from it commits only if the
 * store still holds exactly that version, and one it refuses is read and run
 * again. It saves the read before each event of a call whose previous event
 * ran here — in Redis mode one round trip per event.
 */
class RecentCalls {
  /** By `callKey`. */
  private readonly calls = new Map<string, Versioned<CallRecord>>();

  get(tenant: string, id: CallId): Versioned<CallRecord> | undefined {
    return this.calls.get(callKey(tenant, id));
  }

  put(found: Versioned<CallRecord>): void {
    const id = callKey(found.value.tenant, found.value.id);
    const known = this.calls.get(id);
    if (known && known.version > found.version) return;
    this.calls.delete(id);
    this.calls.set(id, found);
    // A Map iterates in insertion order: the first entry is the least recently written.
    if (this.calls.size > RECENT_CALLS) this.calls.delete(this.calls.keys().next().value as string);
  }

  drop(tenant: string, id: CallId): void {
    this.calls.delete(callKey(tenant, id));
  }
}

export class CallRunner {
  private readonly locks = new KeyedMutex();
  private readonly recent = new RecentCalls();

  /** The store is shared between nodes (a round trip per read), not this process's memory. */
  private readonly shared: boolean;

  constructor(
    private readonly deps: Deps,
    private readonly presence: Presence,
    private readonly timers: DueTimers,
    private readonly bindings: Bindings,
  ) {
    this.shared = deps.store.shared;
  }

  /**
   * Applies `event`; resolves with the call after it, or throws a `SwitchboardError`.
   * With a shared store, events of one call run one at a time on this node:
   * two sent together (a mute and a hangup) would otherwise race each other to
   * the store, and one would have to read and commit again. The memory store
   * answers within the same tick, where a lock would cost more than the rare retry.
   */
  run(event: CallInput, log?: { userId?: string; sessionId?: string }): Promise<CallOk> {
    if (!this.shared) return this.runLocked(event, log);
    return this.locks.run(callKey(tenantOf(event), event.callId), () => this.runLocked(event, log));
  }

  private async runLocked(first: CallInput, log?: { userId?: string; sessionId?: string }): Promise<CallOk> {
    const { store } = this.deps;
    const tenant = tenantOf(first);
    let event = first;
    // With a shared store the first attempt may work from a guess (see RecentCalls); any retry reads the store.
    let guess = this.shared;
    for (let attempt = 0; attempt < MAX_COMMIT_ATTEMPTS; attempt++) {
      // A request whose commit failed may have missed a device that signed in since its sessions were read.
      if (attempt > 0 && event.type === 'request' && event.calleeSessionsRead) event = await this.readCalleeAgain(event);
      const claimsRead = new Map<UserKey, CallId | null>();
      const ctx: CallContext = { now: this.deps.now(), ringTimeoutMs: this.deps.config.ringTimeoutMs, call: undefined };
      let stored: Versioned<CallRecord> | undefined;
      let fresh = false;
      if (guess && event.type === 'request') {
        // A new call: guess it does not exist yet and both users are free. The commit checks exactly
        // that (version 0, both claims empty); if either is wrong it fails and the next attempt reads.
        for (const user of [event.caller.userId, event.callee.userId]) claimsRead.set(userKey(event.tenant, user), null);
      } else if (guess && (stored = this.recent.get(tenant, event.callId)) !== undefined) {
        ctx.call = stored.value;
      } else {
        stored = await store.getCall(tenant, event.callId);
        fresh = true;
        if (stored) this.remember(stored);
        ctx.call = stored?.value;
        if (event.type === 'request' && !stored) {
          const keys = [userKey(event.tenant, event.caller.userId), userKey(event.tenant, event.callee.userId)];
          const claims = await store.getClaims(keys);
          keys.forEach((k, i) => claimsRead.set(k, claims[i] ?? null));
          ctx.callerCall = await this.liveCall(tenant, claims[0] ?? null);
          ctx.calleeCall = await this.liveCall(tenant, claims[1] ?? null);
        }
      }
      guess = false;
      const t = applyCallEvent(event, ctx);
      // Only an answer from what the store holds now is final: a guess that fails or changes nothing is checked.
      if (!t.ok) {
        if (!fresh) continue;
        throw new SwitchboardError(t.code, t.message, { callId: event.callId });
      }
      if (!t.changed || !t.call) {
        if (!fresh) continue;
        await this.carryOut(tenant, t.effects, undefined, undefined);
        return { call: t.call };
      }
      const call = t.call;
      const claims: ClaimWrite[] = t.claims.map((c) => {
        const key = userKey(call.tenant, c.userId);
        return c.callId === null
          ? { op: 'release', key, callId: call.id }
          : { op: 'take', key, expect: claimsRead.get(key) ?? null, callId: c.callId };
      });
      const expectVersion = stored?.version ?? 0;
      // The ring timeout is written with the call (a transition has at most one timer effect):
      // a ringing call in the store always has its timeout, even if this node dies right after.
      const timerEffect = t.effects.find(isRingTimerEffect);
      // So are both parties' history records of a call this transition ends.
      const ended = t.effects.find((e): e is Extract<Effect, { kind: 'ended' }> => e.kind === 'ended');
      const history = ended ? await this.historyOf(ended.call) : undefined;
      const commit: CallCommit = {
        call,
        expectVersion,
        claims,
        ttlMs: call.state === 'ended' ? TOMBSTONE_MS : null,
        ...(timerEffect ? { timer: timerWriteOf(call.tenant, timerEffect) } : {}),
        ...(history ? { history: [history.caller, history.callee] } : {}),
        ...(event.type === 'request' && event.calleeSessionsRead && call.state === 'ringing'
          ? { sessionsAsRead: { key: userKey(tenant, event.callee.userId), ids: event.calleeSessionsRead } }
          : {}),
      };
      const status = statusChangeOf(event, call, stored);
      const now: Versioned<CallRecord> = { value: call, version: expectVersion + 1 };
      // Events for sessions on other nodes go out with the commit itself (Redis mode): only if it is written.
      const sealed = this.deps.delivery.seal(t.effects, now);
      if (sealed.publish.length > 0) commit.publish = sealed.publish;
      const committed = await this.commit(commit, status);
      if (!committed) {
        this.recent.drop(tenant, event.callId);
        continue;
      }
      this.deps.delivery.sealedSent(sealed);
      this.remember(now);
      this.deps.observers.tell('changed', call, event, log);
      await this.carryOut(tenant, t.effects, now, history, sealed.sessions);
      if (event.type === 'request' && call.state === 'ringing') this.deps.observers.tell('started', call);
      if (status) this.presence.announceStatus(call.tenant, [call.caller.userId, call.callee.userId], status, committed.othersOnline);
      return { call };
    }
    throw refusals.callChangedTooOften(event.callId);
  }

  /** A request with the callee's sessions read again (a device may have signed in since the first read). */
  private async readCalleeAgain(event: Extract<CallInput, { type: 'request' }>): Promise<Extract<CallInput, { type: 'request' }>> {
    const found = await this.deps.store.sessionsOf(userKey(event.tenant, event.callee.userId));
    return { ...event, calleeSessions: found.filter((s) => s.connected).map((s) => s.id), calleeSessionsRead: found.map((s) => s.id) };
  }

  /** Tells this node the call as the store holds it now (a read made elsewhere, e.g. by the relay). */
  remember(found: Versioned<CallRecord>): void {
    if (!this.shared) return;
    if (found.value.state === 'ended') this.recent.drop(found.value.tenant, found.value.id);
    else this.recent.put(found);
  }

  /**
   * What another node told this one of a call, with an event for a session
   * here (`conn`, if it is still here): a version to guess the call's next
   * event from and, for a party of the active call, the relay binding that
   * lets its first offer go without a store read. A binding made from an old
   * version is undone like any other: the call's `call:ended` clears it on
   * its way out, and an ended call is never bound again.
   */
  learn(found: Versioned<CallRecord>, conn: Conn | undefined): void {
    this.remember(found);
    const call = found.value;
    const session = conn?.session;
    if (!conn || !session || call.state !== 'active' || conn.bound?.callId === call.id) return;
    const role = roleOf(call, session.id);
    if (!role) return;
    const peer = peerOf(call, role).sessionId;
    if (peer) this.bindings.bind(conn, call.id, peer);
  }

  /** Schedules a ring timeout outside a commit; a store failure is logged, not thrown (nothing else depends on it). */
  private async scheduleRingTimeout(tenant: string, callId: CallId, dueAt: number): Promise<void> {
    try {
      await this.timers.schedule('ring', ringTimerId(tenant, callId), dueAt);
    } catch (err) {
      this.deps.logger.error({ err, callId }, 'could not store a ring timeout');
    }
  }

  /**
   * Commits a transition. One that changes the parties' status, where the
   * status could go to other nodes, also counts in the same step who else in
   * the tenant is online (see `CallStore.commitCallCounting`). Null when not
   * committed; `othersOnline` is true unless counted and none.
   */
  private async commit(commit: CallCommit, status: PresenceStatus | null): Promise<{ othersOnline: boolean } | null> {
    const { store } = this.deps;
    if (!status || !this.presence.reachesOtherNodes()) return (await store.commitCall(commit)) ? { othersOnline: true } : null;
    const others = await store.commitCallCounting(commit);
    return others === null ? null : { othersOnline: others > 0 };
  }

  /** The call a claim names, unless it has ended or is gone (a stale claim counts as none). */
  private async liveCall(tenant: string, callId: CallId | null): Promise<CallRecord | undefined> {
    if (callId === null) return undefined;
    const found = await this.deps.store.getCall(tenant, callId);
    return found && found.value.state !== 'ended' ? found.value : undefined;
  }

  /** The call a user is in right now, if any. */
  async callOfUser(key: UserKey): Promise<CallRecord | undefined> {
    const [claim] = await this.deps.store.getClaims([key]);
    return this.liveCall(splitKey(key).tenant, claim ?? null);
  }

  /**
   * `committed`: the call as the commit these effects come with wrote it (ring
   * timer change included), or undefined when nothing was committed;
   * `history`: the records that commit wrote, if it ended the call;
   * `sealed`: the sessions whose events that commit published itself.
   */
  private async carryOut(
    tenant: string,
    effects: Effect[],
    committed: Versioned<CallRecord> | undefined,
    history: EndedHistory | undefined,
    sealed: ReadonlySet<SessionId> = NO_SESSIONS,
  ): Promise<void> {
    for (const effect of effects) {
      switch (effect.kind) {
        case 'emit':
          // A session the commit published to has its events already.
          if (!sealed.has(effect.to)) this.deps.delivery.toSession(effect.to, effect.event, effect.payload, committed);
          break;
        case 'bind':
          this.bindings.bindSessions(tenant, effect.callId, effect.sessions);
          break;
        case 'unbind':
          this.bindings.unbindCall(tenant, effect.callId);
          break;
        // A commit wrote its ring timer change with the call, and this node's local timer follows it. A
        // transition that changed nothing (a timeout that fired a moment early, re-armed) writes it here.
        case 'schedule-ring-timeout':
          if (committed) this.timers.arm('ring', ringTimerId(tenant, effect.callId), effect.dueAt);
          else await this.scheduleRingTimeout(tenant, effect.callId, effect.dueAt);
          break;
        case 'cancel-ring-timeout':
          if (committed) this.timers.disarm('ring', ringTimerId(tenant, effect.callId));
          else this.background(this.timers.unschedule('ring', ringTimerId(tenant, effect.callId)));
          break;
        case 'answered':
          this.deps.observers.tell('answered', effect.call);
          break;
        case 'ended':
          this.background(this.recordEnded(effect.call, history));
          break;
      }
    }
  }

  /** Tells the observers a call ended; writes its history too, unless its commit did (`stored`). */
  private async recordEnded(call: CallRecord, stored: EndedHistory | undefined): Promise<void> {
    const history = stored ?? (await this.historyOf(call));
    this.deps.observers.tell('ended', call, { caller: history.caller.entry, callee: history.callee.entry });
    // Both records in one round trip.
    if (!stored) await this.deps.store.appendHistory([history.caller, history.callee]);
  }

  /**
   * Both parties' history records of an ended call, with their quality
   * summaries: those saved beside the record (one read, for a call that was
   * answered: only then are there any) and the fresher ones of this node's sockets.
   */
  private async historyOf(call: CallRecord): Promise<EndedHistory> {
    let quality: CallQuality | undefined;
    if (call.answeredAt !== null) {
      const local = new Map<string, QualitySummary>();
      for (const conn of this.bindings.connsOf(call.tenant, call.id)) if (conn.quality?.callId === call.id) local.set(conn.quality.segment, conn.quality.summary);
      quality = callQualityOf(call, await this.deps.store.qualityOf(call.tenant, call.id), local);
    }
    return historyOf(call, this.deps.now(), quality);
  }

  private background(work: Promise<unknown>): void {
    work.catch((err: unknown) => this.deps.logger.error({ err }, 'call effect failed'));
  }
}
