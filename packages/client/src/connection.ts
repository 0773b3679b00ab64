/**
 * The phone's link to the server: one socket.io-client socket that only this
 * class opens and closes (socket.io's own reconnection is off, since resuming
 * a session is not a plain reconnect), authentication, and the resumption of
 * the session after a transport loss, paced by a `ReconnectPolicy`. It knows
 * nothing of calls or presence; it tells its observer when the link is up,
 * lost, resumed, or gone for good.
 */
import { io, type ManagerOptions, type Socket, type SocketOptions } from 'socket.io-client';
import type {
  AckData,
  AuthSuccess,
  ClientEventName,
  ClientToServerEvents,
  ServerPayload,
  ServerToClientEvents,
  SessionId,
  UserRef,
} from '@switchboard/protocol/wire';
import { SwitchboardError } from './errors.js';
import type { ReconnectPolicy } from './reconnect-policy.js';
import type { DisconnectInfo, PhoneState, TokenSource } from './types.js';

export type SbSocket = Socket<ServerToClientEvents, ClientToServerEvents>;
/** A successful ack of `E`: `ok` and what the protocol says it carries. */
export type AckResult<E extends ClientEventName = ClientEventName> = { ok: true } & AckData[E];

export interface LinkObserver {
  /** Authenticated: the first time, or `afresh` after a session that could not be resumed. */
  authenticated(success: AuthSuccess, afresh: boolean): void;
  /** The transport was lost (not by `close()`); resumption begins. */
  lost(): void;
  resumed(payload: ServerPayload<'reconnect:success'>): void;
  /** The session could not be resumed: whatever it carried is over. */
  sessionLost(error: SwitchboardError): void;
  /** Offline for good, after having been online. */
  closed(info: DisconnectInfo): void;
  /** The link moved from `previous` to `state`. */
  stateChanged(state: PhoneState, previous: PhoneState): void;
}

export interface ConnectionOptions {
  url: string;
  token: TokenSource;
  socket?: Partial<ManagerOptions & SocketOptions>;
  policy: ReconnectPolicy;
  requestTimeoutMs: number;
}

type Waiter = { resolve: (user: UserRef) => void; reject: (err: Error) => void };

/** `auth:error` codes: the token itself was refused, so retrying with it is pointless. */
const AUTH_REFUSALS = new Set(['invalid_token', 'token_expired', 'auth_timeout']);

export class Connection {
  readonly socket: SbSocket;
  private currentState: PhoneState = 'disconnected';
  private authenticatedOnSocket = false;
  private me: UserRef | undefined;
  private session: SessionId | null = null;
  /** `open()` callers waiting for the link to be up. */
  private waiters: Waiter[] = [];
  /** Why the current socket is being closed on purpose (its `disconnect` is then expected). */
  private closingOnPurpose: Error | null = null;
  private retryTimer: ReturnType<typeof setTimeout> | null = null;
  private retryCount = 0;
  private lostAt = 0;
  /** Bumped whenever the socket closes, so work begun on an older socket knows to stop. */
  private epoch = 0;

  constructor(
    private readonly options: ConnectionOptions,
    private readonly observer: LinkObserver,
  ) {
    this.socket = io(options.url, {
      ...options.socket,
      autoConnect: false,
      reconnection: false,
      forceNew: true, // two phones in one page never share a connection
      auth: {}, // no token in the handshake: `auth:handshake` and `reconnect:attempt` carry it
    }) as SbSocket;
    const socket = this.socket;
    socket.on('connect', () => this.onSocketOpen());
    socket.on('connect_error', (err) => this.onSocketError(err));
    socket.on('disconnect', (reason) => this.onSocketClosed(reason));
    socket.on('auth:error', (p) => this.onRefused(SwitchboardError.auth(p.code, p.message)));
    socket.on('reconnect:success', (p) => this.onResumed(p));
    socket.on('reconnect:failed', (p) => this.onResumeFailed(SwitchboardError.resumeFailed(p.reason, p.message)));
  }

  get state(): PhoneState {
    return this.currentState;
  }

  /** Moves the link to `next`, telling the observer when it changes. */
  private setState(next: PhoneState): void {
    const previous = this.currentState;
    if (next === previous) return;
    this.currentState = next;
    this.observer.stateChanged(next, previous);
  }

  /** Authenticated on a live socket: requests can be sent. */
  get online(): boolean {
    return this.authenticatedOnSocket;
  }

  get user(): UserRef | undefined {
    return this.me;
  }

  get sessionId(): SessionId | null {
    return this.session;
  }

  /** Milliseconds since the last transport loss began. */
  get downtimeMs(): number {
    return Date.now() - this.lostAt;
  }

  /** Opens the link (if it is not open or opening) and resolves once authenticated. */
  open(): Promise<UserRef> {
    if (this.currentState === 'connected' && this.me) return Promise.resolve(this.me);
    const waiting = new Promise<UserRef>((resolve, reject) => this.waiters.push({ resolve, reject }));
    if (this.currentState === 'disconnected') {
      this.closingOnPurpose = null;
      this.session = null;
      this.setState('connecting');
      this.socket.connect();
    }
    return waiting;
  }

  /** Closes the link for good, on purpose: the server ends the session at once. */
  close(): void {
    if (this.currentState === 'disconnected') {
      this.socket.disconnect();
      return;
    }
    this.goOffline(SwitchboardError.disconnected('connect()'));
    this.observer.closed({ reason: 'client' });
  }

  /** Emits with an ack: resolves on `ok`, rejects with a `SwitchboardError`. */
  async request<E extends ClientEventName>(event: E, payload: object, timeoutMs = this.options.requestTimeoutMs): Promise<AckResult<E>> {
    if (!this.authenticatedOnSocket) throw SwitchboardError.notConnected(event);
    return this.emitWithAck(event, payload, timeoutMs);
  }

  /**
   * The transport looks dead though it has not closed (a request went
   * unanswered; a network change leaves a socket half-open): close it without
   * a word to the server, which keeps the session in its grace, and resume
   * on a new socket at once, as after any transport loss.
   */
  dropTransport(): void {
    if (this.currentState !== 'connected') return;
    this.socket.io.engine?.close();
  }

  /** The device's network is back: a resumption waiting out its back-off is tried now. */
  retryNow(): void {
    if (this.currentState !== 'reconnecting' || !this.retryTimer) return;
    this.clearRetry();
    this.retryCount++;
    this.socket.connect();
  }

  /** Emits without an ack; dropped while offline (a failure comes back as `call:error`). */
  send(event: ClientEventName, payload: object): void {
    if (this.authenticatedOnSocket) (this.socket.emit as (event: string, payload: object) => void)(event, payload);
  }

  // ---- socket lifecycle ---------------------------------------------------

  private onSocketOpen(): void {
    if (this.currentState === 'reconnecting' && this.session) void this.resume(this.epoch, this.session);
    else void this.authenticate(this.epoch);
  }

  private onSocketError(err: Error): void {
    if (this.currentState === 'connecting') this.failOpen(SwitchboardError.connectionFailed(err));
    else if (this.currentState === 'reconnecting') this.scheduleAttempt(err);
  }

  private onSocketClosed(reason: string): void {
    this.epoch++;
    this.authenticatedOnSocket = false;
    // Nothing queued for a socket that is gone may reach the next one before it authenticates.
    this.socket.sendBuffer = [];
    const purpose = this.closingOnPurpose;
    this.closingOnPurpose = null;
    if (this.currentState === 'connecting') {
      this.failOpen(purpose instanceof SwitchboardError ? purpose : SwitchboardError.connectionFailed(new Error(reason)));
      return;
    }
    if (this.currentState === 'connected') {
      this.lostAt = Date.now();
      this.retryCount = 0;
      this.setState('reconnecting');
      this.observer.lost();
    }
    if (this.currentState === 'reconnecting') this.scheduleAttempt(purpose ?? new Error(reason));
  }

  private async authenticate(epoch: number): Promise<void> {
    try {
      const token = await this.token();
      if (epoch !== this.epoch) return;
      const success = await this.emitWithAck('auth:handshake', { token });
      if (epoch !== this.epoch) return;
      this.onAuthenticated(success);
    } catch (err) {
      if (epoch !== this.epoch) return; // the socket closed: its close handler decides
      const error = err instanceof SwitchboardError ? err : SwitchboardError.token(err);
      if (error.told) return; // `auth:error` came first and said why
      if (this.currentState === 'connecting') this.failOpen(error);
      else this.retryOnNewSocket(error);
    }
  }

  private onAuthenticated(success: AuthSuccess): void {
    const afresh = this.currentState === 'reconnecting';
    this.me = success.user;
    this.session = success.sessionId;
    this.comeOnline();
    this.observer.authenticated(success, afresh);
    this.resolveWaiters();
  }

  /**
   * The sign-in was refused (`auth:error`): offline for good when the token
   * was; while reconnecting, a refusal that is no verdict on the token (a
   * sign-in rate or cap, a server that could not complete it) is tried again later.
   */
  private onRefused(error: SwitchboardError): void {
    if (this.currentState === 'connecting') return this.failOpen(error);
    if (this.currentState === 'reconnecting' && !AUTH_REFUSALS.has(error.code)) return this.retryOnNewSocket(error);
    if (this.currentState !== 'disconnected') this.giveUp('auth_failed', error);
  }

  private failOpen(error: SwitchboardError): void {
    this.goOffline(error);
  }

  // ---- resumption -----------------------------------------------------------

  private scheduleAttempt(reason: Error): void {
    if (this.currentState !== 'reconnecting' || this.retryTimer) return;
    const delay = this.options.policy.nextDelay({
      retryCount: this.retryCount,
      elapsedMs: Date.now() - this.lostAt,
      retryReason: reason,
    });
    if (delay === null) return this.giveUp('reconnect_failed', reason);
    this.retryTimer = setTimeout(() => {
      this.retryTimer = null;
      this.retryCount++;
      this.socket.connect();
    }, Math.max(0, delay));
  }

  private async resume(epoch: number, sessionId: SessionId): Promise<void> {
    try {
      const token = await this.token();
      if (epoch !== this.epoch) return;
      // The verdict arrives as `reconnect:success` or `reconnect:failed`, before this ack.
      await this.emitWithAck('reconnect:attempt', { token, sessionId });
    } catch (err) {
      if (epoch !== this.epoch || this.currentState !== 'reconnecting') return;
      const error = err instanceof SwitchboardError ? err : SwitchboardError.token(err);
      if (error.told) return; // `reconnect:failed` gave the verdict
      this.retryOnNewSocket(error); // no verdict (rate limited, no answer, no token): try again later
    }
  }

  private onResumed(p: ServerPayload<'reconnect:success'>): void {
    if (this.currentState !== 'reconnecting') return;
    this.me = p.user;
    this.session = p.sessionId;
    this.comeOnline();
    this.observer.resumed(p);
    this.resolveWaiters();
  }

  /** The session is gone: what it carried is over; sign in afresh on the same socket. */
  private onResumeFailed(error: SwitchboardError): void {
    if (this.currentState !== 'reconnecting') return;
    this.session = null;
    this.observer.sessionLost(error);
    if (error.code === 'invalid_token') return this.giveUp('auth_failed', error);
    void this.authenticate(this.epoch);
  }

  private retryOnNewSocket(error: SwitchboardError): void {
    if (AUTH_REFUSALS.has(error.code)) return this.giveUp('auth_failed', error);
    this.closingOnPurpose = error;
    this.socket.disconnect(); // its close handler schedules the next attempt
  }

  private giveUp(reason: 'reconnect_failed' | 'auth_failed', error: Error): void {
    this.goOffline(error);
    this.observer.closed({ reason, error });
  }

  // ---- helpers ----------------------------------------------------------------

  private comeOnline(): void {
    this.clearRetry();
    this.retryCount = 0;
    this.authenticatedOnSocket = true;
    this.setState('connected');
  }

  /** Offline for good: the state first, so the socket's close is no transport loss. */
  private goOffline(error: Error): void {
    this.clearRetry();
    this.setState('disconnected');
    this.authenticatedOnSocket = false;
    this.session = null;
    this.closingOnPurpose = error;
    this.socket.disconnect();
    const waiters = this.waiters;
    this.waiters = [];
    for (const w of waiters) w.reject(error);
  }

  private resolveWaiters(): void {
    const user = this.me;
    if (!user) return;
    const waiters = this.waiters;
    this.waiters = [];
    for (const w of waiters) w.resolve(user);
  }

  private clearRetry(): void {
    if (this.retryTimer) clearTimeout(this.retryTimer);
    this.retryTimer = null;
  }

  private async token(): Promise<string> {
    const source = this.options.token;
    try {
      return typeof source === 'string' ? source : await source();
    } catch (err) {
      throw SwitchboardError.token(err);
    }
  }

  private async emitWithAck<E extends ClientEventName>(event: E, payload: object, ms = this.options.requestTimeoutMs): Promise<AckResult<E>> {
    const socket = this.socket.timeout(ms) as unknown as {
      emitWithAck(event: string, payload: object): Promise<{ ok: boolean; error?: { code: string; message: string } }>;
    };
    let answer: Awaited<ReturnType<typeof socket.emitWithAck>>;
    try {
      answer = await socket.emitWithAck(event, payload);
    } catch {
      throw this.socket.connected ? SwitchboardError.timeout(event, ms) : SwitchboardError.disconnected(event);
    }
    if (!answer.ok) {
      const error = answer.error ?? { code: 'internal', message: 'the server refused without saying why' };
      throw SwitchboardError.fromBody(error as Parameters<typeof SwitchboardError.fromBody>[0]);
    }
    return answer as AckResult<E>;
  }
}
