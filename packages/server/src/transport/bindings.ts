/**
 * Which local socket relays for which active call, and to which peer session.
 *
 * A binding is node-local state, set without a store read or a pub/sub
 * message wherever this node already knows the answer:
 * - when this node commits an answer or a resume (the machine's `bind`
 *   effect), for the parties whose sockets are here;
 * - otherwise on a socket's first relay, after `Relay` checked the call in
 *   the store (a party on another node than the one that took the answer).
 *
 * A binding ends with its call, on every node, without a message of its own:
 * - the node that commits the end (`unbind` effect) clears its local parties;
 * - a party elsewhere is told the call ended by `call:ended`, and the packet
 *   itself clears the binding on its way out to that socket;
 * - a socket that goes away takes its binding with it.
 * Calls seen ending on this node are remembered for a while, so a store read
 * that was in flight while the call ended cannot bind to it afterwards.
 *
 * This replaces a Socket.IO room per call: in Redis mode each join and leave
 * of such a room was a publish, and each room a sharded channel that every
 * node holding a party subscribed and unsubscribed once per call.
 */
import type { CallId, SessionId } from '@switchboard/protocol';
import { callKey } from '../calls/types.js';
import type { Conn } from './context.js';

/** A bound socket's call by `callKey` (a call id is its tenant's own; the socket's session names the tenant). */
function keyOf(conn: Conn, callId: string): string {
  return callKey(conn.session?.tenant ?? '', callId as CallId);
}

/** How many ended call ids a node remembers (a few seconds of calls at full speed). */
const RECENTLY_ENDED = 4096;

/** The server event that tells a party its active call is over (a ringing call has no binding to end). */
const ENDED = 'call:ended';

export class Bindings {
  /** Local sockets bound to each call (at most its two parties), by `callKey`; so are the ended ones. */
  private readonly byCall = new Map<string, Conn[]>();
  private readonly ended = new Set<string>();
  /** The same ids in a ring, oldest at `next`: evicting from a Set by iterating it gets slow as it churns. */
  private readonly endedRing: (string | undefined)[] = new Array<string | undefined>(RECENTLY_ENDED);
  private next = 0;

  /** `localConn` finds the socket that carries a session on this node, if any. */
  constructor(private readonly localConn: (session: SessionId) => Conn | undefined) {}

  /** Starts watching a new socket: `call:ended` clears its binding on the way out. */
  watch(conn: Conn): void {
    conn.socket.onAnyOutgoing((event: string, payload?: { callId?: unknown }) => {
      if (event !== ENDED || typeof payload?.callId !== 'string') return;
      this.remember(keyOf(conn, payload.callId));
      if (conn.bound?.callId === payload.callId) this.clear(conn);
    });
  }

  /** The `bind` effect: binds whichever of the call's two sessions are here, each to the other. */
  bindSessions(tenant: string, callId: string, sessions: readonly SessionId[]): void {
    const [a, b] = sessions;
    if (a === undefined || b === undefined || this.ended.has(callKey(tenant, callId as CallId))) return;
    const here = this.localConn(a);
    if (here) this.bind(here, callId, b);
    const there = this.localConn(b);
    if (there) this.bind(there, callId, a);
  }

  /** Binds one socket (after the store said it may relay); false when the call has ended meanwhile. */
  bind(conn: Conn, callId: string, peer: SessionId): boolean {
    const key = keyOf(conn, callId);
    if (this.ended.has(key) || conn.socket.disconnected) return false;
    if (conn.bound !== null) this.clear(conn);
    conn.bound = { callId, peer };
    const list = this.byCall.get(key);
    if (list) list.push(conn);
    else this.byCall.set(key, [conn]);
    return true;
  }

  /** The local sockets bound to a call (its parties that are on this node). */
  connsOf(tenant: string, callId: string): readonly Conn[] {
    return this.byCall.get(callKey(tenant, callId as CallId)) ?? [];
  }

  /** The `unbind` effect: the call ended (committed on this node). */
  unbindCall(tenant: string, callId: string): void {
    const key = callKey(tenant, callId as CallId);
    this.remember(key);
    const list = this.byCall.get(key);
    if (!list) return;
    this.byCall.delete(key);
    for (const conn of list) if (conn.bound?.callId === callId) conn.bound = null;
  }

  /** A socket went away. */
  forget(conn: Conn): void {
    if (conn.bound !== null) this.clear(conn);
  }

  private clear(conn: Conn): void {
    const key = keyOf(conn, conn.bound!.callId);
    conn.bound = null;
    const list = this.byCall.get(key);
    if (!list) return;
    const rest = list.filter((c) => c !== conn);
    if (rest.length === 0) this.byCall.delete(key);
    else this.byCall.set(key, rest);
  }

  /** Remembers a call (by `callKey`) as ended. */
  private remember(key: string): void {
    if (this.ended.has(key)) return;
    const oldest = this.endedRing[this.next];
    if (oldest !== undefined) this.ended.delete(oldest);
    this.endedRing[this.next] = key;
    this.next = (this.next + 1) % RECENTLY_ENDED;
    this.ended.add(key);
  }
}
