/**
 * The WebRTC relay: `webrtc:*` only between the two bound sessions of an
 * active call. A bound socket sits in the call's room, so the hot path is one
 * set lookup and one emit, synchronous, which keeps each sender's messages in
 * order. `from` is always the sender's user id.
 */
import type { CallId, IceCandidateInit, RelayEvent } from '@switchboard/protocol';
import { roleOf } from '../calls/machine.js';
import type { Conn, Deps, SessionInfo } from './context.js';
import { rooms } from './context.js';
import { SwitchboardError } from './errors.js';

export type RelayPayload = { callId: string; sdp: string } | { callId: string; candidate: IceCandidateInit | null };

export class Relay {
  constructor(private readonly deps: Deps) {}

  /** Relays at once when the socket is bound; otherwise explains why not (or binds a socket that should be). */
  send(conn: Conn, event: RelayEvent, payload: RelayPayload): void | Promise<void> {
    const session = conn.session as SessionInfo;
    const room = rooms.call(payload.callId);
    if (conn.socket.rooms.has(room)) {
      this.forward(conn, event, room, session, payload);
      return;
    }
    return this.slowPath(conn, event, room, session, payload);
  }

  private forward(conn: Conn, event: RelayEvent, room: string, session: SessionInfo, payload: RelayPayload): void {
    const out =
      'sdp' in payload
        ? { callId: payload.callId as CallId, from: session.userId, sdp: payload.sdp }
        : { callId: payload.callId as CallId, from: session.userId, candidate: payload.candidate };
    (conn.socket.to(room).emit as (event: RelayEvent, payload: unknown) => boolean)(event, out);
  }

  private async slowPath(conn: Conn, event: RelayEvent, room: string, session: SessionInfo, payload: RelayPayload): Promise<void> {
    const found = await this.deps.store.getCall(payload.callId as CallId);
    if (!found) throw new SwitchboardError('call_not_found', 'no such call', payload.callId as CallId);
    const call = found.value;
    const isParty = session.userId === call.caller.userId || session.userId === call.callee.userId;
    if (!isParty || (call.state === 'active' && !roleOf(call, session.id))) {
      throw new SwitchboardError('forbidden', 'this session is not bound to the call', call.id);
    }
    if (call.state !== 'active') throw new SwitchboardError('invalid_state', `the call is ${call.state}`, call.id);
    // Bound in the store but not yet in the room here (the join is still on its way from another node).
    conn.socket.join(room);
    this.forward(conn, event, room, session, payload);
  }
}
