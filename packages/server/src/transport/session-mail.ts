/**
 * Redis mode: what this node sends to sessions and rooms held by other nodes.
 *
 * Everything sent to one session within a tick travels as one sharded
 * publish, in order, on that session's channel — the channel the Socket.IO
 * adapter subscribes for the session's room on whichever node holds it. A
 * relayed offer and the ICE candidates sent right behind it cross as one
 * message instead of five. A session has at most one message on its way:
 * the next goes once Redis has answered it, with all that was sent meanwhile.
 * Two publishes in flight could cross (ioredis sends a command again after a
 * redirect or a lost connection, while the next has gone straight through);
 * one at a time, they keep the order they were sent in.
 *
 * Besides events for the socket, a message may carry what this node knows of
 * the call an event is about (its record and version). The receiving node
 * keeps it as its guess for the call's next event (see `RecentCalls`) and,
 * for a party of an active call, binds the socket to relay at once — so the
 * callee's accept and the caller's first relayed offer need no store read.
 * A guess is only ever a guess: a commit from a stale one is refused by the
 * store and read again.
 *
 * A call transition's own events for a session elsewhere need no publish of
 * this node's: they are encoded here (`seal`) and published by the commit
 * itself (`CallCommit.publish`), only if it is written. To keep one order per
 * session, that is only for a session nothing of this node's is still on its
 * way to (`pending`: queued this tick, or published and not yet answered).
 *
 * Presence announcements to a room (a tenant, a user's watchers) go the same
 * way: what one tick announces to one room is one publish on that room's
 * channel, in order (the two parties of a call turning busy together are one
 * message), one message on its way per room. The sending node delivers to its own sockets
 * itself, so it skips its own message when it hears it back.
 *
 * Wire format (JSON, so the first byte is `[`, which the adapter's own
 * messages never start with):
 * - to a session: `[sessionId, ...items]`, an item being `[0, event, payload]`,
 *   `[1, version, callRecord]` or `[2, event, payload, n]`: an event whose
 *   payload's `sdp` is the next `n` characters of the raw texts after the
 *   JSON. Those follow a NUL character (which JSON never holds unescaped),
 *   in the order of their items: a relayed offer or answer crosses as it
 *   came, without escaping each line break into the JSON and back (which
 *   cost more than the rest of the message together);
 * - to a room: `[0, origin, room, ...[except, event, payload]]`, `except` the
 *   rooms whose sockets are left out.
 */
import type { SessionId } from '@switchboard/protocol';
import type { CallRecord, UserKey } from '../calls/types.js';
import type { Publication, Versioned } from '../store/types.js';

const EMIT = 0;
const CALL = 1;
const EMIT_RAW_SDP = 2;
/** Between a message's JSON and its raw texts. */
const RAW = '\u0000';
/** A shorter `sdp` stays in the JSON. */
const RAW_SDP_MIN = 256;
/** `[`: the first byte of every message of ours. */
export const MAIL_MARK = 0x5b;

export type MailItem = { kind: 'emit'; event: string; payload: unknown } | { kind: 'call'; call: Versioned<CallRecord> };

type WireItem = [typeof EMIT, string, unknown] | [typeof CALL, number, CallRecord] | [typeof EMIT_RAW_SDP, string, Record<string, unknown>, number];

/** A message on its way out: its items, and the raw texts that follow its JSON. */
interface Outgoing {
  message: unknown[];
  raw: string;
}

/** A payload's `sdp`, when long enough to travel raw. */
function rawSdpOf(payload: unknown): string | null {
  if (typeof payload !== 'object' || payload === null) return null;
  const sdp = (payload as { sdp?: unknown }).sdp;
  return typeof sdp === 'string' && sdp.length >= RAW_SDP_MIN ? sdp : null;
}

const ROOM_MESSAGE = 0;

/**
 * Messages waiting to go, by the session or room they go to, with at most
 * one on its way per key (why: the top of this file): a key whose last
 * message Redis has not answered yet keeps its next, which goes on growing,
 * until it has.
 */
class Lane<K, M> {
  queued = new Map<K, M>();
  private readonly onTheirWay = new Set<K>();

  /** Whether something for `key` waits to go, or has gone and Redis has not answered. */
  pending(key: K): boolean {
    return this.queued.has(key) || this.onTheirWay.has(key);
  }

  /** Sends each queued message whose key has none on its way (`send` settles when Redis answers); `wake` when a kept one may go. */
  flush(send: (key: K, message: M) => Promise<unknown>, wake: () => void): void {
    const queued = this.queued;
    this.queued = new Map();
    for (const [key, message] of queued) {
      if (this.onTheirWay.has(key)) {
        this.queued.set(key, message);
        continue;
      }
      this.onTheirWay.add(key);
      void send(key, message).finally(() => {
        this.onTheirWay.delete(key);
        if (this.queued.has(key)) wake();
      });
    }
  }
}

/** One announcement to a room: the rooms left out, the event, its payload, and for presence the user it is about. */
export type RoomEntry = [except: string[], event: string, payload: unknown, subject?: UserKey];

export interface MailTransport {
  /** Publishes one encoded message on the channel of `session`; settles once Redis has taken it (or failed to). */
  publish(session: SessionId, data: string): Promise<unknown>;
  /** The channel of `session` (for a message a commit publishes itself). */
  channelOf(session: SessionId): string;
  /** Publishes one encoded message on the channel of `room`; settles once Redis has taken it (or failed to). */
  publishToRoom(room: string, data: string): Promise<unknown>;
}

export interface MailReceiver {
  session(session: SessionId, items: MailItem[]): void;
  /** Events for this node's sockets in `room`, each but those in any of its `except` rooms. */
  room(room: string, entries: RoomEntry[]): void;
}

export class SessionMail {
  /** A session's next message, and anything sent to it on another road, waits behind the one on its way. */
  private readonly sessions = new Lane<SessionId, Outgoing>();
  private readonly rooms = new Lane<string, unknown[]>();
  private scheduled = false;
  private readonly flush = () => this.flushNow();

  /** `deliver` takes each arriving message; `origin` names this node in its room messages; `count` hears of every message sent and received. */
  constructor(
    private readonly transport: MailTransport,
    private readonly deliver: MailReceiver,
    private readonly origin: string,
    private readonly onBadMessage: (err: unknown) => void,
    private readonly count: (direction: 'out' | 'in', kind: 'session' | 'room' | 'unreadable') => void = () => undefined,
  ) {}

  /** Whether something for `session` still waits to go out this tick, or to be taken by Redis. */
  pending(session: SessionId): boolean {
    return this.sessions.pending(session);
  }

  /**
   * One message for `session` with these events and what this node knows of
   * their call, encoded as `flushNow` would send it but for a commit to
   * publish itself (`CallCommit.publish`), which puts in the call it writes
   * (version `version`). Only for a session nothing of this node's is
   * `pending` for, so it cannot overtake anything.
   */
  seal(session: SessionId, version: number, emits: readonly { event: string; payload: unknown }[]): Publication {
    let after = ']';
    for (const { event, payload } of emits) after += `,${JSON.stringify([EMIT, event, payload])}`;
    return { channel: this.transport.channelOf(session), before: `[${JSON.stringify(session)},[${CALL},${version},`, after: `${after}]` };
  }

  /** Counts `n` sealed messages that went out with their commit. */
  sealedSent(n: number): void {
    for (let i = 0; i < n; i++) this.count('out', 'session');
  }

  emit(session: SessionId, event: string, payload: unknown): void {
    const sdp = rawSdpOf(payload);
    if (sdp === null) {
      this.queue(session, [EMIT, event, payload]);
      return;
    }
    const { sdp: _raw, ...rest } = payload as { sdp: string };
    this.queue(session, [EMIT_RAW_SDP, event, rest, sdp.length], sdp);
  }

  /** What this node knows of a call, for the node that holds `session`. */
  tell(session: SessionId, call: Versioned<CallRecord>): void {
    // One commit may emit to a session twice: the version goes once.
    const items = this.sessions.queued.get(session)?.message;
    if (items?.some((item, i) => i > 0 && (item as WireItem)[0] === CALL && (item as WireItem)[1] === call.version)) return;
    this.queue(session, [CALL, call.version, call.value]);
  }

  /** Announces `event` to the sockets of `room` on other nodes, but those in any of `except` (`subject`: see `Delivery.announce`). */
  announce(room: string, except: readonly string[], event: string, payload: unknown, subject?: UserKey): void {
    const entry: RoomEntry = subject === undefined ? [[...except], event, payload] : [[...except], event, payload, subject];
    const queued = this.rooms.queued.get(room);
    if (queued) queued.push(entry);
    else this.rooms.queued.set(room, [ROOM_MESSAGE, this.origin, room, entry]);
    this.schedule();
  }

  /** Decodes and delivers one message of ours (`raw[0] === MAIL_MARK`). */
  receive(raw: Buffer): void {
    const text = raw.toString();
    const cut = text.indexOf(RAW);
    let wire: unknown;
    try {
      wire = JSON.parse(cut < 0 ? text : text.slice(0, cut));
    } catch (err) {
      this.count('in', 'unreadable');
      this.onBadMessage(err);
      return;
    }
    if (Array.isArray(wire) && wire[0] === ROOM_MESSAGE && typeof wire[2] === 'string') {
      this.count('in', 'room');
      if (wire[1] !== this.origin) this.deliver.room(wire[2], wire.slice(3) as RoomEntry[]);
      return;
    }
    if (!Array.isArray(wire) || typeof wire[0] !== 'string') {
      this.count('in', 'unreadable');
      this.onBadMessage(new Error('a message to neither a session nor a room'));
      return;
    }
    const items: MailItem[] = [];
    let at = cut + 1;
    for (let i = 1; i < wire.length; i++) {
      const item = wire[i] as WireItem;
      if (item[0] === EMIT) items.push({ kind: 'emit', event: item[1], payload: item[2] });
      else if (item[0] === CALL) items.push({ kind: 'call', call: { version: item[1], value: item[2] } });
      else if (item[0] === EMIT_RAW_SDP) {
        const n = item[3];
        if (cut < 0 || typeof item[2] !== 'object' || item[2] === null || !Number.isInteger(n) || n < 0 || at + n > text.length) {
          this.count('in', 'unreadable');
          this.onBadMessage(new Error('a raw sdp beyond the end of its message'));
          return;
        }
        item[2].sdp = text.slice(at, at + n);
        at += n;
        items.push({ kind: 'emit', event: item[1], payload: item[2] });
      }
    }
    this.count('in', 'session');
    this.deliver.session(wire[0] as SessionId, items);
  }

  private queue(session: SessionId, item: WireItem, raw = ''): void {
    const out = this.sessions.queued.get(session);
    if (out) {
      out.message.push(item);
      out.raw += raw;
    } else this.sessions.queued.set(session, { message: [session, item], raw });
    this.schedule();
  }

  private schedule(): void {
    if (!this.scheduled) {
      this.scheduled = true;
      // After the current callback and its promise jobs: a burst read from one socket goes out as one message.
      process.nextTick(this.flush);
    }
  }

  private flushNow(): void {
    this.scheduled = false;
    // What was sent to a session or a room while its last message was on its way goes when Redis answers, as one message.
    this.sessions.flush(this.sendToSession, this.wake);
    this.rooms.flush(this.sendToRoom, this.wake);
  }

  private readonly wake = () => this.schedule();

  private readonly sendToSession = (session: SessionId, { message, raw }: Outgoing): Promise<unknown> => {
    this.count('out', 'session');
    return this.transport.publish(session, raw === '' ? JSON.stringify(message) : `${JSON.stringify(message)}${RAW}${raw}`);
  };

  private readonly sendToRoom = (room: string, message: unknown[]): Promise<unknown> => {
    this.count('out', 'room');
    return this.transport.publishToRoom(room, JSON.stringify(message));
  };
}
