/**
 * How events reach sessions and rooms. One interface, two implementations
 * chosen when the node is assembled (as nextcloud's loopback and NATS
 * clients are): with one process every socket is here (`LoopbackDelivery`);
 * with Redis a session or a room's sockets may be on other nodes, reached by
 * the session mail (`ClusterDelivery`, session-mail.ts).
 */
import type { SessionId } from '@switchboard/protocol';
import type { CallRecord } from '../calls/types.js';
import type { Versioned } from '../store/types.js';
import type { Conn, SbServer, UntypedEmit } from './context.js';
import { rooms } from './context.js';
import type { SessionMail } from './session-mail.js';

export interface Delivery {
  /** Other nodes may hold sessions: announcements go out to them, and a call's commit counts whether anyone else could hear one. */
  readonly crossesNodes: boolean;
  /**
   * Sends an event to one session: to its socket when it is here (or
   * nowhere while it is away, inside its grace); in Redis mode to the node
   * that holds it. `known` is what this node knows of the call the event is
   * about: the mail carries it along, so that node can run the call's next
   * event without a store read.
   */
  toSession(session: SessionId, event: string, payload: unknown, known?: Versioned<CallRecord>): void;
  /** Tells the sockets of `room`, on every node, but those in any room of `except`. */
  announce(room: string, except: readonly string[], event: string, payload: unknown): void;
}

/** The sockets of this node, by the session each carries. */
export type LocalSessions = Map<SessionId, Conn>;

/**
 * Tells this node's sockets of `target` but those in any room of `except`;
 * an announcement none of them would receive is not even encoded.
 */
export function tellLocal(io: SbServer, target: string, except: readonly string[], event: string, payload: unknown): void {
  const local = io.of('/').adapter.rooms;
  const members = local.get(target);
  if (!members) return;
  const left = except.map((room) => local.get(room));
  for (const socketId of members) {
    if (left.some((room) => room?.has(socketId))) continue;
    (io.local.to(target).except([...except]).emit as UntypedEmit)(event, payload);
    return;
  }
}

/** One process: every socket is here. */
export class LoopbackDelivery implements Delivery {
  readonly crossesNodes = false;

  constructor(
    private readonly io: SbServer,
    private readonly local: LocalSessions,
  ) {}

  toSession(session: SessionId, event: string, payload: unknown): void {
    const conn = this.local.get(session);
    if (conn) (conn.socket.emit as UntypedEmit)(event, payload);
  }

  announce(room: string, except: readonly string[], event: string, payload: unknown): void {
    tellLocal(this.io, room, except, event, payload);
  }
}

/** Redis mode: what is here goes out at once, the rest by the session mail. */
export class ClusterDelivery implements Delivery {
  readonly crossesNodes = true;

  constructor(
    private readonly io: SbServer,
    private readonly local: LocalSessions,
    private readonly mail: SessionMail,
  ) {}

  /**
   * To the session's room through the adapter when a socket of it is here
   * (during a takeover a session briefly has two), unless mail for the
   * session still waits to go out this tick: then behind it, one order per session.
   */
  toSession(session: SessionId, event: string, payload: unknown, known?: Versioned<CallRecord>): void {
    if (this.local.has(session) && !this.mail.pending(session)) {
      (this.io.to(rooms.session(session)).emit as UntypedEmit)(event, payload);
      return;
    }
    if (known) this.mail.tell(session, known);
    this.mail.emit(session, event, payload);
  }

  /** This node's sockets at once; the other nodes' by one publish per room and tick. */
  announce(room: string, except: readonly string[], event: string, payload: unknown): void {
    tellLocal(this.io, room, except, event, payload);
    this.mail.announce(room, except, event, payload);
  }
}
