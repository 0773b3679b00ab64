/**
 * Multi-process harness: real server processes on free ports sharing a real
 * Redis, each test with a fresh key prefix; a test-owned `redis-server` on a
 * free port when a test needs to stop or restart Redis.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { once } from 'node:events';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { Redis } from 'ioredis';
import { TEST_SECRET } from '../helpers.js';

const MAIN = new URL('../../src/main.ts', import.meta.url).pathname;

export async function freePort(): Promise<number> {
  const srv = createServer();
  srv.listen(0, '127.0.0.1');
  await once(srv, 'listening');
  const { port } = srv.address() as { port: number };
  srv.close();
  await once(srv, 'close');
  return port;
}

async function answers(url: string): Promise<boolean> {
  const client = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 0, connectTimeout: 500, retryStrategy: () => null });
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

/** A redis-server owned by the test: can be stopped and restarted; with AOF so a restart keeps state. */
export class OwnedRedis {
  private child: ChildProcess | undefined;
  private readonly dir = mkdtempSync(join(tmpdir(), 'sb-redis-'));
  constructor(readonly port: number) {}
  get url(): string {
    return `redis://127.0.0.1:${this.port}`;
  }

  static async start(): Promise<OwnedRedis> {
    const which = spawnSync('sh', ['-c', 'command -v redis-server']);
    if (which.status !== 0) throw new Error('redis-server is not installed: apt-get install -y redis-server');
    const redis = new OwnedRedis(await freePort());
    await redis.resume();
    return redis;
  }

  async resume(): Promise<void> {
    this.child = spawn(
      'redis-server',
      ['--port', String(this.port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'yes', '--appendfsync', 'always', '--dir', this.dir],
      { stdio: 'ignore' },
    );
    const deadline = Date.now() + 10_000;
    while (!(await answers(this.url))) {
      if (Date.now() > deadline) throw new Error('redis-server did not start');
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  async stop(): Promise<void> {
    if (!this.child || this.child.exitCode !== null) return;
    const exited = once(this.child, 'exit');
    this.child.kill('SIGTERM');
    await exited;
  }

  async destroy(): Promise<void> {
    await this.stop();
    rmSync(this.dir, { recursive: true, force: true });
  }
}

/** The shared Redis for tests: REDIS_URL, else 127.0.0.1:6379 when it answers, else a private one. */
export async function sharedRedis(): Promise<{ url: string; release(): Promise<void> }> {
  const candidates = [process.env.REDIS_URL, 'redis://127.0.0.1:6379'].filter((u): u is string => !!u);
  for (const url of candidates) if (await answers(url)) return { url, release: async () => undefined };
  const owned = await OwnedRedis.start();
  return { url: owned.url, release: () => owned.destroy() };
}

/** Deletes every key under `prefix`. */
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

export function freshPrefix(): string {
  return `sbtest:${randomUUID().slice(0, 8)}:`;
}

export interface NodeProcess {
  readonly id: string;
  readonly url: string;
  readonly child: ChildProcess;
  /** Every log line the node printed, parsed. */
  readonly logs: Record<string, unknown>[];
  kill(signal?: NodeJS.Signals): Promise<void>;
}

/** Starts one server process (`src/main.ts`) and waits until it listens. */
export async function startNode(env: Record<string, string>): Promise<NodeProcess> {
  const id = env.NODE_ID ?? `node-${randomUUID().slice(0, 6)}`;
  const child = spawn(process.execPath, ['--conditions=source', '--import', 'tsx', MAIN], {
    env: {
      PATH: process.env.PATH ?? '',
      HOST: '127.0.0.1',
      PORT: '0',
      JWT_SECRET: TEST_SECRET,
      LOG_LEVEL: 'info',
      NODE_ID: id,
      ...env,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stderr = '';
  child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
  const logs: Record<string, unknown>[] = [];
  const lines = createInterface({ input: child.stdout! });
  const port = await new Promise<number>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`node ${id} did not start: ${stderr}`)), 20_000);
    child.once('exit', (code) => reject(new Error(`node ${id} exited with ${code}: ${stderr}`)));
    lines.on('line', (line) => {
      let entry: Record<string, unknown>;
      try {
        entry = JSON.parse(line) as Record<string, unknown>;
      } catch {
        entry = { msg: line };
      }
      logs.push(entry);
      if (entry.msg === 'switchboard listening') {
        clearTimeout(timer);
        resolve(entry.port as number);
      }
    });
  });
  return {
    id,
    url: `http://127.0.0.1:${port}`,
    child,
    logs,
    async kill(signal: NodeJS.Signals = 'SIGTERM') {
      if (child.exitCode !== null || child.signalCode !== null) return;
      const exited = once(child, 'exit');
      child.kill(signal);
      await exited;
    },
  };
}
