/**
 * A Redis for Redis mode (see `findRedis`), and a Redis Cluster of three
 * masters for its cluster target (`startCluster`).
 */
import { spawnSync, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { Redis } from 'ioredis';
import { answers, dropPrefix } from '../../test/support/redis.js';
import { RedisCluster } from '../../test/support/redis-cluster.js';
import { freePort, spawnPinned } from './processes.js';

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
 * have CPU 1 to themselves as memory mode's server has; else, with no
 * redis-server installed, the one on 127.0.0.1:6379 when it answers.
 */
export async function findRedis(preferred: string | null): Promise<RedisHandle | { reason: string }> {
  if (preferred) return (await answers(preferred)) ? sharedRedisAt(preferred) : { reason: `${preferred} does not answer` };
  const installed = spawnSync('sh', ['-c', 'command -v redis-server'], { stdio: 'ignore' }).status === 0;
  if (installed) {
    const owned = await startOwnedRedis();
    if (owned) return owned;
  }
  const fallback = 'redis://127.0.0.1:6379';
  if (await answers(fallback)) return sharedRedisAt(fallback);
  return { reason: installed ? 'redis-server did not start and nothing answers on 127.0.0.1:6379' : 'redis-server is not installed and nothing answers on 127.0.0.1:6379' };
}

/** A Redis that others may use too: a fresh random key prefix, deleted afterwards. */
function sharedRedisAt(url: string): RedisHandle {
  const prefix = `sbbench:${randomBytes(6).toString('hex')}:`;
  const reader = statsReader(url);
  return {
    url,
    prefix,
    source: 'shared',
    stats: reader.stats,
    async release() {
      reader.close();
      await dropPrefix(url, prefix).catch(() => undefined);
    },
  };
}

/** `redis-server --save ''` on a free port, unpinned itself (it inherits the bench's CPU); null when it does not start. */
async function startOwnedRedis(): Promise<RedisHandle | null> {
  const port = await freePort();
  const child: ChildProcess = spawnPinned(null, 'redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], {
    stdio: 'ignore',
  });
  const ownUrl = `redis://127.0.0.1:${port}`;
  const deadline = Date.now() + 10_000;
  while (!(await answers(ownUrl))) {
    if (Date.now() > deadline || child.exitCode !== null) {
      child.kill('SIGKILL');
      return null;
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  const reader = statsReader(ownUrl);
  return {
    url: ownUrl,
    prefix: `sbbench:${randomBytes(6).toString('hex')}:`,
    source: 'owned',
    stats: reader.stats,
    async release() {
      reader.close();
      if (child.exitCode !== null) return;
      const exited = once(child, 'exit');
      child.kill('SIGTERM');
      await exited;
    },
  };
}
