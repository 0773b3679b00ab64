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
    // Every ICE candidate comes this way: the hot path allocates nothing (no closure for `toPeer`).
    const peer = conn.relayTail === null ? boundPeer(conn, payload.callId) : null;
    if (peer !== null) return this.forward(conn, event, peer, payload);
    return this.toPeer(conn, payload.callId, (p) => this.forward(conn, event, p, payload));
  }

  /**
   * Runs `deliver` with the peer session of `conn`'s active call `callId`, once
   * `conn` is known to be bound to it: at once on the hot path, else after the
   * store said so, in the order the socket sent its events. Throws (or
   * rejects) when `conn` may not relay in that call.
   */
  toPeer(conn: Conn, callId: string, deliver: (peer: SessionId) => void): void | Promise<void> {
    const peer = conn.relayTail === null ? boundPeer(conn, callId) : null;
    if (peer !== null) return deliver(peer);
    // Checking the store takes a round trip; whatever the socket sends meanwhile waits behind it, in order.
    const run = () => {
      const bound = boundPeer(conn, callId);
      return bound !== null ? deliver(bound) : this.slowPath(conn, callId, deliver);
    };
    const tail = (conn.relayTail ?? Promise.resolve()).then(run, run);
    conn.relayTail = tail;
    const settle = () => {
      if (conn.relayTail === tail) conn.relayTail = null;
    };
    tail.then(settle, settle);
    return tail;
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
    const found = await this.deps.store.getCall(session.tenant, callId as CallId);
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

/** The peer session `conn` relays to in `callId`, if this socket is bound to that call (the one-lookup hot path). */
function boundPeer(conn: Conn, callId: string): SessionId | null {
  const bound = conn.bound;
  return bound !== null && bound.callId === callId ? bound.peer : null;
}
