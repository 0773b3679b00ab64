/**
 * The WebRTC relay: `webrtc:*` (and `call:quality`, see quality.ts) only
 * between the two bound sessions of an active call, `from` always the
 * sender's user id.
 *
 * A socket bound to the call (see bindings.ts) relays at once: one lookup,
 * then one synchronous emit to the peer's session (`Delivery.toSession`:
 * its socket in memory mode; in Redis mode its room, which reaches the one
 * node that holds it over a channel subscribed since sign-in). Either way a
 * sender's messages stay in order. An unbound socket checks the call in
 * the store first, and what it sends meanwhile waits behind that check.
 */
import type { CallId, IceCandidateInit, RelayEvent, SessionId } from '@switchboard/protocol';
import { canRelay } from '../calls/parties.js';
import type { Bindings } from './bindings.js';
import type { CallRunner } from './calls.js';
import type { Conn, Deps, SessionInfo } from './context.js';
import { refusals, SwitchboardError } from './errors.js';

export type RelayPayload = { callId: string; sdp: string } | { callId: string; candidate: IceCandidateInit | null };

export class Relay {
  constructor(
    private readonly deps: Deps,
    private readonly bindings: Bindings,
    private readonly calls: CallRunner,
  ) {}

  send(conn: Conn, event: RelayEvent, payload: RelayPayload): void | Promise<void> {
    return this.toPeer(conn, payload.callId, (peer) => this.forward(conn, event, peer, payload));
  }

  /**
   * Runs `deliver` with the peer session of `conn`'s active call `callId`, once
   * `conn` is known to be bound to it: at once on the hot path, else after the
   * store said so, in the order the socket sent its events. Throws (or
   * rejects) when `conn` may not relay in that call.
   */
  toPeer(conn: Conn, callId: string, deliver: (peer: SessionId) => void): void | Promise<void> {
    if (conn.relayTail === null && this.sendNow(conn, callId, deliver)) return;
    // Checking the store takes a round trip; whatever the socket sends meanwhile waits behind it, in order.
    const run = () => (this.sendNow(conn, callId, deliver) ? undefined : this.slowPath(conn, callId, deliver));
    const tail = (conn.relayTail ?? Promise.resolve()).then(run, run);
    conn.relayTail = tail;
    const settle = () => {
      if (conn.relayTail === tail) conn.relayTail = null;
    };
    tail.then(settle, settle);
    return tail;
  }

  /** The hot path: delivers at once if this socket is bound to the call, and says whether it did. */
  private sendNow(conn: Conn, callId: string, deliver: (peer: SessionId) => void): boolean {
    const bound = conn.bound;
    if (bound === null || bound.callId !== callId) return false;
    deliver(bound.peer);
    return true;
  }

  private forward(conn: Conn, event: RelayEvent, peer: SessionId, payload: RelayPayload): void {
    const from = (conn.session as SessionInfo).userId;
    const out =
      'sdp' in payload
        ? { callId: payload.callId as CallId, from, sdp: payload.sdp }
        : { callId: payload.callId as CallId, from, candidate: payload.candidate };
    this.deps.delivery.toSession(peer, event, out);
  }

  /** Checks the call in the store, then binds this socket to it. */
  private async slowPath(conn: Conn, callId: string, deliver: (peer: SessionId) => void): Promise<void> {
    const session = conn.session as SessionInfo;
    const found = await this.deps.store.getCall(callId as CallId);
    if (!found) throw refusals.noSuchCall(callId as CallId);
    this.calls.remember(found);
    const call = found.value;
    const verdict = canRelay(call, { tenant: session.tenant, userId: session.userId, sessionId: session.id });
    if (!verdict.ok) throw new SwitchboardError(verdict.code, verdict.message, { callId: call.id });
    const { peer } = verdict;
    // The call may have ended while the store was read: then it is no longer there to bind to.
    if (!this.bindings.bind(conn, call.id, peer)) throw refusals.callEnded(call.id);
    deliver(peer);
  }
}
