/**
 * A Redis for Redis mode (see `findRedis`), and a Redis Cluster of three
 * masters for its cluster target (`startCluster`).
 */
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { Redis } from 'ioredis';
import { answers, dropPrefix, OwnedRedis } from '../../test/support/redis.js';
import { RedisCluster } from '../../test/support/redis-cluster.js';

export interface RedisStats {
  /** used_cpu_user + used_cpu_sys of the redis-server, ms. */
  cpuMs: number;
  /** total_commands_processed. */
  commands: number;
  /** Calls by command name (INFO commandstats). */
  byCommand: Record<string, number>;
}

export interface RedisHandle {
  url: string;
  prefix: string;
  /** `shared` (already running) or `owned` (started by the bench). */
  source: 'shared' | 'owned';
  /** The server's own counters (INFO): on a shared Redis they include every other client too. */
  stats(): Promise<RedisStats | null>;
  release(): Promise<void>;
}

/** One Redis server's counters, from INFO. */
async function statsOf(client: Redis): Promise<RedisStats> {
  const info = await client.info('everything');
  const field = (name: string) => Number(new RegExp(`^${name}:([\\d.]+)`, 'm').exec(info)?.[1] ?? NaN);
  const byCommand: Record<string, number> = {};
  for (const m of info.matchAll(/^cmdstat_([^:]+):calls=(\d+)/gm)) byCommand[m[1]!] = Number(m[2]);
  return { cpuMs: (field('used_cpu_user') + field('used_cpu_sys')) * 1000, commands: field('total_commands_processed'), byCommand };
}

/** The counters of every server at `urls`, summed (one Redis, or a cluster's masters). */
function statsReader(...urls: string[]): { stats(): Promise<RedisStats | null>; close(): void } {
  const clients = urls.map((url) => {
    const client = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 1 });
    client.on('error', () => undefined);
    return client;
  });
  return {
    async stats() {
      try {
        const all = await Promise.all(clients.map(statsOf));
        const byCommand: Record<string, number> = {};
        for (const s of all) for (const [name, n] of Object.entries(s.byCommand)) byCommand[name] = (byCommand[name] ?? 0) + n;
        return { cpuMs: all.reduce((sum, s) => sum + s.cpuMs, 0), commands: all.reduce((sum, s) => sum + s.commands, 0), byCommand };
      } catch {
        return null;
      }
    },
    close: () => clients.forEach((c) => c.disconnect()),
  };
}

/** A Redis Cluster the bench owns: three masters, no replicas (one Redis has none either), its counters summed over the masters. */
export interface ClusterHandle extends RedisHandle {
  /** The server variables that reach it (with `prefix`). */
  env: Record<string, string>;
}

export async function startCluster(): Promise<ClusterHandle | { reason: string }> {
  if (spawnSync('sh', ['-c', 'command -v redis-server && command -v redis-cli'], { stdio: 'ignore' }).status !== 0) {
    return { reason: 'redis-server or redis-cli is not installed' };
  }
  let cluster: RedisCluster;
  try {
    cluster = await RedisCluster.start({ replicas: 0 });
  } catch (err) {
    return { reason: `the cluster did not start: ${err instanceof Error ? err.message : String(err)}` };
  }
  const prefix = `sbbench:${randomBytes(6).toString('hex')}:`;
  const reader = statsReader(...(await cluster.masters()).map((m) => `redis://127.0.0.1:${m.port}`));
  return {
    url: cluster.seeds,
    prefix,
    source: 'owned',
    env: { ...cluster.env, REDIS_PREFIX: prefix },
    stats: reader.stats,
    async release() {
      reader.close();
      await cluster.stop();
    },
  };
}

/**
 * The Redis of Redis mode: `preferred` (--redis-url) when given; else a
 * private `redis-server` the bench starts, which runs where the generator
 * runs (CPU 0 when pinned), as the cluster's masters do, so that the nodes
 * have CPU 1 to themselves as memory mode's server has; else the one on
 * 127.0.0.1:6379 when it answers.
 */
export async function findRedis(preferred: string | null): Promise<RedisHandle | { reason: string }> {
  if (preferred) return (await answers(preferred)) ? handleOf(preferred) : { reason: `${preferred} does not answer` };
  let notStarted: string;
  try {
    const owned = await OwnedRedis.start({ persist: false });
    return handleOf(owned.url, () => owned.destroy());
  } catch (err) {
    notStarted = err instanceof Error ? err.message : String(err);
  }
  const fallback = 'redis://127.0.0.1:6379';
  if (await answers(fallback)) return handleOf(fallback);
  return { reason: `${notStarted}, and nothing answers on 127.0.0.1:6379` };
}

/**
 * The Redis at `url` under a fresh random key prefix: with `stop`, one the
 * bench started, stopped afterwards; else one others may use too, whose
 * keys under the prefix are deleted afterwards.
 */
function handleOf(url: string, stop?: () => Promise<void>): RedisHandle {
  const prefix = `sbbench:${randomBytes(6).toString('hex')}:`;
  const reader = statsReader(url);
  return {
    url,
    prefix,
    source: stop ? 'owned' : 'shared',
    stats: reader.stats,
    async release() {
      reader.close();
      if (stop) await stop();
      else await dropPrefix(url, prefix).catch(() => undefined);
    },
  };
}
