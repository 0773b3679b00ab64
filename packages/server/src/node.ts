/**
 * One node's signalling, assembled: Socket.IO on the HTTP server, and the
 * parts that carry the flow (socket event → dispatch → call runner → store →
 * effects), each built complete, in the order of the flow. The one mode
 * difference is chosen here: with Redis, the cluster adapter, the session
 * mail (`ClusterDelivery`), timer sweeps and node liveness; without, the
 * loopback delivery.
 */
import type { Server as HttpServer, IncomingMessage } from 'node:http';
import { Server } from 'socket.io';
import type { CallId, SessionId } from '@switchboard/protocol';
import type { TokenVerifier } from './auth/tokens.js';
import { callLog } from './call-log.js';
import { CallObservers, type CallHooks } from './calls/hooks.js';
import { parseRingTimerId } from './calls/types.js';
import type { Config } from './config.js';
import type { Logger } from './logger.js';
import { callMetrics, type Metrics } from './metrics.js';
import type { CallStore, TimerKind } from './store/types.js';
import { AddressGate, addressSignIns, SignInLimits, UserLimiters } from './transport/abuse.js';
import { Bindings } from './transport/bindings.js';
import { CallRunner } from './transport/calls.js';
import { createClusterAdapter, NodeLiveness, type ClusterAdapter, type PubSub } from './transport/cluster.js';
import { coalesceWrites } from './transport/coalesce.js';
import { rooms, type Conn, type Deps, type SbServer, type SbSocket, type UntypedEmit } from './transport/context.js';
import { ClusterDelivery, LoopbackDelivery, tellLocal, type LocalSessions } from './transport/delivery.js';
import { CallRequests } from './transport/call-requests.js';
import { clientAddress } from './transport/client-address.js';
import { Dispatcher } from './transport/dispatch.js';
import { admission, cutSlowReaders, MAX_HTTP_BUFFER_BYTES } from './transport/guards.js';
import { Presence } from './transport/presence.js';
import { Relay } from './transport/relay.js';
import type { MailReceiver } from './transport/session-mail.js';
import { Sessions } from './transport/sessions.js';
import { DueTimers } from './transport/timers.js';

/** Redis mode: how often each node looks for timers due (its own or a dead node's). */
const TIMER_SWEEP_MS = 250;
/** The shortest period of the session reconciliation (it runs every NODE_TIMEOUT_MS / 2). */
const RECONCILE_MIN_MS = 500;

export interface NodeParts {
  config: Config;
  store: CallStore;
  logger: Logger;
  metrics: Metrics;
  verifier: TokenVerifier;
  /** Observers besides the call log and metrics (webhooks, a host's own). */
  hooks: CallHooks[];
  /** Redis mode: the adapter's connections. Null with one process. */
  pubsub: PubSub | null;
  http: HttpServer;
}

export class SwitchboardNode {
  readonly io: SbServer;
  /** This node's sockets by the session each carries. */
  readonly local: LocalSessions = new Map<SessionId, Conn>();
  readonly calls: CallRunner;
  readonly sessions: Sessions;
  /** Redis mode's adapter and session mail; null with one process. */
  readonly bus: ClusterAdapter | null;
  /** True from the start of a drain: no new connection is taken. */
  draining = false;
  /** Sessions whose loss could not be written to the store: in Redis mode a peer must reap them (see `stop`). */
  lossFailures = 0;

  private readonly timers: DueTimers;
  private readonly presence: Presence;
  private readonly bindings: Bindings;
  private readonly dispatcher: Dispatcher;
  private readonly liveness: NodeLiveness | null;
  private readonly userLimiters: UserLimiters | null;
  private readonly intervals: NodeJS.Timeout[] = [];
  /** Disconnect handling still writing to the store; `stop` waits for it so no session is left half-lost. */
  private readonly pendingDisconnects = new Set<Promise<unknown>>();

  constructor(private readonly parts: NodeParts) {
    const { config, store, logger, metrics, verifier, pubsub } = parts;
    // Messages from other nodes arrive only once the adapter has subscribed, after this constructor:
    // the receiver's use of the parts built below is safe.
    this.bus = pubsub ? createClusterAdapter(pubsub, config.redisPrefix, logger, rooms.session, this.mailReceiver(), metrics) : null;
    const gate = config.rateLimits ? new AddressGate(config.maxUnauthenticatedPerAddress) : null;
    const addressOf = clientAddress(config.trustedProxies);
    this.userLimiters = config.rateLimits ? new UserLimiters(Date.now) : null;
    this.io = new Server(parts.http, {
      maxHttpBufferSize: MAX_HTTP_BUFFER_BYTES,
      pingInterval: config.pingIntervalMs,
      pingTimeout: config.pingTimeoutMs,
      cors: config.corsOrigins.length > 0 ? { origin: config.corsOrigins, credentials: true } : { origin: true },
      allowRequest: admission(config, gate, metrics, addressOf, () => this.draining),
      serveClient: false,
      ...(this.bus ? { adapter: this.bus.adapter } : {}),
    });
    const delivery = this.bus ? new ClusterDelivery(this.io, this.local, this.bus.mail) : new LoopbackDelivery(this.io, this.local);
    const observers = new CallObservers([callLog(logger), callMetrics(metrics), ...parts.hooks], (err, hook) =>
      logger.error({ err, hook }, 'call hook failed'),
    );
    const deps: Deps = { config, store, io: this.io, logger, metrics, verifier, now: Date.now, observers, delivery, addressOf };
    this.presence = new Presence(deps);
    // Due timers are routed to the parts built next; none is armed before an event, after this constructor.
    this.timers = new DueTimers(store, logger, (kind, id) => this.onTimerDue(kind, id));
    this.bindings = new Bindings((id) => this.local.get(id));
    this.calls = new CallRunner(deps, this.presence, this.timers, this.bindings);
    const limits = config.rateLimits ? new SignInLimits(store, addressSignIns(config.maxUnauthenticatedPerAddress), Date.now) : null;
    this.sessions = new Sessions(deps, this.local, this.calls, this.presence, this.timers, gate, limits);
    const requests = new CallRequests(deps, this.calls, this.presence);
    this.dispatcher = new Dispatcher(deps, this.sessions, this.calls, this.presence, requests, new Relay(deps, this.bindings, this.calls), this.userLimiters);
    this.liveness = this.bus ? new NodeLiveness(deps, (id, nodeId) => this.sessions.markLost(id, nodeId)) : null;

    if (gate) this.io.engine.on('connection', (c: { request: IncomingMessage; once(event: 'close', l: () => void): unknown }) => gate.track(c, addressOf(c.request)));
    this.io.on('connection', (socket) => this.onConnection(socket));
    // In Redis mode every node sweeps for due timers, so a ring timeout fires even when its node is gone.
    if (this.bus) this.every(TIMER_SWEEP_MS, () => this.timers.sweep(), 'timer sweep failed');
    // Sessions the store holds as live here with no socket here enter their grace (see `Sessions.reconcile`).
    this.every(Math.max(RECONCILE_MIN_MS, Math.floor(config.nodeTimeoutMs / 2)), () => this.sessions.reconcile(), 'session reconciliation failed');
    this.intervals.push(cutSlowReaders(this.io, logger));
  }

  /** Starts beating (Redis mode): other nodes learn that this one is alive. */
  async start(): Promise<void> {
    await this.liveness?.start();
  }

  /**
   * Stops taking part: every socket closed (each a transport loss), what
   * their losses still write awaited, the heartbeat removed. What the store
   * still holds as live on this node is lost now rather than never; if that
   * cannot be written, this node is marked dead at once so a peer reaps it.
   */
  async stop(): Promise<void> {
    this.intervals.forEach(clearInterval);
    this.userLimiters?.close();
    await new Promise<void>((resolve) => this.io.close(() => resolve()));
    await Promise.allSettled([...this.pendingDisconnects]);
    if (this.bus) await this.sessions.reconcile().catch(() => this.lossFailures++);
    await this.liveness?.stop();
    if (this.bus && this.lossFailures > 0) await this.parts.store.beat(this.parts.config.nodeId, 0).catch(() => undefined);
    this.timers.close();
  }

  /** Work the stop waits for (a session's loss being written). */
  track(work: Promise<unknown>): void {
    this.pendingDisconnects.add(work);
    void work.finally(() => this.pendingDisconnects.delete(work));
  }

  private onConnection(socket: SbSocket): void {
    if (this.draining) {
      socket.conn.close();
      return;
    }
    coalesceWrites(socket.conn);
    const conn = this.sessions.onConnection(socket);
    this.bindings.watch(conn);
    socket.onAny((event: string, ...args: unknown[]) => this.dispatcher.dispatch(conn, event, args));
    socket.on('disconnect', (reason) => {
      // A client that leaves the namespace leaves the connection too: a new session needs a new
      // connection, so every per-connection and per-address limit applies to it again.
      if (reason === 'client namespace disconnect') socket.conn.close();
      this.bindings.forget(conn);
      this.track(
        this.sessions.onDisconnect(conn, reason).catch((err: unknown) => {
          this.lossFailures++;
          this.parts.logger.error({ err }, 'disconnect handling failed');
        }),
      );
    });
  }

  private async onTimerDue(kind: TimerKind, id: string): Promise<void> {
    if (kind === 'ring') await this.calls.run({ type: 'ring-timeout', ...parseRingTimerId(id) });
    else await this.sessions.expire(id as SessionId);
  }

  /** What another node's session mail brings: calls to learn and events for sockets here, announcements for rooms. */
  private mailReceiver(): MailReceiver {
    return {
      session: (session, items) => {
        const conn = this.local.get(session);
        for (const item of items) {
          if (item.kind === 'call') this.calls.learn(item.call, conn);
          else if (conn) (conn.socket.emit as UntypedEmit)(item.event, item.payload);
        }
      },
      room: (room, entries) => this.presence.receive(room, entries),
    };
  }

  private every(ms: number, work: () => Promise<unknown>, failure: string): void {
    const timer = setInterval(() => void work().catch((err: unknown) => this.parts.logger.warn({ err }, failure)), ms);
    timer.unref();
    this.intervals.push(timer);
  }
}
