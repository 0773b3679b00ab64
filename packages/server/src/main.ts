/**
 * The process around one node, shared by `npm start` (this file run directly)
 * and `switchboard serve`: load the configuration, check Redis, start
 * webhooks and the server, and drain on SIGTERM/SIGINT.
 */
import { realpathSync } from 'node:fs';
import { pathToFileURL } from 'node:url';
import { setFlagsFromString } from 'node:v8';
import { Redis } from 'ioredis';
import { ConfigError, configWarnings, loadConfig, maskUrl, type Config } from './config.js';
import { createLogger } from './logger.js';
import { Metrics } from './metrics.js';
import { startServer, type SwitchboardServer } from './server.js';
import { WebhookSender } from './webhooks.js';
import { authOf, describeTarget, oneShotOptions, openRedis, redisTargetOf, resolveRedisTarget, type RedisTarget } from './store/redis-target.js';

/** Exit codes of `npm start` and the `switchboard` CLI (sysexits.h), for scripts and service managers. */
export const EXIT = {
  ok: 0,
  /** Anything else went wrong (e.g. the port is taken). */
  failure: 1,
  /** A bad command line. */
  usage: 64,
  /** A service the configuration names does not answer (Redis). */
  unavailable: 69,
  /** A bad configuration value. */
  config: 78,
} as const;

/** How long `serve` gives a drain and the webhooks it leaves before exiting anyway (the protocol's limit is 10 s). */
const EXIT_DEADLINE_MS = 9500;
/** After the drain, queued webhooks get at most this long to go out. */
const WEBHOOK_FLUSH_MS = 4000;
const REDIS_PROBE_TIMEOUT_MS = 2000;
/** Sharded pub/sub (the adapter) needs Redis 7. */
const MIN_REDIS_MAJOR = 7;

export interface RedisProbe {
  topology: 'single' | 'sentinel' | 'cluster';
  version: string;
  latencyMs: number;
  /** Sentinel: the master's address the sentinels gave, its replicas, and each sentinel's answer. */
  master?: string;
  replicas?: number;
  sentinels?: { address: string; ok: boolean; master?: string; error?: string }[];
  /** Cluster: each master with its slots and replicas, as `CLUSTER SHARDS` says, and whether it answered. */
  masters?: { address: string; ok: boolean; slots: number; replicas: number; error?: string }[];
}

/**
 * Connects to the deployment's Redis once (for Sentinel: asks every sentinel
 * for the master, then connects to it), PINGs it and reads its version and
 * role; rejects with a clear message when it is unusable.
 */
export async function probeRedis(target: RedisTarget, timeoutMs = REDIS_PROBE_TIMEOUT_MS): Promise<RedisProbe> {
  const resolved = (await resolveRedisTarget(target))!;
  if (resolved.kind === 'cluster') return probeCluster(resolved, timeoutMs);
  const client = openRedis(resolved, {
    ...oneShotOptions(timeoutMs),
    ...(resolved.kind === 'sentinel' ? { sentinelRetryStrategy: () => null, failoverDetector: false } : {}),
  });
  // ioredis rejects with "Connection is closed"; the error event says why (ECONNREFUSED, ENOTFOUND, WRONGPASS …).
  let cause: Error | undefined;
  client.on('error', (err: Error) => (cause ??= err));
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`no answer within ${timeoutMs * 2} ms`)), timeoutMs * 2);
  });
  try {
    const sentinels = resolved.kind === 'sentinel' ? await askSentinels(resolved, timeoutMs) : undefined;
    return await Promise.race([
      (async (): Promise<RedisProbe> => {
        await client.connect();
        const started = performance.now();
        await client.ping();
        const latencyMs = Math.round((performance.now() - started) * 10) / 10;
        const info = await client.info();
        const version = /redis_version:(\S+)/.exec(info)?.[1] ?? 'unknown';
        checkRedisVersion(version, 'Redis');
        const role = /role:(\w+)/.exec(info)?.[1];
        if (role && role !== 'master') throw new Error(`Redis answers as a ${role}, not a master: writes would fail`);
        if (resolved.kind === 'single') return { topology: 'single', version, latencyMs };
        const replicas = Number(/connected_slaves:(\d+)/.exec(info)?.[1] ?? 0);
        const master = sentinels?.find((s) => s.master)?.master;
        return { topology: 'sentinel', version, latencyMs, replicas, ...(master ? { master } : {}), sentinels: sentinels ?? [] };
      })(),
      timeout,
    ]);
  } catch (err) {
    throw cause ? new Error(cause.message) : err;
  } finally {
    clearTimeout(timer);
    client.disconnect();
  }
}

/** Throws unless `version` (`redis_version` of INFO; unknown passes) is one Switchboard runs on. */
export function checkRedisVersion(version: string, who: string): void {
  const major = Number(version.split('.')[0]);
  if (Number.isFinite(major) && major < MIN_REDIS_MAJOR) {
    throw new Error(`${who} runs Redis ${version}, too old: Switchboard needs Redis >= ${MIN_REDIS_MAJOR} (sharded pub/sub)`);
  }
}

/**
 * A cluster: asks the first seed that answers for the shards (`CLUSTER
 * SHARDS`), then PINGs and reads the version of every master. Unusable when
 * the cluster says it is not ok, a slot has no master, or a master does not answer.
 */
async function probeCluster(target: Extract<RedisTarget, { kind: 'cluster' }>, timeoutMs: number): Promise<RedisProbe> {
  const auth = authOf(target);
  const errors: string[] = [];
  for (const seed of target.nodes) {
    const client = new Redis({ host: seed.host, port: seed.port, ...oneShotOptions(timeoutMs), ...auth });
    let cause: Error | undefined;
    client.on('error', (err: Error) => (cause ??= err));
    let shards: unknown[][];
    try {
      await client.connect();
      const state = /cluster_state:(\w+)/.exec(String(await client.call('CLUSTER', 'INFO')))?.[1];
      if (state !== 'ok') throw new Error(`the cluster's state is "${state ?? 'unknown'}", not ok`);
      shards = (await client.call('CLUSTER', 'SHARDS')) as unknown[][];
    } catch (err) {
      const message = cause?.message ?? (err instanceof Error ? err.message : String(err));
      // CLUSTER SHARDS came with Redis 7.0, as did the sharded pub/sub the adapter needs.
      if (/unknown subcommand/i.test(message)) throw new Error(`${seed.host}:${seed.port} does not know CLUSTER SHARDS: Switchboard needs Redis >= ${MIN_REDIS_MAJOR} (sharded pub/sub)`);
      if (/cluster support disabled/i.test(message)) throw new Error(`${seed.host}:${seed.port} is not a cluster node (cluster support disabled): use REDIS_URL for one Redis`);
      if (/state is/.test(message)) throw new Error(message);
      errors.push(`${seed.host}:${seed.port}: ${message}`);
      continue;
    } finally {
      client.disconnect();
    }
    const masters = await Promise.all(shards.map((shard) => probeMaster(shard, auth, timeoutMs)));
    const covered = masters.reduce((sum, m) => sum + m.slots, 0);
    if (covered !== 16384) throw new Error(`masters hold ${covered} of the 16384 slots`);
    const down = masters.find((m) => !m.ok);
    if (down) throw new Error(`master ${down.address} does not answer: ${down.error}`);
    for (const m of masters) checkRedisVersion(m.version, `master ${m.address}`);
    return { topology: 'cluster', version: masters[0]!.version, latencyMs: Math.max(...masters.map((m) => m.latencyMs)), masters: masters.map(({ address, ok, slots, replicas }) => ({ address, ok, slots, replicas })) };
  }
  throw new Error(`no seed node answers (${errors.join('; ')})`);
}

/** One shard of `CLUSTER SHARDS`: its master answered PING (and which version), its slots, its replicas. */
async function probeMaster(shard: unknown[], auth: ReturnType<typeof authOf>, timeoutMs: number) {
  const fields = fieldsOf(shard);
  const ranges = (fields.get('slots') as number[]).map(Number);
  let slots = 0;
  for (let i = 0; i + 1 < ranges.length; i += 2) slots += ranges[i + 1]! - ranges[i]! + 1;
  const nodes = (fields.get('nodes') as unknown[][]).map(fieldsOf);
  const master = nodes.find((n) => n.get('role') === 'master');
  // A replica says `loading` until its first sync and `failed` when it is gone.
  const replicas = nodes.filter((n) => n.get('role') === 'replica' && n.get('health') !== 'failed').length;
  const host = String(master?.get('ip') ?? master?.get('endpoint') ?? '?');
  const port = Number(master?.get('port'));
  const address = `${host}:${port}`;
  const client = new Redis({ host, port, ...oneShotOptions(timeoutMs), ...auth });
  client.on('error', () => undefined);
  try {
    await client.connect();
    const started = performance.now();
    await client.ping();
    const latencyMs = Math.round((performance.now() - started) * 10) / 10;
    const version = /redis_version:(\S+)/.exec(await client.info('server'))?.[1] ?? 'unknown';
    return { address, ok: true, slots, replicas, version, latencyMs };
  } catch (err) {
    return { address, ok: false, slots, replicas, version: 'unknown', latencyMs: 0, error: err instanceof Error ? err.message : String(err) };
  } finally {
    client.disconnect();
  }
}

/** A RESP2 map reply (`[name, value, name, value, …]`) by name. */
function fieldsOf(reply: unknown[]): Map<string, unknown> {
  const fields = new Map<string, unknown>();
  for (let i = 0; i + 1 < reply.length; i += 2) fields.set(String(reply[i]), reply[i + 1]);
  return fields;
}

/** Asks each sentinel where the master is: every sentinel should answer, and agree. */
async function askSentinels(target: Extract<RedisTarget, { kind: 'sentinel' }>, timeoutMs: number): Promise<NonNullable<RedisProbe['sentinels']>> {
  return Promise.all(
    target.sentinels.map(async ({ host, port }) => {
      const address = `${host}:${port}`;
      const sentinel = new Redis({
        host,
        port,
        ...oneShotOptions(timeoutMs),
        ...(target.sentinelAuth ? { password: target.password, ...(target.username ? { username: target.username } : {}) } : {}),
      });
      sentinel.on('error', () => undefined);
      try {
        await sentinel.connect();
        const found = (await sentinel.call('SENTINEL', 'get-master-addr-by-name', target.master)) as [string, string] | null;
        if (!found) return { address, ok: false, error: `does not know a master named "${target.master}"` };
        return { address, ok: true, master: `${found[0]}:${found[1]}` };
      } catch (err) {
        return { address, ok: false, error: err instanceof Error ? err.message : String(err) };
      } finally {
        sentinel.disconnect();
      }
    }),
  );
}

/**
 * Turns off V8's allocation-site pretenuring for this process. V8 allocates
 * straight into the old generation the objects of any allocation site whose
 * objects it has seen survive a scavenge; under call load that misfires on
 * short-lived per-message objects (the WebSocket receiver's frame lists among
 * them), which then fill the old generation with garbage and bring on the
 * mark-compacts whose 25–50 ms pauses make the latency tail. Without it, at
 * 450 calls/s, half as much reaches the old generation and half as many
 * mark-compacts run (docs/benchmarks.md). A process that embeds
 * `startServer` can pass `--no-allocation-site-pretenuring` to node itself.
 */
function tuneGarbageCollector(): void {
  setFlagsFromString('--no-allocation-site-pretenuring');
}

function fail(code: number, message: string): never {
  process.stderr.write(`switchboard: ${message}\n`);
  process.exit(code);
}

/**
 * Runs one node as a process, until SIGTERM or SIGINT drains it: loads the
 * configuration from `env`, checks Redis, starts webhooks when `WEBHOOK_URL`
 * is set, and starts the server. Exits 78 on a bad configuration, 69 when
 * Redis does not answer, 1 when the server cannot start; after a drain, 0.
 */
export async function serve(env: Record<string, string | undefined> = process.env): Promise<SwitchboardServer> {
  tuneGarbageCollector();
  let config: Config;
  try {
    config = loadConfig(env);
  } catch (err) {
    if (err instanceof ConfigError) fail(EXIT.config, `configuration error: ${err.message}`);
    throw err;
  }
  const logger = createLogger(config);
  if (config.devMode) {
    logger.warn(
      '*** DEV MODE: no JWT_SECRET or JWT_PUBLIC_KEY set. Using a random secret and serving POST /dev/token, which hands a token to anyone. Never run this in production. ***',
    );
  }
  // A dependency that rejects a promise nobody awaits (e.g. a publish during a Redis outage)
  // must not take the node down: log it and keep serving.
  process.on('unhandledRejection', (reason) => logger.error({ err: reason }, 'unhandled rejection'));
  // Dev mode said so above, louder.
  for (const warning of configWarnings(config)) if (!config.devMode) logger.warn(warning);
  const redisTarget = redisTargetOf(config);
  if (redisTarget) {
    try {
      await probeRedis(redisTarget);
    } catch (err) {
      fail(EXIT.unavailable, `${describeTarget(redisTarget)} is unusable: ${err instanceof Error ? err.message : String(err)}`);
    }
  }
  const metrics = new Metrics();
  const webhooks =
    config.webhookUrl && config.webhookSecret
      ? new WebhookSender({ url: config.webhookUrl, secret: config.webhookSecret, logger, metrics })
      : null;
  let server: SwitchboardServer;
  try {
    server = await startServer(config, { logger, metrics, hooks: webhooks ? [webhooks] : [] });
  } catch (err) {
    fail(EXIT.failure, `could not start: ${err instanceof Error ? err.message : String(err)}`);
  }
  if (webhooks) logger.info({ url: maskUrl(config.webhookUrl!) }, 'webhooks on');

  let stopping = false;
  const stop = (signal: string) => {
    // A second signal during the drain changes nothing: the drain has its own deadline.
    if (stopping) return logger.info({ signal }, 'already draining; signal ignored');
    stopping = true;
    logger.info({ signal }, 'shutting down');
    const startedAt = Date.now();
    const force = setTimeout(() => {
      logger.error({ ms: Date.now() - startedAt }, 'drain did not finish in time; exiting');
      process.exit(EXIT.failure);
    }, EXIT_DEADLINE_MS);
    force.unref();
    server.drain().then(
      async () => {
        if (webhooks) {
          const left = EXIT_DEADLINE_MS - 500 - (Date.now() - startedAt);
          await webhooks.flush(Math.max(0, Math.min(WEBHOOK_FLUSH_MS, left)));
          webhooks.close();
        }
        logger.info({ ms: Date.now() - startedAt }, 'exiting');
        process.exit(EXIT.ok);
      },
      (err: unknown) => {
        logger.error({ err }, 'shutdown failed');
        process.exit(EXIT.failure);
      },
    );
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
  return server;
}

/** True when this module is the program (`node dist/main.js`), not imported (by the CLI). */
function isEntryPoint(): boolean {
  const entry = process.argv[1];
  if (!entry) return false;
  try {
    return pathToFileURL(realpathSync(entry)).href === import.meta.url;
  } catch {
    return false;
  }
}

if (isEntryPoint()) await serve();
