/** What every part of the transport shares: the wiring, and each local socket's state. */
import type { Server, Socket } from 'socket.io';
import type {
  CallId,
  QualitySummary,
  QualityWarning,
  UserRef,
  ClientToServerEvents,
  InterServerEvents,
  ServerToClientEvents,
  SessionId,
  SocketData,
  UserId,
} from '@switchboard/protocol';
import type { TokenVerifier } from '../auth/tokens.js';
import type { Actor, CallRecord, UserKey } from '../calls/types.js';
import type { Config } from '../config.js';
import type { Logger } from '../logger.js';
import type { Metrics } from '../metrics.js';
import type { CallObservers } from '../calls/hooks.js';
import type { CallStore, Versioned } from '../store/types.js';
import type { RateLimiter } from './rate-limit.js';
import type { Delivery } from './delivery.js';
import type { AddressOf } from './client-address.js';
import { groupOfSession, groupTag } from '../store/redis-keys.js';

/** An emit of any event name and payload (the typed maps know only the protocol's own pairs). */
export type UntypedEmit = (event: string, payload: unknown) => boolean;

export type SbServer = Server<ClientToServerEvents, ServerToClientEvents, InterServerEvents, SocketData>;
export type SbSocket = Socket<ClientToServerEvents, ServerToClientEvents, InterServerEvents, SocketData>;

/** The authenticated identity of a live session, as this node holds it. */
export interface SessionInfo {
  id: SessionId;
  userId: UserId;
  name: string;
  tenant: string;
  key: UserKey;
  /** Whom this session may see and call, when `CONTACTS=claims`. */
  contacts: ReadonlySet<string> | null;
}

/** One socket on this node. */
export interface Conn {
  socket: SbSocket;
  /** The client's address (`Deps.addressOf`): the TCP peer's, or behind trusted proxies the one they forwarded. */
  address: string;
  session: SessionInfo | null;
  limiter: RateLimiter | null;
  authTimer: NodeJS.Timeout | null;
  /** An auth or resume is in flight: a second one is refused. */
  authenticating: boolean;
  /** The active call this socket relays for and the peer session it relays to (a one-entry cache; see relay.ts). */
  bound: { callId: string; peer: SessionId } | null;
  /** The last relay still waiting on the store; later relays queue behind it to keep their order. */
  relayTail: Promise<void> | null;
  /** This socket's quality reports for its active call (see quality.ts). */
  quality: QualityState | null;
  /** Set when the server closes the socket on purpose, so its disconnect is not a transport loss. */
  closing: 'takeover' | 'closed' | null;
}

/** What a socket's `call:quality` reports add up to, for one call. */
export interface QualityState {
  callId: string;
  /** Names this socket's stretch of reports beside the call's record (`<sessionId> <id>`, see calls/quality.ts). */
  segment: string;
  summary: QualitySummary;
  /** When the next report is due (one coming more than the allowed jitter earlier is dropped). */
  dueAt: number;
  /** When `summary` was last saved into the call's record; null before the first save. */
  savedAt: number | null;
  /** The warnings the last report raised (a warning is counted when it first appears). */
  warnings: readonly QualityWarning[];
  /** The level and warnings last sent to the peer (a report that changes neither is not sent). */
  forwarded: string | null;
}

export interface Deps {
  config: Config;
  store: CallStore;
  io: SbServer;
  logger: Logger;
  metrics: Metrics;
  verifier: TokenVerifier;
  now: () => number;
  /** Every observer of calls (logs, metrics, webhooks, a host's own). */
  observers: CallObservers;
  /** How events reach sessions and rooms: this process only, or every node (delivery.ts). */
  delivery: Delivery;
  /** A connection's client address, which per-address limits count by (client-address.ts). */
  addressOf: AddressOf;
}

export function actorOf(session: SessionInfo): Actor {
  return { tenant: session.tenant, userId: session.userId, name: session.name, sessionId: session.id };
}

/** The fields a call log line names its actor by. */
export function logOf(session: SessionInfo): { userId: string; sessionId: string } {
  return { userId: session.userId, sessionId: session.id };
}

export const rooms = {
  /**
   * A session's room. Its name carries the hash tag of the session's key
   * group, so that in Redis mode the room's channel is in the slot of the
   * session's tenant: a call's commit can then publish to it itself
   * (`CallCommit.publish`).
   */
  session: (id: string) => `s:${groupTag(groupOfSession(id))}${id}`,
  user: (key: UserKey) => `u:${key}`,
  tenant: (tenant: string) => `t:${tenant}`,
  /** Sockets that may see `key` (CONTACTS=claims). */
  watchers: (key: UserKey) => `w:${key}`,
};
