/**
 * A Redis behind Sentinel, owned by a test: a master and a replica
 * (`redis-server`) and three sentinels (Debian's `redis-sentinel`), all on
 * free loopback ports, each stopped by its PID. Sentinels notice a dead
 * master after a second (`down-after-milliseconds 1000`) and promote the
 * replica; `killMaster` kills it as a crash would and waits for that.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { freePort } from './ports.js';
import { answers, askOnce, stopChild } from './redis.js';
import { pollUntil } from './wait.js';

export const SENTINEL_MASTER = 'sbmaster';

interface Member {
  port: number;
  child: ChildProcess | undefined;
}

export interface SentinelGroupOptions {
  /** `requirepass` on the data nodes (and `masterauth`); with `sentinelAuth`, on the sentinels too. */
  password?: string;
  sentinelAuth?: boolean;
}

export class SentinelGroup {
  private readonly dir = mkdtempSync(join(tmpdir(), 'sb-sentinel-'));
  private readonly data: Member[] = [];
  private readonly sentinels: Member[] = [];

  private constructor(private readonly options: SentinelGroupOptions) {}

  /** `REDIS_SENTINELS` for the server. */
  get sentinelList(): string {
    return this.sentinels.map((s) => `127.0.0.1:${s.port}`).join(',');
  }

  /** The server variables that point at this group. */
  get env(): Record<string, string> {
    return {
      REDIS_SENTINELS: this.sentinelList,
      REDIS_SENTINEL_MASTER: SENTINEL_MASTER,
      ...(this.options.password ? { REDIS_PASSWORD: this.options.password } : {}),
    };
  }

  static async start(options: SentinelGroupOptions = {}): Promise<SentinelGroup> {
    for (const binary of ['redis-server', 'redis-sentinel']) {
      if (spawnSync('sh', ['-c', `command -v ${binary}`]).status !== 0) throw new Error(`${binary} is not installed: apt-get install -y redis-server redis-sentinel`);
    }
    const group = new SentinelGroup(options);
    try {
      const [master, replica] = [await freePort(), await freePort()];
      await group.startData(master, null);
      await group.startData(replica, master);
      for (let i = 0; i < 3; i++) await group.startSentinel(await freePort(), master);
      await group.settled(master);
    } catch (err) {
      await group.stop();
      throw err;
    }
    return group;
  }

  /** The master's port, as the sentinels see it now. */
  async masterPort(): Promise<number> {
    const sentinel = this.client(this.sentinels[0]!.port, this.options.sentinelAuth);
    try {
      const found = (await sentinel.call('SENTINEL', 'get-master-addr-by-name', SENTINEL_MASTER)) as [string, string];
      return Number(found[1]);
    } finally {
      sentinel.disconnect();
    }
  }

  /** A client of the current master (for a test's own reads). */
  async master(): Promise<Redis> {
    return this.client(await this.masterPort(), true);
  }

  /** Kills the master (SIGKILL, as a crash) and resolves once the sentinels have promoted the replica, with the new master's port. */
  async killMaster(): Promise<number> {
    const old = await this.masterPort();
    const member = this.data.find((m) => m.port === old)!;
    await stop(member, 'SIGKILL');
    return (await pollUntil(
      'the sentinels to promote the replica',
      async () => {
        const port = await this.masterPort().catch(() => old);
        if (port === old) return null;
        const client = this.client(port, true);
        try {
          return /role:master/.test(await client.info('replication')) ? port : null;
        } finally {
          client.disconnect();
        }
      },
      20_000,
      100,
    ))!;
  }

  /** Starts the killed old master again: the sentinels make it a replica of the new one. */
  async restartOld(): Promise<void> {
    const dead = this.data.find((m) => m.child === undefined);
    if (dead) await this.startData(dead.port, await this.masterPort(), dead);
  }

  async stop(): Promise<void> {
    await Promise.all([...this.sentinels, ...this.data].map((m) => stop(m, 'SIGTERM')));
    rmSync(this.dir, { recursive: true, force: true });
  }

  private client(port: number, auth = false): Redis {
    const client = new Redis({
      host: '127.0.0.1',
      port,
      lazyConnect: false,
      maxRetriesPerRequest: 1,
      retryStrategy: () => null,
      ...(auth && this.options.password ? { password: this.options.password } : {}),
    });
    client.on('error', () => undefined);
    return client;
  }

  private async startData(port: number, replicaOf: number | null, member?: Member): Promise<void> {
    const auth = this.options.password ? ['--requirepass', this.options.password, '--masterauth', this.options.password] : [];
    // A replica's first sync starts at once (Redis waits 5 s by default for more replicas to share it).
    const argv = ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--repl-diskless-sync-delay', '0', '--dir', this.dir, '--dbfilename', `dump-${port}.rdb`, ...auth];
    if (replicaOf !== null) argv.push('--replicaof', '127.0.0.1', String(replicaOf));
    const child = spawn('redis-server', argv, { stdio: 'ignore' });
    if (member) member.child = child;
    else this.data.push({ port, child });
    const url = `redis://${this.options.password ? `:${encodeURIComponent(this.options.password)}@` : ''}127.0.0.1:${port}`;
    await pollUntil(`redis-server on ${port} to answer`, () => answers(url), 10_000, 50);
  }

  private async startSentinel(port: number, master: number): Promise<void> {
    const file = join(this.dir, `sentinel-${port}.conf`);
    const lines = [
      `port ${port}`,
      'bind 127.0.0.1',
      `dir ${this.dir}`,
      `sentinel monitor ${SENTINEL_MASTER} 127.0.0.1 ${master} 2`,
      `sentinel down-after-milliseconds ${SENTINEL_MASTER} 1000`,
      `sentinel failover-timeout ${SENTINEL_MASTER} 5000`,
      `sentinel parallel-syncs ${SENTINEL_MASTER} 1`,
    ];
    if (this.options.password) lines.push(`sentinel auth-pass ${SENTINEL_MASTER} ${this.options.password}`);
    if (this.options.password && this.options.sentinelAuth) lines.push(`requirepass ${this.options.password}`, `sentinel sentinel-pass ${this.options.password}`);
    writeFileSync(file, lines.join('\n') + '\n');
    const child = spawn('redis-sentinel', [file], { stdio: 'ignore' });
    this.sentinels.push({ port, child });
    await pollUntil(`sentinel on ${port} to answer`, async () => {
      const client = this.client(port, this.options.sentinelAuth);
      try {
        return (await client.ping()) === 'PONG';
      } catch {
        return false;
      } finally {
        client.disconnect();
      }
    }, 10_000, 50);
  }

  /**
   * The replica has synced (its link to the master is up: it holds what the
   * master holds), every sentinel knows the replica and the other two
   * sentinels, and a quorum is reachable: a failover can happen and lose only
   * the last moment's writes.
   */
  private async settled(master: number): Promise<void> {
    const replica = this.data.find((m) => m.port !== master)!;
    const synced = () => askOnce(this.client(replica.port, true), async (c) => /master_link_status:up/.test(await c.info('replication')), false);
    await pollUntil('the replica to sync', synced, 20_000, 100);
    await pollUntil(
      'the sentinels to find the replica and each other',
      async () => {
        for (const { port } of this.sentinels) {
          const client = this.client(port, this.options.sentinelAuth);
          try {
            const replicas = (await client.call('SENTINEL', 'replicas', SENTINEL_MASTER)) as unknown[];
            const peers = (await client.call('SENTINEL', 'sentinels', SENTINEL_MASTER)) as unknown[];
            const [, at] = (await client.call('SENTINEL', 'get-master-addr-by-name', SENTINEL_MASTER)) as [string, string];
            if (replicas.length < 1 || peers.length < 2 || Number(at) !== master) return false;
          } catch {
            return false;
          } finally {
            client.disconnect();
          }
        }
        return true;
      },
      20_000,
      200,
    );
  }
}

async function stop(member: Member, signal: NodeJS.Signals): Promise<void> {
  const child = member.child;
  member.child = undefined;
  await stopChild(child, signal);
}
