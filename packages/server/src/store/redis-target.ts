/**
 * Which Redis a deployment runs on, and how to open a connection to it:
 * one Redis (`REDIS_URL`), a Redis Cluster (`REDIS_CLUSTER_NODES`, seed
 * nodes: ioredis learns the slots and follows redirects and failovers), or a
 * master behind Sentinel (`REDIS_SENTINELS` and `REDIS_SENTINEL_MASTER`),
 * whose current master ioredis asks the sentinels for and follows through a
 * failover. `REDIS_USERNAME`/`REDIS_PASSWORD` authenticate to the data
 * nodes, and to the sentinels when they ask for it.
 */
import { Cluster, Redis, type ClusterOptions, type RedisOptions } from 'ioredis';
import type { Config } from '../config.js';
import { maskUrl } from '../config.js';
import { CoalescingCluster, CoalescingRedis } from './redis-coalesce.js';

export interface HostPort {
  host: string;
  port: number;
}

/** A connection to any of the three: ioredis's `Redis`, or its `Cluster`. */
export type RedisClient = Redis | Cluster;

export type RedisTarget =
  | { kind: 'single'; url: string; username?: string; password?: string }
  | { kind: 'cluster'; nodes: HostPort[]; username?: string; password?: string }
  | {
      kind: 'sentinel';
      sentinels: HostPort[];
      master: string;
      username?: string;
      password?: string;
      /** The sentinels require the password too (see `sentinelsNeedAuth`). */
      sentinelAuth: boolean;
    };

export function parseHostPort(item: string): HostPort {
  const at = item.lastIndexOf(':');
  return { host: item.slice(0, at).replace(/^\[(.*)\]$/, '$1'), port: Number(item.slice(at + 1)) };
}

/** The deployment's Redis as configured, or null in memory mode. `sentinelAuth` is a guess until `resolveRedisTarget`. */
export function redisTargetOf(
  config: Pick<Config, 'redisUrl' | 'redisClusterNodes' | 'redisSentinels' | 'redisSentinelMaster' | 'redisUsername' | 'redisPassword'>,
): RedisTarget | null {
  const auth = { ...(config.redisUsername ? { username: config.redisUsername } : {}), ...(config.redisPassword ? { password: config.redisPassword } : {}) };
  if (config.redisUrl) return { kind: 'single', url: config.redisUrl, ...auth };
  if (config.redisClusterNodes.length > 0) return { kind: 'cluster', nodes: config.redisClusterNodes.map(parseHostPort), ...auth };
  if (config.redisSentinels.length > 0 && config.redisSentinelMaster) {
    return { kind: 'sentinel', sentinels: config.redisSentinels.map(parseHostPort), master: config.redisSentinelMaster, ...auth, sentinelAuth: false };
  }
  return null;
}

/**
 * The target ready to connect: for Sentinel, asks the sentinels whether they
 * require the password (ioredis would otherwise print a warning for each
 * connection that sends one to a sentinel that needs none).
 */
export async function resolveRedisTarget(target: RedisTarget | null): Promise<RedisTarget | null> {
  if (target?.kind !== 'sentinel' || !target.password) return target;
  return { ...target, sentinelAuth: await sentinelsNeedAuth(target.sentinels) };
}

/** A connection for one look (a probe, a question to a sentinel): it tries once, queues nothing, and waits at most `timeoutMs`. */
export function oneShotOptions(timeoutMs: number): RedisOptions {
  return { lazyConnect: true, connectTimeout: timeoutMs, commandTimeout: timeoutMs, maxRetriesPerRequest: 0, enableOfflineQueue: false, retryStrategy: () => null };
}

/** True when the first sentinel that answers refuses an unauthenticated PING (NOAUTH). */
async function sentinelsNeedAuth(sentinels: HostPort[], timeoutMs = 2000): Promise<boolean> {
  for (const { host, port } of sentinels) {
    // No ready check: its INFO would fail on NOAUTH before our PING could say so.
    const client = new Redis({ host, port, ...oneShotOptions(timeoutMs), enableReadyCheck: false });
    client.on('error', () => undefined);
    try {
      await client.connect();
      await client.ping();
      return false;
    } catch (err) {
      if (err instanceof Error && /NOAUTH|WRONGPASS|requires auth/i.test(err.message)) return true;
    } finally {
      client.disconnect();
    }
  }
  return false;
}

/**
 * A new ioredis client for one Redis or a master behind Sentinel, with
 * `options` (fail-fast or queueing: the caller's choice). Its commands of one
 * turn of the event loop leave in one write (`redis-coalesce.ts`), and
 * ioredis's auto-pipelining is always off (the same file says why).
 */
export function openRedis(target: Exclude<RedisTarget, { kind: 'cluster' }>, options: RedisOptions): Redis;
/** A new ioredis client for `target`: a `Cluster` for a cluster, with `cluster` options added. */
export function openRedis(target: RedisTarget, options: RedisOptions, cluster?: ClusterOptions): RedisClient;
export function openRedis(target: RedisTarget, options: RedisOptions, cluster: ClusterOptions = {}): RedisClient {
  const auth = authOf(target);
  const own = { ...options, ...auth, enableAutoPipelining: false };
  if (target.kind === 'single') return new CoalescingRedis(target.url, own);
  if (target.kind === 'cluster') return openCluster(target.nodes, own, cluster);
  return new CoalescingRedis({
    ...own,
    sentinels: target.sentinels,
    name: target.master,
    ...(target.sentinelAuth ? { sentinelPassword: target.password, ...(target.username ? { sentinelUsername: target.username } : {}) } : {}),
    // Hear +switch-master from the sentinels and move to the new master at once, not on the next error.
    failoverDetector: true,
    // Asking the sentinels again after a failover: at once, then backing off to a second (as for one Redis).
    sentinelRetryStrategy: (times: number) => Math.min(50 * times, 1000),
    // A write that reaches a demoted master (READONLY) means the failover happened: reconnect to the new one.
    reconnectOnError: (err: Error) => (err.message.startsWith('READONLY') ? 1 : false),
  });
}

/** The credentials of the data nodes, as ioredis options (none when unset). */
export function authOf(target: Pick<RedisTarget, 'username' | 'password'>): Pick<RedisOptions, 'username' | 'password'> {
  return { ...(target.username ? { username: target.username } : {}), ...(target.password ? { password: target.password } : {}) };
}

/**
 * A Cluster client: `options` go to each node's connection, but for those a
 * Cluster takes at its own level (offline queue, auto-pipelining, retry
 * strategy, lazy connect), which apply to the whole cluster instead.
 */
function openCluster(nodes: HostPort[], options: RedisOptions, cluster: ClusterOptions): Cluster {
  const { enableOfflineQueue, enableAutoPipelining, retryStrategy, lazyConnect, ...perNode } = options;
  return new CoalescingCluster(nodes, {
    ...(enableOfflineQueue === undefined ? {} : { enableOfflineQueue }),
    ...(enableAutoPipelining === undefined ? {} : { enableAutoPipelining }),
    ...(lazyConnect === undefined ? {} : { lazyConnect }),
    // Asking for the slots again after a node went: as for one Redis, at once and then up to a second apart.
    clusterRetryStrategy: retryStrategy ? (times: number) => retryStrategy(times) : (times: number) => Math.min(50 * times, 1000),
    // A master that fails is replaced within a few seconds: ask for the slots again soon, and often.
    retryDelayOnFailover: 200,
    retryDelayOnClusterDown: 200,
    slotsRefreshTimeout: 2000,
    redisOptions: perNode,
    ...cluster,
  });
}

/**
 * Closes a connection: QUIT while it is up (a clean goodbye), then
 * `disconnect()` in any case — in Sentinel mode only that closes the
 * connections to the sentinels that watch for a failover, whose reconnect
 * timers would otherwise keep the process alive.
 */
export async function closeRedis(client: RedisClient): Promise<void> {
  if (client.status === 'ready') await client.quit().catch(() => undefined);
  client.disconnect();
}

/** The target for logs and `switchboard check`, with no secret in it. */
export function describeTarget(target: RedisTarget): string {
  if (target.kind === 'single') return `Redis at ${maskUrl(target.url)}`;
  if (target.kind === 'cluster') return `Redis Cluster seeded by ${target.nodes.map((n) => `${n.host}:${n.port}`).join(', ')}`;
  return `Redis master "${target.master}" behind Sentinel ${target.sentinels.map((s) => `${s.host}:${s.port}`).join(', ')}`;
}
