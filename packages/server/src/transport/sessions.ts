/**
 * Sessions: authentication, resumption, and what a lost socket means. A
 * session outlives its socket for RECONNECT_GRACE_MS; a deliberate disconnect
 * ends it at once.
 */
import type { AuthErrorCode, AuthSuccess, CallSnapshot, ErrorCode, ReconnectFailReason, SessionId, UserId } from '@switchboard/protocol';
import { AuthError, type Identity } from '../auth/tokens.js';
import { iceServersFor } from '../auth/turn.js';
import { roleOf } from '../calls/parties.js';
import { userKey, type CallRecord } from '../calls/types.js';
import type { SessionRecord } from '../store/types.js';
import type { CallRunner } from './calls.js';
import type { Conn, Deps, SbSocket, SessionInfo } from './context.js';
import { actorOf, logOf, rooms } from './context.js';
import { refusals, SwitchboardError } from './errors.js';
import { KeyedMutex } from './keyed-mutex.js';
import type { Presence } from './presence.js';
import { RateLimiter } from './rate-limit.js';
import type { DueTimers } from './timers.js';
import type { AddressGate, SignInLimits } from './abuse.js';
import type { LocalSessions } from './delivery.js';
import { infoOf, newSessionRecord, snapshotOf } from './session-info.js';

/** A resume whose write keeps losing to writes on other nodes gives up after this many reads. */
const RESUME_TRIES = 5;


export class Sessions {
  private readonly locks = new KeyedMutex();
  /** Sessions being stored for a sign-in here, not yet attached to their socket. */
  private readonly signingIn = new Set<SessionId>();

  constructor(
    private readonly deps: Deps,
    /** Sockets on this node by the session they carry. */
    readonly local: LocalSessions,
    private readonly calls: CallRunner,
    private readonly presence: Presence,
    private readonly timers: DueTimers,
    private readonly gate: AddressGate | null,
    private readonly limits: SignInLimits | null,
  ) {}

  onConnection(socket: SbSocket): Conn {
    const address = this.deps.addressOf(socket.request);
    const conn: Conn = {
      socket,
      address,
      session: null,
      limiter: this.deps.config.rateLimits ? new RateLimiter() : null,
      authTimer: null,
      authenticating: false,
      bound: null,
      relayTail: null,
      quality: null,
      closing: null,
    };
    const peer = socket.request.socket.remoteAddress;
    this.deps.logger.info(
      { socket: socket.id, address, ...(peer !== address ? { via: peer } : {}), transport: socket.conn.transport.name },
      'socket connected',
    );
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

  /**
   * Signs a socket in: one session per socket, whatever the timing (a second
   * `auth:handshake` or `reconnect:attempt` while this one runs is refused).
   * Always answered: `auth:success`, or `auth:error` and the socket closed —
   * `internal` when the store failed.
   */
  async authenticate(conn: Conn, token: unknown): Promise<AuthSuccess> {
    this.assertUnauthenticated(conn);
    conn.authenticating = true;
    try {
      return await this.signIn(conn, token);
    } catch (err) {
      if (err instanceof SwitchboardError) throw err;
      this.deps.logger.error({ err, socket: conn.socket.id }, 'sign-in failed');
      throw this.refused(conn, refusals.signInFailed());
    } finally {
      conn.authenticating = false;
    }
  }

  private async signIn(conn: Conn, token: unknown): Promise<AuthSuccess> {
    const startedAt = performance.now();
    let identity: Identity;
    try {
      identity = await this.deps.verifier.verify(token);
    } catch (err) {
      const code: AuthErrorCode = err instanceof AuthError ? err.code : 'invalid_token';
      const message = err instanceof Error ? err.message : 'the token was refused';
      this.refuse(conn, code, message);
      throw refusals.tokenRefused(message);
    }
    const key = userKey(identity.tenant, identity.userId);
    if (this.limits && !(await this.limits.admit(key, conn.address))) {
      throw this.refused(conn, refusals.signInRate(true));
    }
    this.assertOpen(conn);
    const now = this.deps.now();
    const record = newSessionRecord(identity, this.deps.config, now);
    const info = infoOf(record);
    // Stored but not yet attached to its socket: not a ghost for `reconcile` to reap.
    this.signingIn.add(record.id);
    let first: boolean;
    try {
      const { maxSessionsPerUser, rateLimits } = this.deps.config;
      const added = await this.deps.store.addSession(record, rateLimits ? maxSessionsPerUser : undefined);
      if (!added) {
        throw this.refused(conn, refusals.sessionCap(maxSessionsPerUser));
      }
      first = added.first;
      if (conn.closing || conn.socket.disconnected) {
        // The socket went while the session was written: it never carried it.
        const removed = await this.deps.store.removeSession(record.id, record);
        if (removed?.last) this.presence.announceOffline(info, this.deps.now());
        throw refusals.socketClosed();
      }
      this.attach(conn, info);
    } finally {
      this.signingIn.delete(record.id);
    }
    const success: AuthSuccess = {
      user: { id: info.userId, name: info.name },
      sessionId: info.id,
      iceServers: iceServersFor(this.deps.config, info.userId, now),
      ringTimeoutMs: this.deps.config.ringTimeoutMs,
    };
    conn.socket.emit('auth:success', success);
    await this.ringIfCalled(info, false);
    if (first) this.presence.announceOnline(info);
    await this.sendUserList(conn, info);
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
      // Refused without a verdict: the session is untouched, and the client may try again a little later.
      if (this.limits && !(await this.limits.admit(userKey(identity.tenant, identity.userId), conn.address))) {
        throw refusals.signInRate(false);
      }
      this.assertOpen(conn);
      return await this.locks.run(sessionId, () => this.resumeLocked(conn, identity, sessionId as SessionId, startedAt));
    } finally {
      conn.authenticating = false;
    }
  }

  private async resumeLocked(conn: Conn, identity: Identity, sessionId: SessionId, startedAt: number): Promise<object> {
    const { store, config } = this.deps;
    let updated: SessionRecord | undefined;
    let replaced = false;
    let now = 0;
    // Written only over the record as read: another node resuming or losing it meanwhile means reading again.
    for (let tries = 0; !updated; tries++) {
      if (tries === RESUME_TRIES) throw new Error(`session ${sessionId} changed under ${RESUME_TRIES} resumes in a row`);
      now = this.deps.now();
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
      const next: SessionRecord = {
        ...session,
        name: identity.name,
        contacts: config.contacts === 'claims' ? (identity.contacts ?? []) : null,
        connected: true,
        graceUntil: null,
        nodeId: config.nodeId,
        resumes: resumes + 1,
        resumeWindowStart: windowOpen ? session.resumeWindowStart : now,
      };
      if (await store.updateSession(next, session)) {
        updated = next;
        replaced = session.connected;
        if (replaced) this.takeOver(session.id, conn.socket);
      }
    }
    await this.timers.unschedule('grace', sessionId);
    const info = infoOf(updated);
    if (conn.closing || conn.socket.disconnected) {
      // The new socket went while the session was written: the session is lost again, at once.
      await this.loseLocked(sessionId, config.nodeId);
      throw refusals.socketClosed();
    }
    this.attach(conn, info);
    const calls: CallSnapshot[] = [];
    const current = await this.calls.callOfUser(info.key);
    if (current && roleOf(current, info.id)) {
      const { call } = await this.calls.run({ type: 'session-resumed', callId: current.id, tenant: current.tenant, sessionId: info.id, replaced }, logOf(info));
      const snapshot = call && snapshotOf(call, info.id);
      if (snapshot) calls.push(snapshot);
    }
    conn.socket.emit('reconnect:success', {
      sessionId: info.id,
      user: { id: info.userId, name: info.name },
      iceServers: iceServersFor(config, info.userId, now),
      calls,
    });
    if (current?.state === 'ringing') await this.ringIfCalled(info, true, current);
    await this.sendUserList(conn, info);
    this.deps.logger.info(
      { user: info.userId, session: info.id, socket: conn.socket.id, calls: calls.length, durationMs: Math.round(performance.now() - startedAt) },
      'session resumed',
    );
    return { sessionId: info.id, calls };
  }

  /**
   * v1.1, "The ring reaches the user": a device of a user who is being called
   * rings too, right after it signed in (`again` false) or resumed (`again`
   * true), for the time the ring has left. A sign-in made while a request
   * was being committed is found either by the request (it read the session)
   * or here (this reads the claim after the session is stored). A failure
   * is logged: the sign-in itself stands.
   */
  private async ringIfCalled(info: SessionInfo, again: boolean, known?: CallRecord): Promise<void> {
    try {
      const call = known ?? (await this.calls.callOfUser(info.key));
      if (call?.state !== 'ringing' || call.callee.userId !== info.userId) return;
      const iceServers = iceServersFor(this.deps.config, info.userId, this.deps.now());
      await this.calls.run({ type: 'ring-device', callId: call.id, by: actorOf(info), again, iceServers }, logOf(info));
    } catch (err) {
      this.deps.logger.warn({ err, session: info.id }, 'could not ring a device that joined a ringing call');
    }
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
    await this.locks.run(sessionId, () => this.loseLocked(sessionId, nodeId));
  }

  private async loseLocked(sessionId: SessionId, nodeId: string): Promise<void> {
    const session = await this.deps.store.getSession(sessionId);
    // Gone already, in grace already, resumed on a new socket here, or resumed on another node.
    if (!session || !session.connected || this.holds(sessionId) || session.nodeId !== nodeId) return;
    const graceUntil = this.deps.now() + this.deps.config.reconnectGraceMs;
    // The timer before the record: a node that dies between the two leaves a timer that finds
    // the session connected and does nothing (its sessions are handed over when it is claimed
    // dead), never a session in grace that no timer will end. A timer left by an update that
    // lost to a resume finds the session connected, or reschedules itself to its later grace.
    await this.timers.schedule('grace', session.id, graceUntil);
    // Only over the record as read: a resume on another node since then wins.
    if (!(await this.deps.store.updateSession({ ...session, connected: false, graceUntil }, session))) return;
    const info = infoOf(session);
    const call = await this.calls.callOfUser(info.key);
    if (call) await this.calls.run({ type: 'session-lost', callId: call.id, tenant: call.tenant, sessionId, deliberate: false }, logOf(info));
  }

  /**
   * The store's word that a session is live here is checked against this
   * node's sockets: a session the store holds as connected on this node that
   * no socket here carries (its socket closed while a store write failed, or
   * this node is stopping) is lost from now on, so it is offline for every
   * watcher within its grace. `NodeLiveness` does the same for dead nodes.
   * Returns how many were found.
   */
  async reconcile(): Promise<number> {
    const here = new Set([...this.local.keys(), ...this.signingIn]);
    const orphans = (await this.deps.store.sessionsOfNode(this.deps.config.nodeId, here)).filter((s) => s.connected);
    for (const orphan of orphans) await this.markLost(orphan.id);
    if (orphans.length > 0) this.deps.logger.warn({ sessions: orphans.length }, 'sessions without a socket on this node enter their grace');
    if (this.deps.store.shared) await this.restoreLost();
    return orphans.length;
  }

  /**
   * The other way round: a socket here whose session the store no longer
   * holds. A Redis failover can lose the writes its old master acknowledged
   * last (replication is asynchronous), a sign-in among them: its device is
   * connected and signed in, yet nobody could see or call it. Each such
   * session is written again as it is here (unless it moved to another node
   * meanwhile), and presence hears it come online.
   */
  private async restoreLost(): Promise<void> {
    const { store, config } = this.deps;
    const missing = await store.notOnNode(config.nodeId, [...this.local.keys()]);
    for (const id of missing) {
      await this.locks.run(id, async () => {
        const conn = this.local.get(id);
        const info = conn?.session;
        if (!conn || !info || info.id !== id || conn.closing || conn.socket.disconnected) return;
        if (await store.getSession(id)) return; // it is held, on another node: moved, not lost
        const contacts = info.contacts === null ? null : ([...info.contacts] as UserId[]);
        const record = newSessionRecord({ userId: info.userId, name: info.name, tenant: info.tenant, contacts }, config, this.deps.now(), id);
        const added = await store.addSession(record);
        this.deps.logger.warn({ user: info.userId, session: id }, 'a session the store had lost is written again');
        if (added?.first) this.presence.announceOnline(info);
      });
    }
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
   * Ends a session for good: its call ends first (hangup or connection lost),
   * then the session is removed, then presence goes offline if it was the
   * user's last session. In that order because a node can die between any two
   * writes: one that dies after the call leaves the session to be ended again
   * (by its grace timer, or by whoever claims the dead node), where the other
   * order left a call whose party's session was gone and nothing to end it.
   * A resume on another node between the two keeps its session (the removal
   * is only of the record as read), without the call.
   */
  private async closeSession(session: SessionRecord, why: 'hangup' | 'expired'): Promise<void> {
    const info = infoOf(session);
    const call = await this.calls.callOfUser(info.key);
    if (call) {
      const event =
        why === 'hangup'
          ? ({ type: 'session-lost', callId: call.id, tenant: call.tenant, sessionId: info.id, deliberate: true } as const)
          : ({ type: 'session-expired', callId: call.id, tenant: call.tenant, sessionId: info.id } as const);
      await this.calls.run(event, logOf(info));
    }
    // Only the record as read: a resume on another node since then keeps its session.
    const removed = await this.deps.store.removeSession(info.id, session);
    if (!removed) return;
    await this.timers.unschedule('grace', info.id);
    if (session.connected) this.takeOver(info.id);
    if (removed.last) this.presence.announceOffline(info, this.deps.now());
  }

  /**
   * Disconnects whatever socket carries the session now, without treating it
   * as a loss; never `keep`, the socket taking the session over. (In Redis
   * mode the adapter disconnects this node's sockets only after its publish
   * returns, by when `keep` may have joined the session's room.)
   */
  private takeOver(sessionId: SessionId, keep?: SbSocket): void {
    const old = this.local.get(sessionId);
    if (old) {
      old.closing = 'takeover';
      this.local.delete(sessionId);
    }
    const room = this.deps.io.in(rooms.session(sessionId));
    (keep ? room.except(keep.id) : room).disconnectSockets(true);
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
    if (conn.session) throw refusals.alreadySignedIn();
    if (conn.authenticating) throw refusals.signInRunning();
  }

  /**
   * The list that follows a sign-in or resume. The session is live by then:
   * a store failure here is logged and the list left for the client to ask
   * for (`user:list`), rather than undoing a sign-in already announced.
   */
  private async sendUserList(conn: Conn, info: SessionInfo): Promise<void> {
    try {
      conn.socket.emit('user:list', { users: await this.presence.list(info) });
    } catch (err) {
      this.deps.logger.warn({ err, session: info.id }, 'could not send the user list after a sign-in');
    }
  }

  /** Nothing is written for a socket that has already gone (or been refused). */
  private assertOpen(conn: Conn): void {
    if (conn.closing || conn.socket.disconnected) throw refusals.socketClosed();
  }

  /** A socket of this node carries the session, or is being signed in with it. */
  private holds(sessionId: SessionId): boolean {
    return this.local.has(sessionId) || this.signingIn.has(sessionId);
  }

  private resumeFailed(conn: Conn, reason: ReconnectFailReason, message: string): never {
    this.deps.logger.info({ socket: conn.socket.id, reason }, 'resume refused');
    conn.socket.emit('reconnect:failed', { reason, message });
    throw refusals.tokenRefused(message);
  }

  /** Refuses the sign-in with `error` (its code is an `auth:error` code): says so, closes the socket, and returns it to throw. */
  private refused(conn: Conn, error: SwitchboardError<AuthErrorCode & ErrorCode>): SwitchboardError {
    this.refuse(conn, error.code, error.message);
    return error;
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
