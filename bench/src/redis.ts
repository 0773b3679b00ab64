/**
 * A Redis for Redis mode: the one on 127.0.0.1:6379 (or --redis-url) when it
 * answers, with a fresh random key prefix deleted afterwards; else a private
 * `redis-server --save ''` on a free port; else none (the mode is skipped).
 */
import { spawnSync, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { Redis } from 'ioredis';
import { answers, dropPrefix } from '../../test/support/redis.js';
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

function statsReader(url: string): { stats(): Promise<RedisStats | null>; close(): void } {
  const client = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 1 });
  client.on('error', () => undefined);
  return {
    async stats() {
      try {
        const info = await client.info('everything');
        const field = (name: string) => Number(new RegExp(`^${name}:([\\d.]+)`, 'm').exec(info)?.[1] ?? NaN);
        const byCommand: Record<string, number> = {};
        for (const m of info.matchAll(/^cmdstat_([^:]+):calls=(\d+)/gm)) byCommand[m[1]!] = Number(m[2]);
        return { cpuMs: (field('used_cpu_user') + field('used_cpu_sys')) * 1000, commands: field('total_commands_processed'), byCommand };
      } catch {
        return null;
      }
    },
    close: () => client.disconnect(),
  };
}

export async function findRedis(preferred: string | null): Promise<RedisHandle | { reason: string }> {
  const prefix = `sbbench:${randomBytes(6).toString('hex')}:`;
  const url = preferred ?? 'redis://127.0.0.1:6379';
  if (await answers(url)) {
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
  if (preferred) return { reason: `${preferred} does not answer` };
  if (spawnSync('sh', ['-c', 'command -v redis-server'], { stdio: 'ignore' }).status !== 0) {
    return { reason: 'no Redis answers on 127.0.0.1:6379 and redis-server is not installed' };
  }
  const port = await freePort();
  const child: ChildProcess = spawnPinned(null, 'redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], {
    stdio: 'ignore',
  });
  const ownUrl = `redis://127.0.0.1:${port}`;
  const deadline = Date.now() + 10_000;
  while (!(await answers(ownUrl))) {
    if (Date.now() > deadline || child.exitCode !== null) {
      child.kill('SIGKILL');
      return { reason: 'redis-server did not start' };
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  const reader = statsReader(ownUrl);
  return {
    url: ownUrl,
    prefix,
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
