/**
 * `call:request`: who may be rung (visibility, the callee's live sessions),
 * how often one caller may ring one callee, and when the host app hears that
 * a visible user could not be reached (`call.unreachable`). The call itself is
 * the machine's (`CallRunner`).
 */
import { randomUUID } from 'node:crypto';
import type { AckData, CallId, CallRequestPayload, UserId } from '@switchboard/protocol';
import { iceServersFor } from '../auth/turn.js';
import { userKey } from '../calls/types.js';
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
    try {
      await this.calls.run(
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
        },
        logOf(session),
      );
    } catch (err) {
      // The rules took the caller (free, not calling itself) and found a visible callee with no live session.
      if (visible && err instanceof SwitchboardError && err.code === 'unavailable') await this.unreachable(session, to, callId);
      throw err;
    }
    // Issued now: a caller signed in long ago still gets TURN credentials valid for this call.
    return { callId, iceServers: iceServersFor(config, session.userId, now()) };
  }

  /** Tells the host app (`call.unreachable`) at most once per caller and callee within a ring window. */
  private async unreachable(session: SessionInfo, callee: UserId, callId: CallId): Promise<void> {
    const { store, config, now } = this.deps;
    const once: RateRule = { kind: 'window', limit: 1, windowMs: config.ringTimeoutMs };
    if (!(await store.admit(pairKey('unreachable', session.key, callee), once, now()))) return;
    this.deps.observers.tell('unreachable', { callId, tenant: session.tenant, caller: { id: session.userId, name: session.name }, callee });
  }
}
