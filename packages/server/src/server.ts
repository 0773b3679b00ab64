/**
 * Starts one Switchboard node: HTTP (fastify) and its signalling (node.ts) on
 * one port, over the store; and takes it apart again, at once (`close`) or
 * without losing a call (`drain`, drain.ts). `startServer` is what `serve` in
 * `main.ts` and the tests call.
 */
import Fastify from 'fastify';
import { TokenVerifier } from './auth/tokens.js';
import type { CallHooks } from './calls/hooks.js';
import type { Config } from './config.js';
import { drainNode } from './drain.js';
import { registerRoutes } from './http/routes.js';
import { registerSoftphone } from './http/softphone.js';
import { createLogger, type Logger } from './logger.js';
import { Metrics } from './metrics.js';
import { SwitchboardNode } from './node.js';
import { InstrumentedStore } from './store/instrumented-store.js';
import { MemoryStore } from './store/memory-store.js';
import { RedisStore } from './store/redis-store.js';
import { redisTargetOf, resolveRedisTarget, type RedisTarget } from './store/redis-target.js';
import type { CallStore } from './store/types.js';
import { connectPubSub } from './transport/cluster.js';
import type { SbServer } from './transport/context.js';

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

function createStore(config: Config, target: RedisTarget | null, logger: Logger, metrics: Metrics): CallStore {
  if (!target) return new MemoryStore({ historyLimit: config.historyLimit });
  const redis = new RedisStore({
    target,
    prefix: config.redisPrefix,
    historyLimit: config.historyLimit,
    onError: (err) => logger.warn({ err: err.message }, 'redis store connection error'),
  });
  return new InstrumentedStore(redis, metrics.redisSeconds);
}

export async function startServer(config: Config, options: StartOptions = {}): Promise<SwitchboardServer> {
  const logger = options.logger ?? createLogger(config);
  const metrics = options.metrics ?? new Metrics();
  const target = await resolveRedisTarget(redisTargetOf(config));
  const store = options.store ?? createStore(config, target, logger, metrics);
  const pubsub = target ? await connectPubSub(target, logger) : null;
  const verifier = new TokenVerifier(config);
  const app = Fastify({ logger: false, bodyLimit: 16 * 1024 });
  const node = new SwitchboardNode({ config, store, logger, metrics, verifier, hooks: options.hooks ?? [], pubsub, http: app.server });
  // A draining node is not ready: the load balancer stops sending it anyone.
  app.addHook('onRequest', async (req, reply) => {
    if (node.draining && req.url.split('?')[0] === '/readyz') return reply.code(503).send({ status: 'draining', store: store.kind });
  });
  await node.start();
  const bus = node.bus;
  registerRoutes(app, { config, store, metrics, verifier, ...(bus ? { busReady: () => bus.ready() } : {}) });
  await registerSoftphone(app);
  await app.listen({ port: config.port, host: config.host });
  const address = app.server.address();
  const port = typeof address === 'object' && address ? address.port : config.port;
  logger.info({ port, host: config.host, store: store.kind, devMode: config.devMode }, 'switchboard listening');

  let closing: Promise<void> | undefined;
  const shutdown = () => {
    closing ??= (async () => {
      await node.stop();
      await app.close();
      await bus?.close();
      await store.close();
      verifier.close();
    })();
    return closing;
  };
  let drained: Promise<void> | undefined;
  const drain = () => (drained ??= drainNode(node, metrics, logger, shutdown));

  return {
    config,
    port,
    url: `http://127.0.0.1:${port}`,
    io: node.io,
    store,
    metrics,
    logger,
    get draining() {
      return node.draining;
    },
    drain,
    close: shutdown,
  };
}
