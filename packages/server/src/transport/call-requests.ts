/**
 * `call:request`: who may be rung (visibility, the callee's live sessions),
 * how often one caller may ring one callee, and when the host app hears that
 * a visible user could not be reached (`call.unreachable`). The call itself is
 * the machine's (`CallRunner`).
 */
import { randomUUID } from 'node:crypto';
import type { AckData, CallId, CallRequestPayload, UserId } from '@switchboard/protocol';
import { iceServersFor } from '../auth/turn.js';
import type { UnreachableCall } from '../calls/hooks.js';
import { userKey, type CallRecord } from '../calls/types.js';
import type { RateRule } from '../store/types.js';
import { PAIR_REQUESTS, pairKey } from './abuse.js';
import type { CallRunner } from './calls.js';
import type { Deps, SessionInfo } from './context.js';
import { actorOf, logOf } from './context.js';
import { refusals, SwitchboardError } from './errors.js';
import type { Presence } from './presence.js';

export class CallRequests {
  constructor(
    private readonly deps: Deps,
    private readonly calls: CallRunner,
    private readonly presence: Presence,
  ) {}

  /** `call:request` from `session`: resolves with the call's id, or throws the refusal. */
  async request(session: SessionInfo, p: CallRequestPayload): Promise<AckData['call:request']> {
    const to = p.to as UserId;
    const { store, config, now } = this.deps;
    const visible = to !== session.userId && this.presence.canSee(session, to);
    // The pair's limit is read in the same round trip as the callee's sessions.
    const [admitted, found] = await Promise.all([
      config.rateLimits ? store.admit(pairKey('call', session.key, to), PAIR_REQUESTS, now()) : true,
      visible ? store.sessionsOf(userKey(session.tenant, to)) : [],
    ]);
    if (!admitted) throw refusals.pairRate(PAIR_REQUESTS.limit);
    const calleeSessions = found.filter((s) => s.connected);
    const callId = (p.callId ?? randomUUID()) as CallId;
    // RING_OFFLINE=webhook: a visible user with no live session is rung all the same, and pushed to.
    const offline = visible && calleeSessions.length === 0 && config.ringOffline === 'webhook';
    let made: CallRecord | undefined;
    try {
      ({ call: made } = await this.calls.run(
        {
          type: 'request',
          callId,
          tenant: session.tenant,
          caller: actorOf(session),
          callee: { userId: to, name: calleeSessions[0]?.name ?? to },
          calleeSessions: calleeSessions.map((s) => s.id),
          ...(visible ? { calleeSessionsRead: found.map((s) => s.id) } : {}),
          media: p.media ?? { audio: true, video: false },
          calleeIceServers: iceServersFor(config, to, now()),
          ...(offline ? { ringOffline: true } : {}),
        },
        logOf(session),
      ));
    } catch (err) {
      // The rules took the caller (free, not calling itself) and found a visible callee with no live session.
      if (visible && err instanceof SwitchboardError && err.code === 'unavailable') await this.unreachable(session, to, callId);
      throw err;
    }
    if (offline && made?.state === 'ringing' && made.ringing.length === 0) void this.push(session, to, callId);
    // Issued now: a caller signed in long ago still gets TURN credentials valid for this call.
    return { callId, iceServers: iceServersFor(config, session.userId, now()) };
  }

  /** True the first time `session`'s user reaches `callee` unreachable within a ring window (`call.unreachable` goes once). */
  private firstInRing(session: SessionInfo, callee: UserId): Promise<boolean> {
    const { store, config, now } = this.deps;
    const once: RateRule = { kind: 'window', limit: 1, windowMs: config.ringTimeoutMs };
    return store.admit(pairKey('unreachable', session.key, callee), once, now());
  }

  /**
   * A call that rings no device (`RING_OFFLINE=webhook`): the host app hears
   * `call.unreachable` at once (within the same once-per-pair-and-ring limit)
   * and pushes to the user's phone; if it refuses or does not answer in time,
   * the call ends as `unavailable`. Runs after the caller's ack: the ring
   * never waits on the receiver.
   */
  private async push(session: SessionInfo, callee: UserId, callId: CallId): Promise<void> {
    const { observers, logger } = this.deps;
    try {
      if (!(await this.firstInRing(session, callee))) return;
      const taken = await observers.push(unreachableCall(session, callee, callId));
      if (!taken) await this.calls.run({ type: 'push-failed', callId, tenant: session.tenant }, logOf(session));
    } catch (err) {
      logger.warn({ err, callId }, 'could not push a call that rings no device');
    }
  }

  /** Tells the host app (`call.unreachable`) at most once per caller and callee within a ring window. */
  private async unreachable(session: SessionInfo, callee: UserId, callId: CallId): Promise<void> {
    if (!(await this.firstInRing(session, callee))) return;
    this.deps.observers.tell('unreachable', unreachableCall(session, callee, callId));
  }
}

/** What the host app hears of a call from `session`'s user to `callee`, who has no live session. */
function unreachableCall(session: SessionInfo, callee: UserId, callId: CallId): UnreachableCall {
  return { callId, tenant: session.tenant, caller: { id: session.userId, name: session.name }, callee };
}
