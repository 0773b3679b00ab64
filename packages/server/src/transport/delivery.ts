/**
 * How events reach sessions and rooms. One interface, two implementations
 * chosen when the node is assembled (as nextcloud's loopback and NATS
 * clients are): with one process every socket is here (`LoopbackDelivery`);
 * with Redis a session or a room's sockets may be on other nodes, reached by
 * the session mail (`ClusterDelivery`, session-mail.ts).
 */
import type { SessionId } from '@switchboard/protocol';
import type { CallRecord, Effect, UserKey } from '../calls/types.js';
import { groupOf, groupOfSession } from '../store/redis-keys.js';
import type { Publication, Versioned } from '../store/types.js';
import type { Conn, SbServer, UntypedEmit } from './context.js';
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
  /**
   * Tells the sockets of `room`, on every node, but those in any room of
   * `except`. `subject`: the user whose presence (`user:online`,
   * `user:offline`) this announces, which the other nodes check against the
   * store when it arrives (`Presence.receive`).
   */
  announce(room: string, except: readonly string[], event: string, payload: unknown, subject?: UserKey): void;
  /**
   * Of a transition's emits, those a commit may publish itself
   * (`CallCommit.publish`): in Redis mode, the events for sessions held by
   * other nodes that nothing of this node's is still on its way to, one
   * message per session carrying `known`, the call the commit writes (its
   * store puts the record in: `Publication`). The rest go by `toSession`
   * after the commit; `sessions` names those the commit's messages cover.
   */
  seal(effects: readonly Effect[], known: Versioned<CallRecord>): Sealed;
  /** The sealed messages went out with their commit (counted as sent mail). */
  sealedSent(sealed: Sealed): void;
}

export interface Sealed {
  /** What the commit publishes, one message per session. */
  publish: readonly Publication[];
  /** The sessions those messages are for: their events are not sent again. */
  sessions: ReadonlySet<SessionId>;
}

const NOTHING_SEALED: Sealed = Object.freeze({ publish: [], sessions: new Set<SessionId>() });

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

  /** Every session is here: a commit publishes nothing. */
  seal(): Sealed {
    return NOTHING_SEALED;
  }

  sealedSent(): void {}
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
   * To the session's socket when it is here, as the loopback does and as
   * the session mail delivers on arrival: no publish, which the adapter
   * would make for an emit to the room, only to hear it back. (A socket the
   * session moved away from, here or on another node, is on its way out and
   * gets nothing.) Unless mail for the session is still on its way: then
   * behind it, one order per session.
   */
  toSession(session: SessionId, event: string, payload: unknown, known?: Versioned<CallRecord>): void {
    const conn = this.local.get(session);
    if (conn && !this.mail.pending(session)) {
      (conn.socket.emit as UntypedEmit)(event, payload);
      return;
    }
    if (known) this.mail.tell(session, known);
    this.mail.emit(session, event, payload);
  }

  seal(effects: readonly Effect[], known: Versioned<CallRecord>): Sealed {
    let by: Map<SessionId, { event: string; payload: unknown }[]> | undefined;
    const group = groupOf(known.value.tenant);
    for (const emit of effects) {
      if (emit.kind !== 'emit') continue;
      // A session here is emitted to directly; one in another key group (none, for a call's parties) cannot share the commit's slot.
      if (this.local.has(emit.to) || this.mail.pending(emit.to) || groupOfSession(emit.to) !== group) continue;
      by ??= new Map();
      const list = by.get(emit.to);
      if (list) list.push(emit);
      else by.set(emit.to, [emit]);
    }
    if (!by) return NOTHING_SEALED;
    const publish: Publication[] = [];
    for (const [session, list] of by) publish.push(this.mail.seal(session, known.version, list));
    return { publish, sessions: new Set(by.keys()) };
  }

  sealedSent(sealed: Sealed): void {
    this.mail.sealedSent(sealed.publish.length);
  }

  /** This node's sockets at once; the other nodes' by one publish per room and tick. */
  announce(room: string, except: readonly string[], event: string, payload: unknown, subject?: UserKey): void {
    tellLocal(this.io, room, except, event, payload);
    this.mail.announce(room, except, event, payload, subject);
  }
}
