/** HTTP on the signalling port: probes, metrics, call history, dev tokens and the softphone page. */
import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import { AuthError, mintToken, type TokenVerifier } from '../auth/tokens.js';
import { userKey } from '../calls/types.js';
import type { Config } from '../config.js';
import type { Metrics } from '../metrics.js';
import type { CallStore } from '../store/types.js';

export interface HttpDeps {
  config: Config;
  store: CallStore;
  metrics: Metrics;
  verifier: TokenVerifier;
  /** Redis mode: whether the cross-node pub/sub connections are up. */
  busReady?: () => boolean;
}

/** How long `/readyz` waits for the store before calling it not ready. */
const READY_TIMEOUT_MS = 1000;
const MAX_HISTORY_PAGE = 100;
const DEFAULT_HISTORY_PAGE = 20;

const devTokenBody = z.object({
  userId: z.string().min(1).max(256),
  name: z.string().min(1).max(256).optional(),
  tenant: z.string().max(256).optional(),
  contacts: z.array(z.string().min(1).max(256)).max(1000).optional(),
});
const historyQuery = z.object({
  limit: z.coerce.number().int().min(1).max(MAX_HISTORY_PAGE).optional(),
  before: z.string().regex(/^\d{1,20}$/).optional(),
});

function problem(code: string, message: string) {
  return { error: { code, message } };
}

export function registerRoutes(app: FastifyInstance, deps: HttpDeps): void {
  const { config, store, metrics, verifier } = deps;

  app.get('/healthz', async () => ({ status: 'ok' }));

  app.get('/readyz', async (_req, reply) => {
    // Cross-node delivery must be back too: a node whose pub/sub connection is still reconnecting would lose emits.
    if (deps.busReady && !deps.busReady()) return reply.code(503).send({ status: 'not ready', store: store.kind, bus: 'reconnecting' });
    try {
      await Promise.race([
        store.ping(),
        new Promise((_, reject) => setTimeout(() => reject(new Error('store timeout')), READY_TIMEOUT_MS).unref()),
      ]);
      return { status: 'ready', store: store.kind };
    } catch {
      return reply.code(503).send({ status: 'not ready', store: store.kind });
    }
  });

  app.get('/metrics', async (_req, reply) => {
    reply.header('content-type', metrics.registry.contentType);
    return metrics.registry.metrics();
  });

  app.get('/api/calls', async (req, reply) => {
    const header = req.headers.authorization;
    const token = typeof header === 'string' && /^Bearer /i.test(header) ? header.slice(7).trim() : '';
    let identity;
    try {
      identity = await verifier.verify(token);
    } catch (err) {
      const code = err instanceof AuthError ? err.code : 'invalid_token';
      return reply.code(401).header('www-authenticate', 'Bearer').send(problem('unauthenticated', code));
    }
    const query = historyQuery.safeParse(req.query);
    if (!query.success) {
      return reply.code(400).send(problem('invalid_payload', 'limit must be 1..100 and before a cursor from "next"'));
    }
    return store.listHistory(
      userKey(identity.tenant, identity.userId),
      query.data.limit ?? DEFAULT_HISTORY_PAGE,
      query.data.before ?? null,
    );
  });

  app.post('/dev/token', async (req, reply) => {
    if (!config.devMode || !config.jwtSecret) return reply.code(404).send(problem('not_found', 'not found'));
    const body = devTokenBody.safeParse(req.body);
    if (!body.success) return reply.code(400).send(problem('invalid_payload', 'expected {"userId": string, "name"?: string}'));
    const token = await mintToken(config.jwtSecret, { ...body.data, ttlS: 12 * 3600 });
    return { token };
  });
}
