/**
 * A Redis Cluster owned by a test: three masters and (unless told otherwise) three replicas
 * (`redis-server --cluster-enabled yes`, joined by `redis-cli --cluster
 * create … --cluster-replicas 1`), on free loopback ports, each stopped by its
 * PID, nothing written to disk but the nodes' own cluster files in a private
 * folder. A node is judged failed after a second (`cluster-node-timeout
 * 1000`); `killMaster` kills one as a crash would and waits for its replica
 * to take its slots over.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Cluster, Redis } from 'ioredis';
import { freePort } from './ports.js';
import { answers, askOnce, stopChild } from './redis.js';
import { pollUntil } from './wait.js';

interface Node {
  port: number;
  child: ChildProcess | undefined;
}

export interface ClusterOptions {
  /** `requirepass` and `masterauth` on every node. */
  password?: string;
  /** Replicas per master: 1 (the default, so a master can fail over) or 0 (three masters alone, as the bench runs them). */
  replicas?: 0 | 1;
  /** `cluster-require-full-coverage`: false lets the other masters serve their slots while one is down for good. @default true */
  fullCoverage?: boolean;
}

/** One master as `CLUSTER SHARDS` tells it: its port and its slot ranges. */
export interface MasterSlots {
  port: number;
  ranges: [number, number][];
}

export class RedisCluster {
  private readonly dir = mkdtempSync(join(tmpdir(), 'sb-cluster-'));
  private readonly nodes: Node[] = [];

  private constructor(private readonly options: ClusterOptions) {}

  /** `REDIS_CLUSTER_NODES` for the server: every node, as seeds. */
  get seeds(): string {
    return this.nodes.map((n) => `127.0.0.1:${n.port}`).join(',');
  }

  /** The server variables that point at this cluster. */
  get env(): Record<string, string> {
    return { REDIS_CLUSTER_NODES: this.seeds, ...(this.options.password ? { REDIS_PASSWORD: this.options.password } : {}) };
  }

  static async start(options: ClusterOptions = {}): Promise<RedisCluster> {
    for (const binary of ['redis-server', 'redis-cli']) {
      if (spawnSync('sh', ['-c', `command -v ${binary}`]).status !== 0) throw new Error(`${binary} is not installed: apt-get install -y redis-server`);
    }
    const cluster = new RedisCluster(options);
    try {
      const replicas = options.replicas ?? 1;
      for (let i = 0; i < 3 * (1 + replicas); i++) await cluster.startNode(await freePort());
      const auth = options.password ? ['-a', options.password, '--no-auth-warning'] : [];
      const create = spawnSync('redis-cli', [...auth, '--cluster', 'create', ...cluster.nodes.map((n) => `127.0.0.1:${n.port}`), '--cluster-replicas', String(replicas), '--cluster-yes'], {
        encoding: 'utf8',
        timeout: 30_000,
      });
      if (create.status !== 0) throw new Error(`redis-cli --cluster create failed: ${create.stdout}\n${create.stderr}`);
      await cluster.settled();
    } catch (err) {
      await cluster.stop();
      throw err;
    }
    return cluster;
  }

  /** A cluster client for a test's own reads and writes. */
  client(): Cluster {
    const client = new Cluster(
      this.nodes.filter((n) => n.child).map((n) => ({ host: '127.0.0.1', port: n.port })),
      { redisOptions: { ...(this.options.password ? { password: this.options.password } : {}), maxRetriesPerRequest: 1 }, clusterRetryStrategy: () => 200 },
    );
    client.on('error', () => undefined);
    return client;
  }

  /** The masters now and their slots, as a live node answers `CLUSTER SHARDS`. */
  async masters(): Promise<MasterSlots[]> {
    for (const node of this.nodes.filter((n) => n.child)) {
      const client = this.node(node.port);
      try {
        const shards = (await client.call('CLUSTER', 'SHARDS')) as unknown[][];
        const found: MasterSlots[] = [];
        for (const shard of shards) {
          const fields = pairs(shard);
          const slots = fields.get('slots') as number[];
          const master = (fields.get('nodes') as unknown[][]).map(pairs).find((n) => n.get('role') === 'master' && n.get('health') === 'online');
          if (!master || slots.length === 0) continue;
          const ranges: [number, number][] = [];
          for (let i = 0; i + 1 < slots.length; i += 2) ranges.push([Number(slots[i]), Number(slots[i + 1])]);
          found.push({ port: Number(master.get('port')), ranges });
        }
        return found;
      } catch {
        continue;
      } finally {
        client.disconnect();
      }
    }
    throw new Error('no cluster node answers');
  }

  /** The port of the master holding `slot`. */
  async masterOfSlot(slot: number): Promise<number> {
    const owner = (await this.masters()).find((m) => m.ranges.some(([a, b]) => slot >= a && slot <= b));
    if (!owner) throw new Error(`no master holds slot ${slot}`);
    return owner.port;
  }

  /** The hash slot of `key` (`CLUSTER KEYSLOT`). */
  async slotOf(key: string): Promise<number> {
    const live = this.nodes.find((n) => n.child);
    if (!live) throw new Error('no cluster node is running');
    const client = this.node(live.port);
    try {
      return Number(await client.call('CLUSTER', 'KEYSLOT', key));
    } finally {
      client.disconnect();
    }
  }

  /** How many keys each master holds (DBSIZE), by port. */
  async keysPerMaster(): Promise<Map<number, number>> {
    const counts = new Map<number, number>();
    for (const { port } of await this.masters()) {
      const client = this.node(port);
      try {
        counts.set(port, await client.dbsize());
      } finally {
        client.disconnect();
      }
    }
    return counts;
  }

  /** Kills the master on `port` (SIGKILL, as a crash) and resolves once its replica holds its slots and the cluster is whole again. */
  async killMaster(port: number): Promise<void> {
    const node = this.nodes.find((n) => n.port === port);
    if (!node) throw new Error(`no node on ${port}`);
    await stopNode(node, 'SIGKILL');
    await pollUntil(
      `a replica to take over the slots of ${port}`,
      async () => {
        const masters = await this.masters().catch(() => []);
        const slots = masters.reduce((sum, m) => sum + m.ranges.reduce((s, [a, b]) => s + b - a + 1, 0), 0);
        return masters.length === 3 && !masters.some((m) => m.port === port) && slots === 16384 && (await this.healthy());
      },
      20_000,
      100,
    );
  }

  /** Kills the master on `port` (SIGKILL) and resolves once another node marks it failed; with no replica, its slots stay unserved. */
  async killForGood(port: number): Promise<void> {
    const node = this.nodes.find((n) => n.port === port);
    if (!node) throw new Error(`no node on ${port}`);
    await stopNode(node, 'SIGKILL');
    const witness = this.nodes.find((n) => n.child)!;
    const failed = (nodes: unknown) => String(nodes).split('\n').some((line) => line.includes(`:${port}@`) && /[ ,]fail[ ,]/.test(line));
    await pollUntil(`the cluster to mark ${port} failed`, () => askOnce(this.node(witness.port), async (c) => failed(await c.call('CLUSTER', 'NODES')), false), 20_000, 100);
  }

  /** Starts every killed node again, from its own cluster file: it rejoins as a replica. */
  async restartKilled(): Promise<void> {
    for (const node of this.nodes.filter((n) => n.child === undefined)) await this.startNode(node.port, node);
    await this.settled();
  }

  async stop(): Promise<void> {
    await Promise.all(this.nodes.map((n) => stopNode(n, 'SIGTERM')));
    rmSync(this.dir, { recursive: true, force: true });
  }

  private node(port: number): Redis {
    const client = new Redis({ host: '127.0.0.1', port, maxRetriesPerRequest: 1, retryStrategy: () => null, ...(this.options.password ? { password: this.options.password } : {}) });
    client.on('error', () => undefined);
    return client;
  }

  /** Every live node says `cluster_state:ok`. */
  private async healthy(): Promise<boolean> {
    for (const node of this.nodes.filter((n) => n.child)) {
      if (!(await askOnce(this.node(node.port), async (c) => /cluster_state:ok/.test(String(await c.call('CLUSTER', 'INFO'))), false))) return false;
    }
    return true;
  }

  /** The cluster is whole: every node says ok, three masters hold all 16384 slots, each with a replica. */
  private async settled(): Promise<void> {
    await pollUntil(
      'the cluster to settle',
      async () => {
        if (!(await this.healthy())) return false;
        const masters = await this.masters().catch(() => []);
        if (masters.length !== 3) return false;
        // Three replicas whose link to their master is up: each can take over.
        let synced = 0;
        for (const node of this.nodes.filter((n) => n.child)) {
          const link = await askOnce(this.node(node.port), (c) => c.info('replication'), null);
          if (link === null) return false;
          if (/role:slave[\s\S]*master_link_status:up/.test(link)) synced++;
        }
        return synced === 3 * (this.options.replicas ?? 1);
      },
      30_000,
      100,
    );
  }

  private async startNode(port: number, node?: Node): Promise<void> {
    const auth = this.options.password ? ['--requirepass', this.options.password, '--masterauth', this.options.password] : [];
    const argv = [
      '--port', String(port),
      '--bind', '127.0.0.1',
      '--cluster-enabled', 'yes',
      '--cluster-config-file', `nodes-${port}.conf`,
      '--cluster-node-timeout', '1000',
      '--cluster-require-full-coverage', this.options.fullCoverage === false ? 'no' : 'yes',
      '--save', '',
      // A replica's first sync starts at once (Redis waits 5 s by default for more replicas to share it).
      '--repl-diskless-sync-delay', '0',
      '--appendonly', 'no',
      '--dir', this.dir,
      '--dbfilename', `dump-${port}.rdb`,
      ...auth,
    ];
    const child = spawn('redis-server', argv, { stdio: 'ignore' });
    if (node) node.child = child;
    else this.nodes.push({ port, child });
    const url = `redis://${this.options.password ? `:${encodeURIComponent(this.options.password)}@` : ''}127.0.0.1:${port}`;
    await pollUntil(`redis-server on ${port} to answer`, () => answers(url), 10_000, 50);
  }
}

/** A RESP3-less map reply (`[name, value, name, value, …]`) as a Map. */
function pairs(list: unknown[]): Map<string, unknown> {
  const map = new Map<string, unknown>();
  for (let i = 0; i + 1 < list.length; i += 2) map.set(String(list[i]), list[i + 1]);
  return map;
}

async function stopNode(node: Node, signal: NodeJS.Signals): Promise<void> {
  const child = node.child;
  node.child = undefined;
  await stopChild(child, signal);
}
