/**
 * Assembles one Switchboard node: HTTP (fastify) and Socket.IO on one port,
 * the store, the transport; and takes it apart again, at once (`close`) or
 * without losing a call (`drain`). `startServer` is what `serve` in `main.ts`
 * and the tests call.
 */
import { setTimeout as delay } from 'node:timers/promises';
import Fastify from 'fastify';
import { Server } from 'socket.io';
import { MAX_MESSAGE_BYTES } from '@switchboard/protocol';
import { TokenVerifier } from './auth/tokens.js';
import type { CallRecord } from './calls/types.js';
import type { Config } from './config.js';
import { registerRoutes } from './http/routes.js';
import { registerSoftphone } from './http/softphone.js';
import { createLogger, type Logger } from './logger.js';
import { callMetrics, Metrics } from './metrics.js';
import { callLog } from './call-log.js';
import { CallObservers, type CallHooks } from './calls/hooks.js';
import { InstrumentedStore } from './store/instrumented-store.js';
import { MemoryStore } from './store/memory-store.js';
import { RedisStore } from './store/redis-store.js';
import { createClusterAdapter, NodeLiveness, type ClusterAdapter } from './transport/cluster.js';
import type { CallStore, Versioned } from './store/types.js';
import { CallRunner } from './transport/calls.js';
import { rooms, type Conn, type Deps, type SbServer, type UntypedEmit as Emit } from './transport/context.js';
import { Dispatcher } from './transport/dispatch.js';
import { Presence } from './transport/presence.js';
import { Bindings } from './transport/bindings.js';
import { coalesceWrites } from './transport/coalesce.js';
import { Relay } from './transport/relay.js';
import { Sessions } from './transport/sessions.js';
import { DueTimers } from './transport/timers.js';
import { AddressGate, addressSignIns, MAX_BUFFERED_PACKETS, SignInLimits, UserLimiters } from './transport/abuse.js';
import type { SessionId } from '@switchboard/protocol';

export interface StartOptions {
  store?: CallStore;
  logger?: Logger;
  /** Observers of call events (webhooks use this). */
  hooks?: CallHooks[];
  /** Metrics shared with something made before the server (webhooks); a new registry by default. */
  metrics?: Metrics;
}

export interface SwitchboardServer {
  readonly config: Config;
  readonly port: number;
  /** `http://127.0.0.1:<port>` */
  readonly url: string;
  readonly io: SbServer;
  readonly store: CallStore;
  readonly metrics: Metrics;
  readonly logger: Logger;
  /** True from the start of `drain()`. */
  readonly draining: boolean;
  /**
   * Takes this node out of service without losing a call: it stops taking
   * connections, closes every client transport within 5 s as a transport loss
   * (Redis mode: the sessions enter their grace and resume on another node;
   * memory mode: each call first ends as `connection_lost` for both parties),
   * then closes. Calling it again returns the same promise.
   */
  drain(): Promise<void>;
  /** Stops at once (tests): sockets are cut without a handover. */
  close(): Promise<void>;
}

/** Redis mode: how often each node looks for timers due (its own or a dead node's). */
const TIMER_SWEEP_MS = 250;

/** A drain closes every client transport within this (the protocol says 5 s; the rest is margin). */
const DRAIN_CLOSE_MS = 4500;
/** Sessions handed over at once during a drain (each is a few Redis round trips). */
const DRAIN_CONCURRENCY = 32;

function createStore(config: Config, logger: Logger, metrics: Metrics): CallStore {
  if (!config.redisUrl) return new MemoryStore({ historyLimit: config.historyLimit });
  const redis = new RedisStore({
    url: config.redisUrl,
    prefix: config.redisPrefix,
    historyLimit: config.historyLimit,
    onError: (err) => logger.warn({ err: err.message }, 'redis store connection error'),
  });
  return new InstrumentedStore(redis, metrics.redisSeconds);
}

/** The shortest period of the session reconciliation (it runs every NODE_TIMEOUT_MS / 2). */
const RECONCILE_MIN_MS = 500;

/** Headroom over the largest legal message for Socket.IO framing. */
const FRAME_OVERHEAD_BYTES = 1024;

/** How often sockets are checked for packets piling up unread. */
const SLOW_READER_CHECK_MS = 2000;

function originAllowed(allowed: string[], origin: string | undefined): boolean {
  // Non-browser clients send no Origin; browsers always do on a cross-site WebSocket.
  return allowed.length === 0 || origin === undefined || allowed.includes(origin);
}

export async function startServer(config: Config, options: StartOptions = {}): Promise<SwitchboardServer> {
  const logger = options.logger ?? createLogger(config);
  const metrics = options.metrics ?? new Metrics();
  const store = options.store ?? createStore(config, logger, metrics);
  const cluster: ClusterAdapter | null = config.redisUrl
    ? await createClusterAdapter(config.redisUrl, config.redisPrefix, logger, rooms.session, metrics)
    : null;
  const verifier = new TokenVerifier(config);

  const gate = config.rateLimits ? new AddressGate(config.maxUnauthenticatedPerAddress) : null;
  const userLimiters = config.rateLimits ? new UserLimiters(Date.now) : null;
  let draining = false;
  const app = Fastify({ logger: false, bodyLimit: 16 * 1024 });
  // A draining node is not ready: the load balancer stops sending it anyone.
  app.addHook('onRequest', async (req, reply) => {
    if (draining && req.url.split('?')[0] === '/readyz') return reply.code(503).send({ status: 'draining', store: store.kind });
  });
  const io: SbServer = new Server(app.server, {
    maxHttpBufferSize: MAX_MESSAGE_BYTES + FRAME_OVERHEAD_BYTES,
    cors: config.corsOrigins.length > 0 ? { origin: config.corsOrigins, credentials: true } : { origin: true },
    allowRequest: (req, callback) => {
      if (draining) return callback('this node is shutting down', false);
      if (!originAllowed(config.corsOrigins, req.headers.origin)) return callback('origin not allowed', false);
      const address = req.socket.remoteAddress ?? 'unknown';
      if (gate && !gate.admit(address)) {
        metrics.rateLimitedTotal.inc({ event: 'connect' });
        return callback('too many unauthenticated connections from this address', false);
      }
      callback(null, true);
    },
    serveClient: false,
    ...(cluster ? { adapter: cluster.adapter } : {}),
  });

  const observers = new CallObservers([callLog(logger), callMetrics(metrics), ...(options.hooks ?? [])], (err, hook) =>
    logger.error({ err, hook }, 'call hook failed'),
  );
  // The one way to reach a session, for call events and relays alike (see `Deps.emitToSession`).
  const emitToSession = (session: SessionId, event: string, payload: unknown, known?: Versioned<CallRecord>): void => {
    const local = sessions?.local.get(session);
    if (!cluster) {
      if (local) (local.socket.emit as Emit)(event, payload);
      return;
    }
    const { mail } = cluster;
    // Behind mail still waiting for this session, this emit waits too: one order per session.
    if (local && !mail.pending(session)) {
      (io.to(rooms.session(session)).emit as Emit)(event, payload);
      return;
    }
    if (known) mail.tell(session, known);
    mail.emit(session, event, payload);
  };
  const deps: Deps = { config, store, io, logger, metrics, verifier, now: Date.now, observers, emitToSession, mail: cluster?.mail };
  const calls = new CallRunner(deps);
  const presence = new Presence(deps);
  calls.presence = presence;
  let sessions: Sessions | undefined;
  const timers = new DueTimers(store, logger, async (kind, id) => {
    if (kind === 'ring') await calls.run({ type: 'ring-timeout', callId: id as never });
    else await sessions?.expire(id as SessionId);
  });
  calls.timers = timers;
  const bindings = new Bindings((id) => sessions?.local.get(id));
  calls.bindings = bindings;
  // In Redis mode every node sweeps for due timers, so a ring timeout fires even when its node is gone.
  const sweeper = cluster
    ? setInterval(() => void timers.sweep().catch((err: unknown) => logger.warn({ err }, 'timer sweep failed')), TIMER_SWEEP_MS)
    : null;
  sweeper?.unref();
  const signInLimits = config.rateLimits ? new SignInLimits(store, addressSignIns(config.maxUnauthenticatedPerAddress), Date.now) : null;
  sessions = new Sessions(deps, calls, presence, timers, gate, signInLimits);
  // Sessions the store holds as live here with no socket here enter their grace (see `Sessions.reconcile`).
  const reconciler = setInterval(
    () => void sessions!.reconcile().catch((err: unknown) => logger.warn({ err }, 'session reconciliation failed')),
    Math.max(RECONCILE_MIN_MS, Math.floor(config.nodeTimeoutMs / 2)),
  );
  reconciler.unref();
  if (cluster) {
    cluster.mail.deliver = {
      session(session, items) {
        const conn = sessions!.local.get(session);
        for (const item of items) {
          if (item.kind === 'call') calls.learn(item.call, conn);
          else if (conn) (conn.socket.emit as Emit)(item.event, item.payload);
        }
      },
      room(room, entries) {
        for (const [except, event, payload] of entries) presence.tellLocal(room, except, event, payload);
      },
    };
  }
  if (gate) io.engine.on('connection', (connection: { remoteAddress: string; once(event: 'close', l: () => void): unknown }) => gate.track(connection, connection.remoteAddress));
  const liveness = cluster ? new NodeLiveness(deps, (id, nodeId) => sessions!.markLost(id, nodeId)) : null;
  await liveness?.start();
  const dispatcher = new Dispatcher(deps, sessions, calls, presence, new Relay(deps, bindings, calls), userLimiters);

  // Disconnect handling still writing to the store; shutdown waits for it so no session is left half-lost.
  const pendingDisconnects = new Set<Promise<unknown>>();
  const track = (work: Promise<unknown>) => {
    pendingDisconnects.add(work);
    void work.finally(() => pendingDisconnects.delete(work));
  };
  // Sessions whose loss could not be written to the store: in Redis mode a peer must reap them (see shutdown).
  let lossFailures = 0;
  io.on('connection', (socket) => {
    if (draining) {
      socket.conn.close();
      return;
    }
    coalesceWrites(socket.conn);
    const conn: Conn = sessions!.onConnection(socket);
    bindings.watch(conn);
    socket.onAny((event: string, ...args: unknown[]) => dispatcher.dispatch(conn, event, args));
    socket.on('disconnect', (reason) => {
      // A client that leaves the namespace leaves the connection too: a new session needs a new
      // connection, so every per-connection and per-address limit applies to it again.
      if (reason === 'client namespace disconnect') socket.conn.close();
      bindings.forget(conn);
      track(
        sessions!.onDisconnect(conn, reason).catch((err: unknown) => {
          lossFailures++;
          logger.error({ err }, 'disconnect handling failed');
        }),
      );
    });
  });

  // A socket that does not read its packets would make us buffer without bound: cut it as a lost transport.
  const slowReaders = setInterval(() => {
    for (const socket of io.of('/').sockets.values()) {
      // engine.io keeps unsent packets in `writeBuffer` (not in its public types).
      const buffered = (socket.conn as unknown as { writeBuffer: unknown[] }).writeBuffer.length;
      if (buffered > MAX_BUFFERED_PACKETS) {
        logger.warn({ socket: socket.id, session: socket.data.sessionId, buffered }, 'cutting a slow reader');
        // close(true) discards the queue: a plain close() would wait for it to drain, which a stalled reader never lets happen.
        socket.conn.close(true);
      }
    }
  }, SLOW_READER_CHECK_MS);
  slowReaders.unref();

  registerRoutes(app, { config, store, metrics, verifier, ...(cluster ? { busReady: () => cluster.ready() } : {}) });
  await registerSoftphone(app);
  await app.listen({ port: config.port, host: config.host });
  const address = app.server.address();
  const port = typeof address === 'object' && address ? address.port : config.port;
  logger.info({ port, host: config.host, store: store.kind, devMode: config.devMode }, 'switchboard listening');

  let closing: Promise<void> | undefined;
  const shutdown = () => {
    closing ??= (async () => {
      if (sweeper) clearInterval(sweeper);
      clearInterval(slowReaders);
      clearInterval(reconciler);
      userLimiters?.close();
      await new Promise<void>((resolve) => io.close(() => resolve()));
      await Promise.allSettled([...pendingDisconnects]);
      // No socket is left here: whatever the store still holds as live on this node is lost now, not never.
      if (cluster) await sessions!.reconcile().catch(() => lossFailures++);
      await liveness?.stop();
      // A session whose loss never reached Redis still looks live there: mark this node
      // dead at once so a peer reaps it (treats its sessions as transport losses).
      if (cluster && lossFailures > 0) await store.beat(config.nodeId, 0).catch(() => undefined);
      timers.close();
      await app.close();
      await cluster?.close();
      await store.close();
      verifier.close();
    })();
    return closing;
  };

  /**
   * Memory mode: both parties of every call are here and nothing survives the
   * process, so each call ends now as `connection_lost` for both (an active
   * call) or is cancelled (a ringing one), with its history record.
   */
  const endLocalCalls = async () => {
    const seen = new Set<string>();
    for (const conn of [...sessions!.local.values()]) {
      if (!conn.session) continue;
      try {
        const call = await calls.callOfUser(conn.session.key);
        if (!call || seen.has(call.id)) continue;
        seen.add(call.id);
        const caller = call.caller.sessionId!;
        const as = { userId: call.caller.userId, sessionId: caller };
        if (call.state === 'active') {
          // The machine tells the callee; the caller hears the same from us.
          const { call: ended } = await calls.run({ type: 'session-expired', callId: call.id, sessionId: caller }, as);
          const durationMs = ended?.answeredAt != null && ended.endedAt != null ? ended.endedAt - ended.answeredAt : 0;
          io.to(rooms.session(caller)).emit('call:ended', { callId: call.id, reason: 'connection_lost', durationMs });
        } else if (call.state === 'ringing') {
          await calls.run({ type: 'session-lost', callId: call.id, sessionId: caller, deliberate: false }, as);
          io.to(rooms.session(caller)).emit('call:rejected', { callId: call.id, reason: 'unavailable' });
        }
      } catch (err) {
        logger.warn({ err, session: conn.session.id }, 'could not end a call while draining');
      }
    }
    return seen.size;
  };

  /**
   * Hands one session over: its loss is written to the store first, then its
   * transport is cut, so when the client resumes on another node the session
   * is already waiting there in its grace (and no late write from here can
   * mark the resumed session lost).
   */
  const handOver = async (conn: Conn, deadline: number) => {
    const info = conn.session;
    if (!info || conn.closing) {
      conn.socket.conn.close();
      return;
    }
    conn.closing = 'closed';
    if (sessions!.local.get(info.id) === conn) sessions!.local.delete(info.id);
    const lost = sessions!.markLost(info.id).catch((err: unknown) => {
      lossFailures++;
      logger.warn({ err, session: info.id }, 'could not hand a session over while draining');
    });
    track(lost);
    await Promise.race([lost, delay(Math.max(0, deadline - Date.now()), undefined, { ref: false })]);
    conn.socket.conn.close();
  };

  let drained: Promise<void> | undefined;
  const drain = () => {
    drained ??= (async () => {
      const started = Date.now();
      const deadline = started + DRAIN_CLOSE_MS;
      draining = true;
      metrics.draining.set(1);
      logger.info({ sockets: io.of('/').sockets.size, sessions: sessions!.local.size, store: store.kind }, 'draining');
      app.server.close(() => undefined);
      // Each socket's close, once what was sent to it has gone out (engine.io flushes before closing).
      const closed = [...io.of('/').sockets.values()].map((socket) => new Promise((resolve) => socket.once('disconnect', resolve)));
      const endedCalls = cluster ? 0 : await endLocalCalls();
      const conns = [...sessions!.local.values()];
      // Sockets that never signed in have nothing to hand over.
      for (const socket of io.of('/').sockets.values()) if (!socket.data.sessionId) socket.conn.close();
      const worker = async () => {
        for (let conn = conns.shift(); conn; conn = conns.shift()) {
          if (Date.now() >= deadline) conn.socket.conn.close();
          else await handOver(conn, deadline);
        }
      };
      await Promise.all(Array.from({ length: DRAIN_CONCURRENCY }, worker));
      await Promise.race([Promise.all(closed), delay(Math.max(0, deadline - Date.now()), undefined, { ref: false })]);
      logger.info({ ms: Date.now() - started, endedCalls, lossFailures }, 'client transports closed');
      await shutdown();
      logger.info({ ms: Date.now() - started, handedOver: lossFailures === 0 }, 'drained');
    })();
    return drained;
  };

  return {
    config,
    port,
    url: `http://127.0.0.1:${port}`,
    io,
    store,
    metrics,
    logger,
    get draining() {
      return draining;
    },
    drain,
    close: shutdown,
  };
}
