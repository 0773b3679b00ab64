/**
 * Assembles one Switchboard node: HTTP (fastify) and Socket.IO on one port,
 * the store, the transport. `startServer` is what `main.ts` and the tests call.
 */
import Fastify from 'fastify';
import { Server } from 'socket.io';
import { MAX_MESSAGE_BYTES } from '@switchboard/protocol';
import { TokenVerifier } from './auth/tokens.js';
import type { Config } from './config.js';
import { registerRoutes } from './http/routes.js';
import { registerSoftphone } from './http/softphone.js';
import { createLogger, type Logger } from './logger.js';
import { Metrics } from './metrics.js';
import { MemoryStore } from './store/memory-store.js';
import { RedisStore } from './store/redis-store.js';
import { createClusterAdapter, NodeLiveness, type ClusterAdapter } from './transport/cluster.js';
import type { CallStore } from './store/types.js';
import { CallRunner } from './transport/calls.js';
import type { CallHooks, Conn, Deps, SbServer } from './transport/context.js';
import { Dispatcher } from './transport/dispatch.js';
import { Presence } from './transport/presence.js';
import { Relay } from './transport/relay.js';
import { Sessions } from './transport/sessions.js';
import { DueTimers } from './transport/timers.js';
import { AddressGate, MAX_BUFFERED_PACKETS, UserLimiters } from './transport/abuse.js';
import type { SessionId } from '@switchboard/protocol';

export interface StartOptions {
  store?: CallStore;
  logger?: Logger;
  /** Observers of call events (webhooks use this). */
  hooks?: CallHooks[];
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
  close(): Promise<void>;
}

/** Redis mode: how often each node looks for timers due (its own or a dead node's). */
const TIMER_SWEEP_MS = 250;

function createStore(config: Config, logger: Logger): CallStore {
  if (!config.redisUrl) return new MemoryStore({ historyLimit: config.historyLimit });
  return new RedisStore({
    url: config.redisUrl,
    prefix: config.redisPrefix,
    historyLimit: config.historyLimit,
    onError: (err) => logger.warn({ err: err.message }, 'redis store connection error'),
  });
}

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
  const store = options.store ?? createStore(config, logger);
  const cluster: ClusterAdapter | null = config.redisUrl
    ? await createClusterAdapter(config.redisUrl, config.redisPrefix, logger)
    : null;
  const metrics = new Metrics();
  const verifier = new TokenVerifier(config);

  const gate = config.rateLimits ? new AddressGate(config.maxUnauthenticatedPerAddress) : null;
  const userLimiters = config.rateLimits ? new UserLimiters(Date.now) : null;
  const app = Fastify({ logger: false, bodyLimit: 16 * 1024 });
  const io: SbServer = new Server(app.server, {
    maxHttpBufferSize: MAX_MESSAGE_BYTES + FRAME_OVERHEAD_BYTES,
    cors: config.corsOrigins.length > 0 ? { origin: config.corsOrigins, credentials: true } : { origin: true },
    allowRequest: (req, callback) => {
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

  const deps: Deps = { config, store, io, logger, metrics, verifier, now: Date.now, hooks: options.hooks ?? [] };
  const calls = new CallRunner(deps);
  const presence = new Presence(deps);
  calls.presence = presence;
  let sessions: Sessions | undefined;
  const timers = new DueTimers(store, logger, async (kind, id) => {
    if (kind === 'ring') await calls.run({ type: 'ring-timeout', callId: id as never });
    else await sessions?.expire(id as SessionId);
  });
  calls.timers = timers;
  // In Redis mode every node sweeps for due timers, so a ring timeout fires even when its node is gone.
  const sweeper = cluster
    ? setInterval(() => void timers.sweep().catch((err: unknown) => logger.warn({ err }, 'timer sweep failed')), TIMER_SWEEP_MS)
    : null;
  sweeper?.unref();
  sessions = new Sessions(deps, calls, presence, timers, gate);
  const liveness = cluster ? new NodeLiveness(deps, (id) => sessions!.markLost(id)) : null;
  await liveness?.start();
  const dispatcher = new Dispatcher(deps, sessions, calls, presence, new Relay(deps), userLimiters);

  // Disconnect handling still writing to the store; shutdown waits for it so no session is left half-lost.
  const pendingDisconnects = new Set<Promise<void>>();
  io.on('connection', (socket) => {
    const conn: Conn = sessions!.onConnection(socket);
    socket.onAny((event: string, ...args: unknown[]) => dispatcher.dispatch(conn, event, args));
    socket.on('disconnect', (reason) => {
      const work = sessions!.onDisconnect(conn, reason).catch((err: unknown) => logger.error({ err }, 'disconnect handling failed'));
      pendingDisconnects.add(work);
      void work.finally(() => pendingDisconnects.delete(work));
    });
  });

  // A socket that does not read its packets would make us buffer without bound: cut it as a lost transport.
  const slowReaders = setInterval(() => {
    for (const socket of io.of('/').sockets.values()) {
      // engine.io keeps unsent packets in `writeBuffer` (not in its public types).
      const buffered = (socket.conn as unknown as { writeBuffer: unknown[] }).writeBuffer.length;
      if (buffered > MAX_BUFFERED_PACKETS) {
        logger.warn({ socket: socket.id, session: socket.data.sessionId, buffered }, 'cutting a slow reader');
        socket.conn.close();
      }
    }
  }, SLOW_READER_CHECK_MS);
  slowReaders.unref();

  registerRoutes(app, { config, store, metrics, verifier });
  await registerSoftphone(app);
  await app.listen({ port: config.port, host: config.host });
  const address = app.server.address();
  const port = typeof address === 'object' && address ? address.port : config.port;
  logger.info({ port, host: config.host, store: store.kind, devMode: config.devMode }, 'switchboard listening');

  let closing: Promise<void> | undefined;
  return {
    config,
    port,
    url: `http://127.0.0.1:${port}`,
    io,
    store,
    metrics,
    logger,
    close() {
      closing ??= (async () => {
        if (sweeper) clearInterval(sweeper);
        clearInterval(slowReaders);
        userLimiters?.close();
        await new Promise<void>((resolve) => io.close(() => resolve()));
        await Promise.allSettled([...pendingDisconnects]);
        await liveness?.stop();
        timers.close();
        await app.close();
        await cluster?.close();
        await store.close();
        verifier.close();
      })();
      return closing;
    },
  };
}
