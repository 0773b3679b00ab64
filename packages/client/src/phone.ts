/**
 * The phone: one user's presence and calls on a Switchboard server. It keeps
 * the `users` map, places and receives calls and routes the server's events
 * to them, and re-syncs them when its `Connection` resumes the session after
 * a transport loss.
 */
// Types only: the SDK pulls none of the protocol's runtime (its zod schemas) into a browser bundle.
import type { AuthSuccess, CallId, CallSnapshot, PresenceUser, ServerPayload, SessionId, UserRef } from '@switchboard/protocol/wire';
import { Call, acquire } from './call.js';
import { Connection, type LinkObserver, type SbSocket } from './connection.js';
import { TypedEmitter } from './emitter.js';
import { SwitchboardError } from './errors.js';
import { PhoneEvent, type PhoneEventCallbacks } from './events.js';
import { IceServers } from './ice-servers.js';
import { CALL_SERVER_EVENTS, type CallHost, type Delivery, deliver, endLocally, linkChanged, networkChanged, resumed } from './internal.js';
import { watchNetwork } from './network.js';
import { type PreflightOptions, type PreflightReport, runPreflight } from './preflight.js';
import { DefaultReconnectPolicy } from './reconnect-policy.js';
import { DEFAULT_MEDIA_RECOVERY_TIMEOUT_MS } from './recovery.js';
import type { CallOptions, DisconnectInfo, MediaRequest, PhoneOptions, PhoneState, RtcImplementation } from './types.js';

/** How long the probe of a socket suspected dead (see `probeTransport`) waits for its answer. */
export const TRANSPORT_PROBE_TIMEOUT_MS = 1500;

/** How long the server may take to answer a request. */
export const DEFAULT_REQUEST_TIMEOUT_MS = 10_000;

/**
 * A user's phone: connect it, watch `users`, place calls with `call()`, and
 * answer those that arrive on `incoming`.
 *
 * @example
 * ```ts
 * import { Phone } from '@switchboard/client';
 *
 * const phone = new Phone({ url: 'https://switchboard.example.com', token: () => fetchToken() });
 * await phone.connect();
 * phone.on('presence', (users) => render([...users.values()]));
 * phone.on('incoming', (call) => showRinging(call));
 *
 * const call = await phone.call('bob');
 * call.on('remoteStream', (stream) => (audio.srcObject = stream));
 * call.on('ended', ({ reason }) => console.log('call ended:', reason));
 * ```
 */
export class Phone extends TypedEmitter<PhoneEventCallbacks> {
  /** The underlying socket.io-client socket. The phone opens and closes it; observe it, do not drive it. */
  readonly socket: SbSocket;
  private readonly connection: Connection;
  private readonly presence = new Map<string, PresenceUser>();
  private readonly active = new Map<CallId, Call>();
  /** Server events of outgoing calls whose `call()` has not resolved yet: delivered once the app holds the call. */
  private readonly held = new Map<CallId, Delivery[]>();
  private readonly host: CallHost;
  private readonly iceServers = new IceServers();
  /** Renews the TURN credentials of a call that outlives them (see `renewCredentials`). */
  private renewTimer: ReturnType<typeof setTimeout> | null = null;
  /** A transport probe is in flight (one for all the phone's calls). */
  private probing = false;
  /** Stops watching the browser's network events. */
  private unwatchNetwork: (() => void) | null = null;

  constructor(private readonly options: PhoneOptions) {
    super();
    this.connection = new Connection(
      {
        url: options.url,
        token: options.token,
        socket: options.socket,
        policy: options.reconnectPolicy ?? new DefaultReconnectPolicy(),
        requestTimeoutMs: options.requestTimeoutMs ?? DEFAULT_REQUEST_TIMEOUT_MS,
      },
      this.observer(),
    );
    this.socket = this.connection.socket;
    this.host = this.callHost();
    this.listen();
  }

  /** Where the link to the server stands. */
  get state(): PhoneState {
    return this.connection.state;
  }

  /** The authenticated user, once `connect()` has resolved. */
  get user(): UserRef | undefined {
    return this.connection.user;
  }

  /** The visible users online now, by id, each `available` or `busy` (as of the last full list). */
  get users(): ReadonlyMap<string, PresenceUser> {
    return this.presence;
  }

  /** The session id the server handed out; the same across resumptions. */
  get sessionId(): SessionId | null {
    return this.connection.sessionId;
  }

  /** The calls that have not ended. */
  get calls(): Call[] {
    return [...this.active.values()];
  }

  /**
   * Opens the socket and authenticates. Resolves with the user once the
   * server has accepted the token (and sent the presence list); rejects with
   * a `SwitchboardError` whose `code` is the `auth:error` code
   * (`invalid_token`, `token_expired`, `auth_timeout`), `connection_failed`
   * or `token_unavailable`.
   *
   * @example
   * ```ts
   * try {
   *   const me = await phone.connect();
   *   console.log('signed in as', me.name);
   * } catch (err) {
   *   if (err instanceof SwitchboardError && err.code === 'token_expired') await refreshLogin();
   * }
   * ```
   */
  connect(): Promise<UserRef> {
    return this.connection.open();
  }

  /**
   * Calls `userId`: gets the local audio (and the camera with `{ video: true
   * }`), then asks the server to ring every device of that user. Resolves with the `Call` (state `ringing`) once the
   * server has taken the request; rejects with a `SwitchboardError` whose
   * `code` is `unavailable` (offline or not visible), `self_call`,
   * `already_in_call`, `media_failed`, `not_connected`, … A busy callee is
   * no rejection: the call then ends with reason `busy`.
   *
   * @example
   * ```ts
   * const call = await phone.call('bob');
   * call.on('state', (state) => (status.textContent = state));
   * call.on('ended', ({ reason }) => (status.textContent = `ended: ${reason}`));
   * ```
   */
  async call(userId: string, options: CallOptions = {}): Promise<Call> {
    if (!this.connection.online) throw SwitchboardError.notConnected('call');
    const media = { audio: true, video: options.video === true };
    const localStream = await acquire(this.host, media);
    const id = newCallId() as CallId;
    const known = this.presence.get(userId);
    const peer = known ? { id: known.id, name: known.name } : ({ id: userId, name: userId } as UserRef);
    const call = new Call(this.host, { id, peer, direction: 'outgoing', media, localStream });
    this.active.set(id, call);
    this.held.set(id, []);
    try {
      const ack = await this.connection.request('call:request', { to: userId, callId: id, media });
      this.useIceServers(ack.iceServers);
    } catch (err) {
      this.active.delete(id);
      this.held.delete(id);
      for (const track of localStream.getTracks()) track.stop();
      // No answer: the server may have made the call all the same; the proposed id makes ending it exact.
      if (err instanceof SwitchboardError && (err.code === 'timeout' || err.code === 'disconnected')) {
        this.connection.request('call:end', { callId: id }).catch(() => undefined);
      }
      throw err;
    }
    // Events that came before the ack (a busy callee answers at once) wait until the app has the call.
    setTimeout(() => this.release(id), 0);
    return call;
  }

  /**
   * Checks that calls can connect from here, and how they would sound: the
   * signalling round trip, each ICE server the server hands out (STUN gives
   * a server-reflexive candidate, TURN a relay candidate per transport), and
   * a few seconds of audio between two local peer connections forced
   * through TURN. Needs the phone connected (else `reason: 'not_connected'`);
   * rejects only where there is no WebRTC at all (`unsupported`): every failure of the network or the servers is in the report, with its reason.
   *
   * @example
   * ```ts
   * const report = await phone.preflight({ timeoutMs: 15000 });
   * if (!report.ok) show(`Calls may fail here: ${report.reason}`);
   * else show(`MOS ${report.media?.mos}, TURN over ${report.turn.transport}, ${report.turn.rttMs} ms`);
   * ```
   */
  async preflight(options: PreflightOptions = {}): Promise<PreflightReport> {
    const { connection } = this;
    return runPreflight(
      {
        rtc: rtcOf(this.options),
        get online() {
          return connection.online;
        },
        iceServers: () => this.iceServers.servers,
        ping: async (timeoutMs) => {
          const sent = performanceNow();
          await connection.request('user:list', {}, timeoutMs);
          return performanceNow() - sent;
        },
        media: () => preflightAudio(this.options),
      },
      options,
    );
  }

  /**
   * Hangs up every call and closes the socket for good; the server ends the
   * calls as hangups. No timer or socket is left behind. `connect()` may be
   * called again afterwards (a new session).
   */
  disconnect(): void {
    for (const call of this.calls) call[endLocally]('hangup');
    this.stopWatching();
    this.connection.close();
  }

  // ---- the link -------------------------------------------------------------

  private observer(): LinkObserver {
    return {
      authenticated: (success: AuthSuccess, afresh: boolean) => {
        this.useIceServers(success.iceServers);
        this.watchNetwork();
        if (afresh) this.emit(PhoneEvent.Reconnected, { resumed: false, downtimeMs: this.connection.downtimeMs });
        else this.emit(PhoneEvent.Connected, success.user);
      },
      lost: () => {
        this.emit(PhoneEvent.Reconnecting);
        for (const call of this.calls) call[linkChanged](false);
      },
      resumed: (p) => this.onResumed(p),
      sessionLost: () => {
        for (const call of this.calls) call[endLocally]('connection_lost');
      },
      closed: (info: DisconnectInfo) => {
        this.stopWatching();
        for (const call of this.calls) call[endLocally]('connection_lost');
        this.presence.clear();
        this.emit(PhoneEvent.Disconnected, info);
      },
      stateChanged: (state: PhoneState, previous: PhoneState) => this.emit(PhoneEvent.State, state, previous),
    };
  }

  private onResumed(p: ServerPayload<'reconnect:success'>): void {
    this.useIceServers(p.iceServers);
    const snapshots = new Map<string, CallSnapshot>(p.calls.map((s) => [s.callId, s]));
    for (const call of this.calls) {
      call[resumed](snapshots.get(call.id), p.iceServers);
      snapshots.delete(call.id);
    }
    // A call the server still has and this phone has let go of (hung up while offline): end it there too.
    for (const orphan of snapshots.keys()) {
      this.connection.request('call:end', { callId: orphan }).catch(() => undefined);
    }
    this.emit(PhoneEvent.Reconnected, { resumed: true, downtimeMs: this.connection.downtimeMs });
  }

  // ---- server events ----------------------------------------------------------

  private listen(): void {
    const socket = this.socket;
    socket.on('user:list', (p) => {
      this.presence.clear();
      for (const u of p.users) this.presence.set(u.id, { id: u.id, name: u.name, status: u.status });
      this.emit(PhoneEvent.Presence, this.presence);
    });
    socket.on('user:online', (p) => {
      const status = this.presence.get(p.user.id)?.status ?? 'available';
      this.presence.set(p.user.id, { id: p.user.id, name: p.user.name, status });
      this.emit(PhoneEvent.Presence, this.presence);
    });
    socket.on('user:offline', (p) => {
      if (this.presence.delete(p.userId)) this.emit(PhoneEvent.Presence, this.presence);
    });
    socket.on('user:status', (p) => {
      const user = this.presence.get(p.userId);
      if (!user || user.status === p.status) return;
      this.presence.set(p.userId, { ...user, status: p.status });
      this.emit(PhoneEvent.Presence, this.presence);
    });
    socket.on('call:incoming', (p) => this.onIncoming(p));
    for (const event of CALL_SERVER_EVENTS) {
      (socket.on as (event: string, listener: (payload: { callId?: CallId }) => void) => void)(event, (payload) =>
        this.route({ event, payload } as Delivery),
      );
    }
  }

  private onIncoming(p: ServerPayload<'call:incoming'>): void {
    if (this.active.has(p.callId)) return;
    this.useIceServers(p.iceServers);
    const call = new Call(this.host, { id: p.callId, peer: p.from, direction: 'incoming', media: p.media });
    this.active.set(p.callId, call);
    this.emit(PhoneEvent.Incoming, call);
  }

  /**
   * ICE servers the server issued just now (sign-in, resumption, a call): the
   * freshest TURN credentials, used for the calls made from now on and their
   * ICE restarts. A server that sends none with a call (older than v1.1)
   * leaves the ones at hand.
   */
  private useIceServers(iceServers: RTCIceServer[] | undefined): void {
    this.iceServers.use(iceServers);
    if (this.renewTimer) clearTimeout(this.renewTimer);
    this.renewTimer = null;
    const at = this.iceServers.renewAt;
    if (at !== null) this.renewTimer = setTimeout(() => this.renewCredentials(), Math.min(Math.max(0, at - Date.now()), 2 ** 31 - 1));
  }

  /**
   * The credentials run out soon. An allocation made with them lives on
   * only until coturn refuses their next refresh, so a call that is using
   * them gets fresh ones the way the protocol hands them out: the phone
   * resumes its session on a new socket, and the resumption restarts ICE.
   * Without a call, the next call brings its own.
   */
  private renewCredentials(): void {
    this.renewTimer = null;
    if (this.calls.some((call) => call.state === 'connected' || call.state === 'reconnecting')) this.connection.dropTransport();
  }

  /**
   * Media went down: the same cause (a network change) often left the
   * socket half-open, which nothing would notice for up to the server's ping
   * interval plus timeout. A cheap request with a short ack (`user:list`)
   * finds out now; no answer in time and the phone resumes on a new socket.
   */
  private probeTransport(): void {
    if (this.probing || !this.connection.online) return;
    this.probing = true;
    this.connection
      .request('user:list', {}, TRANSPORT_PROBE_TIMEOUT_MS)
      .catch((err: unknown) => {
        if (err instanceof SwitchboardError && err.code === 'timeout') this.connection.dropTransport();
      })
      .finally(() => (this.probing = false));
  }

  private watchNetwork(): void {
    this.unwatchNetwork ??= watchNetwork({
      changed: () => {
        this.connection.retryNow();
        for (const call of this.calls) call[networkChanged]();
      },
      offline: () => this.connection.dropTransport(),
    });
  }

  /** Nothing of the phone's may outlive it: no timer, no listener. */
  private stopWatching(): void {
    this.unwatchNetwork?.();
    this.unwatchNetwork = null;
    if (this.renewTimer) clearTimeout(this.renewTimer);
    this.renewTimer = null;
  }

  private route(d: Delivery): void {
    const callId = d.payload.callId;
    const call = callId === undefined ? undefined : this.active.get(callId);
    if (!call) {
      if (d.event === 'call:error') this.emit(PhoneEvent.Error, SwitchboardError.fromBody(d.payload));
      return;
    }
    const queue = this.held.get(call.id);
    if (queue) queue.push(d);
    else call[deliver](d);
  }

  private release(id: CallId): void {
    const queue = this.held.get(id);
    this.held.delete(id);
    const call = this.active.get(id);
    if (!queue || !call) return;
    for (const d of queue) call[deliver](d);
  }

  // ---- what calls need ----------------------------------------------------------

  private callHost(): CallHost {
    const { connection, options } = this;
    return {
      get online() {
        return connection.online;
      },
      get user() {
        return connection.user;
      },
      get rtc() {
        return rtcOf(options);
      },
      rtcConfiguration: () => ({ iceServers: this.iceServers.servers, ...this.options.rtcConfiguration }),
      mediaRecoveryTimeoutMs: options.mediaRecoveryTimeoutMs ?? DEFAULT_MEDIA_RECOVERY_TIMEOUT_MS,
      request: async (event, payload, timeoutMs) => {
        await connection.request(event, payload, timeoutMs);
      },
      relay: (event, payload) => connection.send(event, payload),
      acquireMedia: (request) => acquireMedia(this.options, request),
      credentialsStale: () => this.iceServers.stale(),
      suspectTransport: () => connection.dropTransport(),
      probeTransport: () => this.probeTransport(),
      forget: (call) => {
        this.active.delete(call.id);
        this.held.delete(call.id);
      },
    };
  }
}

function rtcOf(options: PhoneOptions): RtcImplementation {
  if (options.rtc) return options.rtc;
  const g = globalThis as Partial<RtcImplementation>;
  if (!g.RTCPeerConnection) throw SwitchboardError.unsupported('RTCPeerConnection');
  return { RTCPeerConnection: g.RTCPeerConnection, ...(g.MediaStream ? { MediaStream: g.MediaStream } : {}) };
}

async function acquireMedia(options: PhoneOptions, request: MediaRequest): Promise<MediaStream> {
  try {
    if (options.media) return await options.media({ ...request });
    const devices = (globalThis as { navigator?: { mediaDevices?: MediaDevices } }).navigator?.mediaDevices;
    if (!devices?.getUserMedia) throw new Error('navigator.mediaDevices.getUserMedia is not available');
    return await devices.getUserMedia({ ...request });
  } catch (err) {
    throw err instanceof SwitchboardError ? err : SwitchboardError.media(err);
  }
}

function performanceNow(): number {
  return globalThis.performance?.now() ?? Date.now();
}

/**
 * Audio for preflight: in a browser a quiet tone (no microphone prompt, no
 * device held), elsewhere the phone's `media` option.
 */
async function preflightAudio(options: PhoneOptions): Promise<{ stream: MediaStream; release(): void }> {
  const Context = (globalThis as { AudioContext?: typeof AudioContext }).AudioContext;
  if (Context) {
    const context = new Context();
    const oscillator = context.createOscillator();
    const gain = context.createGain();
    gain.gain.value = 0.05;
    const destination = context.createMediaStreamDestination();
    oscillator.connect(gain).connect(destination);
    oscillator.start();
    return { stream: destination.stream, release: () => void context.close().catch(() => undefined) };
  }
  const stream = await acquireMedia(options, { audio: true, video: false });
  return { stream, release: () => stream.getTracks().forEach((t) => t.stop()) };
}

/** A v4 UUID for a proposed call id (which makes `call:request` idempotent). */
function newCallId(): string {
  const c = (globalThis as { crypto?: Crypto }).crypto;
  if (c?.randomUUID) return c.randomUUID();
  const bytes = new Uint8Array(16);
  if (c?.getRandomValues) c.getRandomValues(bytes);
  else for (let i = 0; i < 16; i++) bytes[i] = Math.floor(Math.random() * 256);
  bytes[6] = (bytes[6]! & 0x0f) | 0x40;
  bytes[8] = (bytes[8]! & 0x3f) | 0x80;
  const hex = [...bytes].map((b) => b.toString(16).padStart(2, '0')).join('');
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}
