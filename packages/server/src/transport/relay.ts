/**
 * The WebRTC relay: `webrtc:*` only between the two bound sessions of an
 * active call, `from` always the sender's user id.
 *
 * A bound socket sits in its call's room (joined when the call is answered or
 * resumed, left when it ends), and remembers the peer's session after the
 * first relay checked it against the store. The hot path is then two lookups
 * and one synchronous emit to the peer's session room — which keeps a sender's
 * messages in order and, in Redis mode, goes to the one node that holds the
 * peer over a channel it has subscribed since sign-in.
 */
import type { CallId, IceCandidateInit, RelayEvent, SessionId } from '@switchboard/protocol';
import { roleOf } from '../calls/machine.js';
import type { Conn, Deps, SessionInfo } from './context.js';
import { rooms } from './context.js';
import { SwitchboardError } from './errors.js';

export type RelayPayload = { callId: string; sdp: string } | { callId: string; candidate: IceCandidateInit | null };

export class Relay {
  constructor(private readonly deps: Deps) {}

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
    if (bound === null || bound.callId !== payload.callId || !conn.socket.rooms.has(rooms.call(payload.callId))) return false;
    this.forward(conn, event, bound.peer, payload);
    return true;
  }

  private forward(conn: Conn, event: RelayEvent, peer: SessionId, payload: RelayPayload): void {
    const from = (conn.session as SessionInfo).userId;
    const out =
      'sdp' in payload
        ? { callId: payload.callId as CallId, from, sdp: payload.sdp }
        : { callId: payload.callId as CallId, from, candidate: payload.candidate };
    (conn.socket.to(rooms.session(peer)).emit as (event: RelayEvent, payload: unknown) => boolean)(event, out);
  }

  /** Checks the call in the store, then binds this socket to it (the room join may still be on its way from another node). */
  private async slowPath(conn: Conn, event: RelayEvent, payload: RelayPayload): Promise<void> {
    const session = conn.session as SessionInfo;
    conn.bound = null;
    const found = await this.deps.store.getCall(payload.callId as CallId);
    if (!found) throw new SwitchboardError('call_not_found', 'no such call', payload.callId as CallId);
    const call = found.value;
    // A call of another tenant does not exist for this session (the same sub in two tenants is two users).
    if (call.tenant !== session.tenant) throw new SwitchboardError('call_not_found', 'no such call', payload.callId as CallId);
    const isParty = session.userId === call.caller.userId || session.userId === call.callee.userId;
    const role = call.state === 'active' ? roleOf(call, session.id) : undefined;
    if (!isParty || (call.state === 'active' && !role)) {
      throw new SwitchboardError('forbidden', 'this session is not bound to the call', call.id);
    }
    if (call.state !== 'active' || !role) throw new SwitchboardError('invalid_state', `the call is ${call.state}`, call.id);
    const peer = (role === 'caller' ? call.callee.sessionId : call.caller.sessionId) as SessionId;
    void conn.socket.join(rooms.call(call.id));
    conn.bound = { callId: call.id, peer };
    this.forward(conn, event, peer, payload);
  }
}
