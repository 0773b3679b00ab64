/**
 * Sessions: authentication, resumption, and what a lost socket means. A
 * session outlives its socket for RECONNECT_GRACE_MS; a deliberate disconnect
 * ends it at once.
 */
import { randomBytes } from 'node:crypto';
import type { AuthErrorCode, AuthSuccess, CallSnapshot, ReconnectFailReason, SessionId } from '@switchboard/protocol';
import { AuthError, type Identity } from '../auth/tokens.js';
import { iceServersFor } from '../auth/turn.js';
import { roleOf } from '../calls/machine.js';
import type { CallRecord } from '../calls/types.js';
import { userKey } from '../calls/types.js';
import type { SessionRecord } from '../store/types.js';
import type { CallRunner } from './calls.js';
import type { Conn, Deps, SbSocket, SessionInfo } from './context.js';
import { logOf, rooms } from './context.js';
import { SwitchboardError } from './errors.js';
import { KeyedMutex } from './keyed-mutex.js';
import type { Presence } from './presence.js';
import { RateLimiter } from './rate-limit.js';
import type { DueTimers } from './timers.js';
import type { AddressGate } from './abuse.js';

/** 144 random bits, URL-safe. */
function newSessionId(): SessionId {
  return randomBytes(18).toString('base64url') as SessionId;
}

export class Sessions {
  private readonly locks = new KeyedMutex();
  /** Sockets on this node by the session they carry. */
  readonly local = new Map<SessionId, Conn>();

  constructor(
    private readonly deps: Deps,
    private readonly calls: CallRunner,
    private readonly presence: Presence,
    private readonly timers: DueTimers,
    private readonly gate: AddressGate | null,
  ) {}

  onConnection(socket: SbSocket): Conn {
    const conn: Conn = {
      socket,
      session: null,
      limiter: this.deps.config.rateLimits ? new RateLimiter() : null,
      authTimer: null,
      authenticating: false,
      bound: null,
      relayTail: null,
      closing: null,
    };
    this.deps.logger.info({ socket: socket.id, address: socket.handshake.address, transport: socket.conn.transport.name }, 'socket connected');
    if (socket.handshake.query.token !== undefined) {
      this.refuse(conn, 'invalid_token', 'tokens in the query string are refused: pass them as auth');
      return conn;
    }
    const auth: unknown = socket.handshake.auth;
    const token = typeof auth === 'object' && auth !== null ? (auth as { token?: unknown }).token : undefined;
    if (token !== undefined) {
      this.authenticate(conn, token).catch(() => undefined);
    } else {
      conn.authTimer = setTimeout(() => {
        if (!conn.session && !conn.closing) this.refuse(conn, 'auth_timeout', `no valid token within ${this.deps.config.authTimeoutMs} ms`);
      }, this.deps.config.authTimeoutMs);
    }
    return conn;
  }

  async authenticate(conn: Conn, token: unknown): Promise<AuthSuccess> {
    const startedAt = performance.now();
    this.assertUnauthenticated(conn);
    conn.authenticating = true;
    let identity: Identity;
    try {
      identity = await this.deps.verifier.verify(token);
    } catch (err) {
      const code: AuthErrorCode = err instanceof AuthError ? err.code : 'invalid_token';
      const message = err instanceof Error ? err.message : 'the token was refused';
      this.refuse(conn, code, message);
      throw new SwitchboardError('unauthenticated', message, undefined, true);
    } finally {
      conn.authenticating = false;
    }
    if (conn.socket.disconnected) throw new SwitchboardError('unauthenticated', 'the socket closed', undefined, true);
    if (this.deps.config.rateLimits) {
      const existing = await this.deps.store.sessionsOf(userKey(identity.tenant, identity.userId));
      if (existing.length >= this.deps.config.maxSessionsPerUser) {
        const message = `this user already has ${existing.length} sessions (the most allowed is ${this.deps.config.maxSessionsPerUser})`;
        this.refuse(conn, 'rate_limited', message);
        throw new SwitchboardError('rate_limited', message, undefined, true);
      }
    }
    const now = this.deps.now();
    const record: SessionRecord = {
      id: newSessionId(),
      tenant: identity.tenant,
      userId: identity.userId,
      name: identity.name,
      contacts: this.deps.config.contacts === 'claims' ? (identity.contacts ?? []) : null,
      nodeId: this.deps.config.nodeId,
      connected: true,
      graceUntil: null,
      resumes: 0,
      resumeWindowStart: now,
      createdAt: now,
    };
    const { first } = await this.deps.store.addSession(record);
    const info = infoOf(record);
    this.attach(conn, info);
    const success: AuthSuccess = {
      user: { id: info.userId, name: info.name },
      sessionId: info.id,
      iceServers: iceServersFor(this.deps.config, info.userId, now),
      ringTimeoutMs: this.deps.config.ringTimeoutMs,
    };
    conn.socket.emit('auth:success', success);
    conn.socket.emit('user:list', { users: await this.presence.list(info) });
    if (first) this.presence.announceOnline(info);
    this.deps.logger.info(
      { user: info.userId, tenant: info.tenant, session: info.id, socket: conn.socket.id, durationMs: Math.round(performance.now() - startedAt) },
      'session authenticated',
    );
    return success;
  }

  async resume(conn: Conn, token: string, sessionId: string): Promise<object> {
    const startedAt = performance.now();
    this.assertUnauthenticated(conn);
    conn.authenticating = true;
    try {
      let identity: Identity;
      try {
        identity = await this.deps.verifier.verify(token);
      } catch (err) {
        return this.resumeFailed(conn, 'invalid_token', err instanceof Error ? err.message : 'the token was refused');
      }
      return await this.locks.run(sessionId, () => this.resumeLocked(conn, identity, sessionId as SessionId, startedAt));
    } finally {
      conn.authenticating = false;
    }
  }

  private async resumeLocked(conn: Conn, identity: Identity, sessionId: SessionId, startedAt: number): Promise<object> {
    const { store, config } = this.deps;
    const now = this.deps.now();
    const session = await store.getSession(sessionId);
    if (!session || (session.graceUntil !== null && session.graceUntil <= now)) {
      return this.resumeFailed(conn, 'session_expired', 'the session is unknown or its grace has run out');
    }
    if (session.tenant !== identity.tenant || session.userId !== identity.userId) {
      return this.resumeFailed(conn, 'invalid_token', 'the token belongs to another user');
    }
    const windowOpen = now - session.resumeWindowStart <= config.reconnectGraceMs;
    const resumes = windowOpen ? session.resumes : 0;
    if (resumes + 1 > config.maxReconnectAttempts) {
      await this.closeSession(session, 'expired');
      return this.resumeFailed(conn, 'max_attempts', `more than ${config.maxReconnectAttempts} resumptions within the grace window`);
    }
    if (session.connected) this.takeOver(session.id);
    const updated: SessionRecord = {
      ...session,
      name: identity.name,
      contacts: config.contacts === 'claims' ? (identity.contacts ?? []) : null,
      connected: true,
      graceUntil: null,
      nodeId: config.nodeId,
      resumes: resumes + 1,
      resumeWindowStart: windowOpen ? session.resumeWindowStart : now,
    };
    await store.updateSession(updated);
    await this.timers.unschedule('grace', session.id);
    const info = infoOf(updated);
    this.attach(conn, info);
    const calls: CallSnapshot[] = [];
    const current = await this.calls.callOfUser(info.key);
    if (current && roleOf(current, info.id)) {
      const { call } = await this.calls.run({ type: 'session-resumed', callId: current.id, sessionId: info.id }, logOf(info));
      const snapshot = call && snapshotOf(call, info.id);
      if (snapshot) calls.push(snapshot);
    }
    conn.socket.emit('reconnect:success', {
      sessionId: info.id,
      user: { id: info.userId, name: info.name },
      iceServers: iceServersFor(config, info.userId, now),
      calls,
    });
    conn.socket.emit('user:list', { users: await this.presence.list(info) });
    this.deps.logger.info(
      { user: info.userId, session: info.id, socket: conn.socket.id, calls: calls.length, durationMs: Math.round(performance.now() - startedAt) },
      'session resumed',
    );
    return { sessionId: info.id, calls };
  }

  async onDisconnect(conn: Conn, reason: string): Promise<void> {
    if (conn.authTimer) clearTimeout(conn.authTimer);
    const info = conn.session;
    if (!info) {
      this.deps.logger.info({ socket: conn.socket.id, reason }, 'socket disconnected');
      return;
    }
    this.deps.metrics.connectedSessions.dec();
    if (this.local.get(info.id) === conn) this.local.delete(info.id);
    // The server closed it on purpose (a takeover by a resumed socket, or the session was closed).
    if (conn.closing !== null || reason === 'server namespace disconnect') {
      this.deps.logger.info({ user: info.userId, session: info.id, socket: conn.socket.id, reason, closedBy: conn.closing ?? 'server' }, 'session disconnected');
      return;
    }
    const deliberate = reason === 'client namespace disconnect';
    this.deps.logger.info({ user: info.userId, session: info.id, socket: conn.socket.id, reason, deliberate }, 'session disconnected');
    if (deliberate) {
      await this.locks.run(info.id, async () => {
        const session = await this.deps.store.getSession(info.id);
        if (session && !this.local.has(info.id)) await this.closeSession(session, 'hangup');
      });
    } else {
      await this.markLost(info.id);
    }
  }

  /**
   * A session lost its transport (its socket closed, or its node died): it
   * enters its reconnect grace, and its call hears `call:reconnecting`. Only
   * if it still lives on `nodeId` (by default this node): a session that has
   * meanwhile resumed on another node is not that node's to lose.
   */
  async markLost(sessionId: SessionId, nodeId: string = this.deps.config.nodeId): Promise<void> {
    await this.locks.run(sessionId, async () => {
      const session = await this.deps.store.getSession(sessionId);
      // Gone already, in grace already, resumed on a new socket here, or resumed on another node.
      if (!session || !session.connected || this.local.has(sessionId) || session.nodeId !== nodeId) return;
      const graceUntil = this.deps.now() + this.deps.config.reconnectGraceMs;
      await this.deps.store.updateSession({ ...session, connected: false, graceUntil });
      await this.timers.schedule('grace', session.id, graceUntil);
      const info = infoOf(session);
      const call = await this.calls.callOfUser(info.key);
      if (call) await this.calls.run({ type: 'session-lost', callId: call.id, sessionId, deliberate: false }, logOf(info));
    });
  }

  /** The grace of a disconnected session ran out. */
  async expire(sessionId: SessionId): Promise<void> {
    await this.locks.run(sessionId, async () => {
      const session = await this.deps.store.getSession(sessionId);
      if (!session || session.connected) return;
      if (session.graceUntil !== null && session.graceUntil > this.deps.now()) {
        await this.timers.schedule('grace', session.id, session.graceUntil);
        return;
      }
      this.deps.logger.info({ user: session.userId, session: session.id }, 'session expired');
      await this.closeSession(session, 'expired');
    });
  }

  /**
   * Ends a session for good: removed first (so a racing resume finds it gone),
   * then its call ends (hangup or connection lost), then presence goes offline
   * if it was the user's last session.
   */
  private async closeSession(session: SessionRecord, why: 'hangup' | 'expired'): Promise<void> {
    const info = infoOf(session);
    const removed = await this.deps.store.removeSession(info.id);
    if (!removed) return;
    const call = await this.calls.callOfUser(info.key);
    if (call) {
      const event =
        why === 'hangup'
          ? ({ type: 'session-lost', callId: call.id, sessionId: info.id, deliberate: true } as const)
          : ({ type: 'session-expired', callId: call.id, sessionId: info.id } as const);
      await this.calls.run(event, logOf(info));
    }
    await this.timers.unschedule('grace', info.id);
    if (session.connected) this.takeOver(info.id);
    if (removed.last) this.presence.announceOffline(info, this.deps.now());
  }

  /** Disconnects whatever socket carries the session now, without treating it as a loss. */
  private takeOver(sessionId: SessionId): void {
    const old = this.local.get(sessionId);
    if (old) {
      old.closing = 'takeover';
      this.local.delete(sessionId);
    }
    this.deps.io.in(rooms.session(sessionId)).disconnectSockets(true);
  }

  private attach(conn: Conn, info: SessionInfo): void {
    this.gate?.release(conn.socket.conn);
    if (conn.authTimer) clearTimeout(conn.authTimer);
    conn.authTimer = null;
    conn.session = info;
    conn.socket.data.sessionId = info.id;
    this.local.set(info.id, conn);
    this.presence.joinRooms(conn.socket, info);
    this.deps.metrics.connectedSessions.inc();
  }

  private assertUnauthenticated(conn: Conn): void {
    if (conn.session) throw new SwitchboardError('invalid_state', 'this socket is already authenticated');
    if (conn.authenticating) throw new SwitchboardError('invalid_state', 'authentication is already in progress');
  }

  private resumeFailed(conn: Conn, reason: ReconnectFailReason, message: string): never {
    this.deps.logger.info({ socket: conn.socket.id, reason }, 'resume refused');
    conn.socket.emit('reconnect:failed', { reason, message });
    throw new SwitchboardError('unauthenticated', message, undefined, true);
  }

  private refuse(conn: Conn, code: AuthErrorCode, message: string): void {
    if (conn.closing) return;
    conn.closing = 'closed';
    if (conn.authTimer) clearTimeout(conn.authTimer);
    this.deps.logger.info({ socket: conn.socket.id, code }, 'authentication refused');
    conn.socket.emit('auth:error', { code, message });
    conn.socket.disconnect(true);
  }
}

export function infoOf(record: SessionRecord): SessionInfo {
  return {
    id: record.id,
    userId: record.userId,
    name: record.name,
    tenant: record.tenant,
    key: userKey(record.tenant, record.userId),
    contacts: record.contacts === null ? null : new Set(record.contacts),
  };
}

export function snapshotOf(call: CallRecord, sessionId: SessionId): CallSnapshot | undefined {
  const role = roleOf(call, sessionId);
  if (!role || call.state === 'ended') return undefined;
  const self = role === 'caller' ? call.caller : call.callee;
  const peer = role === 'caller' ? call.callee : call.caller;
  return {
    callId: call.id,
    state: call.state,
    role,
    peer: { id: peer.userId, name: peer.name },
    media: call.media,
    createdAt: call.createdAt,
    answeredAt: call.answeredAt,
    self: { ...self.flags },
    remote: { ...peer.flags },
    peerReconnecting: peer.reconnecting,
  };
}
