/**
 * The WebRTC relay: `webrtc:*` only between the two bound sessions of an
 * active call, `from` always the sender's user id.
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
    if (conn.relayTail === null && this.sendNow(conn, event, payload)) return;
    // Checking the store takes a round trip; whatever the socket sends meanwhile waits behind it, in order.
    const run = () => (this.sendNow(conn, event, payload) ? undefined : this.slowPath(conn, event, payload));
    const tail = (conn.relayTail ?? Promise.resolve()).then(run, run);
    conn.relayTail = tail;
    const settle = () => {
      if (conn.relayTail === tail) conn.relayTail = null;
    };
    tail.then(settle, settle);
    return tail;
  }

  /** The hot path: relays at once if this socket is bound to the call, and says whether it did. */
  private sendNow(conn: Conn, event: RelayEvent, payload: RelayPayload): boolean {
    const bound = conn.bound;
    if (bound === null || bound.callId !== payload.callId) return false;
    this.forward(conn, event, bound.peer, payload);
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
  private async slowPath(conn: Conn, event: RelayEvent, payload: RelayPayload): Promise<void> {
    const session = conn.session as SessionInfo;
    const found = await this.deps.store.getCall(payload.callId as CallId);
    if (!found) throw refusals.noSuchCall(payload.callId as CallId);
    this.calls.remember(found);
    const call = found.value;
    const verdict = canRelay(call, { tenant: session.tenant, userId: session.userId, sessionId: session.id });
    if (!verdict.ok) throw new SwitchboardError(verdict.code, verdict.message, { callId: call.id });
    const { peer } = verdict;
    // The call may have ended while the store was read: then it is no longer there to bind to.
    if (!this.bindings.bind(conn, call.id, peer)) throw refusals.callEnded(call.id);
    this.forward(conn, event, peer, payload);
  }
}
