/**
 * Redis mode: what this node sends to sessions held by other nodes.
 *
 * Everything sent to one session within a tick travels as one sharded
 * publish, in order, on that session's channel — the channel the Socket.IO
 * adapter subscribes for the session's room on whichever node holds it. A
 * relayed offer and the ICE candidates sent right behind it cross as one
 * message instead of five.
 *
 * Besides events for the socket, a message may carry what this node knows of
 * the call an event is about (its record and version). The receiving node
 * keeps it as its guess for the call's next event (see `RecentCalls`) and,
 * for a party of an active call, binds the socket to relay at once — so the
 * callee's accept and the caller's first relayed offer need no store read.
 * A guess is only ever a guess: a commit from a stale one is refused by the
 * store and read again.
 *
 * Wire format (JSON, so the first byte is `[`, which the adapter's own
 * messages never start with): `[sessionId, ...items]`, an item being
 * `[0, event, payload]` or `[1, version, callRecord]`.
 */
import type { SessionId } from '@switchboard/protocol';
import type { CallRecord } from '../calls/types.js';
import type { Versioned } from '../store/types.js';

const EMIT = 0;
const CALL = 1;
/** `[`: the first byte of every message of ours. */
export const MAIL_MARK = 0x5b;

export type MailItem = { kind: 'emit'; event: string; payload: unknown } | { kind: 'call'; call: Versioned<CallRecord> };

type WireItem = [typeof EMIT, string, unknown] | [typeof CALL, number, CallRecord];

export interface MailTransport {
  /** Publishes one encoded message on the channel of `session`. */
  publish(session: SessionId, data: string): void;
}

export class SessionMail {
  private outbox = new Map<SessionId, unknown[]>();
  private scheduled = false;
  private readonly flush = () => this.flushNow();

  constructor(
    private readonly transport: MailTransport,
    private readonly onBadMessage: (err: unknown) => void,
  ) {}

  /** Someone to hand each arriving message's items to; set once the node's sessions exist. */
  deliver: (session: SessionId, items: MailItem[]) => void = () => undefined;

  /** Whether something for `session` still waits to go out this tick. */
  pending(session: SessionId): boolean {
    return this.outbox.has(session);
  }

  emit(session: SessionId, event: string, payload: unknown): void {
    this.queue(session, [EMIT, event, payload]);
  }

  /** What this node knows of a call, for the node that holds `session`. */
  tell(session: SessionId, call: Versioned<CallRecord>): void {
    // One commit may emit to a session twice: the version goes once.
    const items = this.outbox.get(session);
    if (items?.some((item, i) => i > 0 && (item as WireItem)[0] === CALL && (item as WireItem)[1] === call.version)) return;
    this.queue(session, [CALL, call.version, call.value]);
  }

  /** Decodes and delivers one message of ours (`raw[0] === MAIL_MARK`). */
  receive(raw: Buffer): void {
    let wire: unknown;
    try {
      wire = JSON.parse(raw.toString());
    } catch (err) {
      this.onBadMessage(err);
      return;
    }
    if (!Array.isArray(wire) || typeof wire[0] !== 'string') {
      this.onBadMessage(new Error('a session message without a session'));
      return;
    }
    const items: MailItem[] = [];
    for (let i = 1; i < wire.length; i++) {
      const item = wire[i] as WireItem;
      if (item[0] === EMIT) items.push({ kind: 'emit', event: item[1], payload: item[2] });
      else if (item[0] === CALL) items.push({ kind: 'call', call: { version: item[1], value: item[2] } });
    }
    this.deliver(wire[0] as SessionId, items);
  }

  private queue(session: SessionId, item: WireItem): void {
    const items = this.outbox.get(session);
    if (items) items.push(item);
    else this.outbox.set(session, [session, item]);
    if (!this.scheduled) {
      this.scheduled = true;
      // After the current callback and its promise jobs: a burst read from one socket goes out as one message.
      process.nextTick(this.flush);
    }
  }

  private flushNow(): void {
    this.scheduled = false;
    const outbox = this.outbox;
    this.outbox = new Map();
    for (const [session, message] of outbox) this.transport.publish(session, JSON.stringify(message));
  }
}
