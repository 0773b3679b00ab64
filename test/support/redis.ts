/**
 * Real Redis for tests: the shared one (REDIS_URL, else 127.0.0.1:6379 when it
 * answers, else one of the test's own), a fresh key prefix per test and its
 * clean-up, and a `redis-server` a test owns — on a free port, stopped by its
 * PID, restarted on the same port, with or without persistence.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { once } from 'node:events';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis, type Cluster, type Command } from 'ioredis';
import { freePort } from './ports.js';
import { pollUntil } from './wait.js';

/** Whether a Redis answers PING at `url` (within half a second). */
export async function answers(url: string): Promise<boolean> {
  const client = new Redis(url, { lazyConnect: true, enableOfflineQueue: false, maxRetriesPerRequest: 0, connectTimeout: 500, retryStrategy: () => null });
  client.on('error', () => undefined);
  try {
    await client.connect();
    return (await client.ping()) === 'PONG';
  } catch {
    return false;
  } finally {
    client.disconnect();
  }
}

export interface OwnedRedisOptions {
  /** Keep the data across a restart (AOF, fsync always). @default true */
  persist?: boolean;
}

/** A redis-server owned by the test: stopped by its PID (a crash with SIGKILL), restarted on the same port. */
export class OwnedRedis {
  private child: ChildProcess | undefined;
  private readonly dir = mkdtempSync(join(tmpdir(), 'sb-redis-'));

  private constructor(
    readonly port: number,
    private readonly persist: boolean,
  ) {}

  get url(): string {
    return `redis://127.0.0.1:${this.port}`;
  }

  static async start(options: OwnedRedisOptions = {}): Promise<OwnedRedis> {
    if (spawnSync('sh', ['-c', 'command -v redis-server']).status !== 0) {
      throw new Error('redis-server is not installed: apt-get install -y redis-server');
    }
    const redis = new OwnedRedis(await freePort(), options.persist ?? true);
    await redis.resume();
    return redis;
  }

  /** Starts the server (again, on the same port); resolves once it answers. */
  async resume(): Promise<void> {
    const persistence = this.persist ? ['--appendonly', 'yes', '--appendfsync', 'always'] : ['--appendonly', 'no'];
    this.child = spawn('redis-server', ['--port', String(this.port), '--bind', '127.0.0.1', '--save', '', ...persistence, '--dir', this.dir], { stdio: 'ignore' });
    await pollUntil(`redis-server on port ${this.port} to answer`, () => answers(this.url), 10_000, 50);
  }

  /** Stops the server (SIGTERM, or SIGKILL as a crash would) and waits for it to be gone. */
  async stop(signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
    const child = this.child;
    this.child = undefined;
    await stopChild(child, signal);
  }

  async destroy(): Promise<void> {
    await this.stop();
    rmSync(this.dir, { recursive: true, force: true });
  }
}

/**
 * The shared Redis: REDIS_URL (which must answer), else 127.0.0.1:6379 when
 * it answers, else a private one, stopped by `release`.
 */
export async function sharedRedis(): Promise<{ url: string; release(): Promise<void> }> {
  const fromEnv = process.env.REDIS_URL;
  if (fromEnv) {
    if (!(await answers(fromEnv))) throw new Error(`REDIS_URL=${fromEnv} does not answer`);
    return { url: fromEnv, release: async () => undefined };
  }
  if (await answers('redis://127.0.0.1:6379')) return { url: 'redis://127.0.0.1:6379', release: async () => undefined };
  const owned = await OwnedRedis.start({ persist: false });
  return { url: owned.url, release: () => owned.destroy() };
}

/** A key prefix no other test uses. */
/** The name of every command `client` sends from now on, lower case, in order (a test's count of round trips). */
export function recordCommands(client: Redis | Cluster): string[] {
  const sent: string[] = [];
  const send = client.sendCommand.bind(client) as (command: Command, ...rest: unknown[]) => unknown;
  Object.assign(client, {
    sendCommand: (command: Command, ...rest: unknown[]) => {
      sent.push(command.name.toLowerCase());
      return send(command, ...rest);
    },
  });
  return sent;
}

export function freshPrefix(): string {
  return `sbtest:${randomUUID().slice(0, 8)}:`;
}

/** Deletes every key under `prefix` (never FLUSHALL: the Redis may be shared). */
export async function dropPrefix(url: string, prefix: string): Promise<void> {
  const client = new Redis(url, { maxRetriesPerRequest: 1 });
  try {
    let cursor = '0';
    do {
      const [next, keys] = await client.scan(cursor, 'MATCH', `${prefix}*`, 'COUNT', 500);
      cursor = next;
      if (keys.length > 0) await client.del(...keys);
    } while (cursor !== '0');
  } finally {
    client.disconnect();
  }
}

/** Stops a process a test started (by its PID, with `signal`) and waits for it to be gone; nothing when it already is. */
export async function stopChild(child: ChildProcess | undefined, signal: NodeJS.Signals): Promise<void> {
  if (!child || child.exitCode !== null || child.signalCode !== null) return;
  const exited = once(child, 'exit');
  child.kill(signal);
  await exited;
}

/** Asks a one-off `client` one question and disconnects it; `fallback` when it does not answer. */
export async function askOnce<T>(client: Redis, question: (client: Redis) => Promise<T>, fallback: T): Promise<T> {
  try {
    return await question(client);
  } catch {
    return fallback;
  } finally {
    client.disconnect();
  }
}
