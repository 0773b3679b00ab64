/**
 * Measures what a node's reconcile costs (`Sessions.reconcile`, every
 * `NODE_TIMEOUT_MS`/2 in Redis mode): the store reads it makes for a node
 * holding `sessions` live sessions, all of them with their socket here, as in
 * a healthy node. Those are `sessionsOfNode` (each key group's set of this
 * node's sessions, less those with a socket here) and `notOnNode` (which of
 * the sockets here the store no longer holds), exactly as reconcile calls them.
 *
 * Usage: node --conditions=source --import tsx scripts/reconcile-cost.ts [sessions=10000] [rounds=20] [tenants=16] [--cluster]
 * Uses REDIS_URL or redis://127.0.0.1:6379 under a fresh prefix it deletes
 * afterwards; with `--cluster`, a Redis Cluster of three masters it starts and
 * stops. Reports, per reconcile: this process's CPU, Redis's CPU (the
 * `used_cpu_*` deltas of INFO, summed over the masters), the commands sent and
 * the wall time, as medians over the rounds.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { Redis } from 'ioredis';
import type { SessionId, UserId } from '@switchboard/protocol';
import { sessionIdPrefix } from '../packages/server/src/store/redis-keys.js';
import { failFastOptions, RedisStore } from '../packages/server/src/store/redis-store.js';
import { closeRedis, openRedis, type RedisTarget } from '../packages/server/src/store/redis-target.js';
import { RedisCluster } from '../test/support/redis-cluster.js';
import { recordCommands } from '../test/support/redis.js';

const args = process.argv.slice(2).filter((a) => a !== '--cluster');
const onCluster = process.argv.includes('--cluster');
const sessions = Number(args[0] ?? 10_000);
const rounds = Number(args[1] ?? 20);
const tenants = Number(args[2] ?? 16);
for (const [name, value] of [['sessions', sessions], ['rounds', rounds], ['tenants', tenants]] as const) {
  if (!Number.isInteger(value) || value < 1) {
    console.error(`${name} must be a positive integer, got ${String(value)}`);
    process.exit(64);
  }
}

const NODE = 'node-reconcile';
const prefix = `sbrec:${randomUUID().slice(0, 8)}:`;
const cluster = onCluster ? await RedisCluster.start({ replicas: 0 }) : null;
const url = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';
const admins = cluster ? (await cluster.masters()).map((m) => new Redis(m.port)) : [new Redis(url)];
const target: RedisTarget = cluster
  ? { kind: 'cluster', nodes: cluster.seeds.split(',').map((s) => ({ host: '127.0.0.1', port: Number(s.split(':')[1]) })) }
  : { kind: 'single', url };
// The connection a node opens, passed in so that its commands can be counted.
const client = openRedis(target, failFastOptions());
const store = new RedisStore({ client, prefix });

/** Seconds of CPU the Redis servers have used, user and system, summed over the masters. */
async function redisCpuSeconds(): Promise<number> {
  let sum = 0;
  for (const admin of admins) {
    const info = await admin.info('cpu');
    sum += Number(/used_cpu_sys:([\d.]+)/.exec(info)![1]) + Number(/used_cpu_user:([\d.]+)/.exec(info)![1]);
  }
  return sum;
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

try {
  const ids: SessionId[] = [];
  const now = Date.now();
  process.stderr.write(`writing ${sessions} sessions of node ${NODE} (${tenants} tenants) under ${prefix} …\n`);
  for (let i = 0; i < sessions; i += 500) {
    await Promise.all(
      Array.from({ length: Math.min(500, sessions - i) }, (_, j) => {
        const tenant = `tenant-${(i + j) % tenants}`;
        const id = `${sessionIdPrefix(tenant)}${randomBytes(18).toString('base64url')}` as SessionId;
        ids.push(id);
        return store.addSession({
          id,
          tenant,
          userId: `user-${i + j}` as UserId,
          name: `User ${i + j}`,
          contacts: null,
          nodeId: NODE,
          connected: true,
          graceUntil: null,
          resumes: 0,
          resumeWindowStart: now,
          createdAt: now,
        });
      }),
    );
    if ((i / 500) % 4 === 3) process.stderr.write(`  ${Math.min(i + 500, sessions)} / ${sessions}\n`);
  }

  const sent = recordCommands(client);
  const cpuMs: number[] = [];
  const redisMs: number[] = [];
  const wallMs: number[] = [];
  const commands: number[] = [];
  for (let round = 0; round <= rounds; round++) {
    sent.length = 0;
    const redisBefore = await redisCpuSeconds();
    const cpuBefore = process.cpuUsage();
    const started = performance.now();
    // What reconcile does on a healthy node: every session has its socket here.
    const here = new Set(ids);
    const orphans = (await store.sessionsOfNode(NODE, here)).filter((s) => s.connected);
    const lost = await store.notOnNode(NODE, [...here]);
    const wall = performance.now() - started;
    const cpu = process.cpuUsage(cpuBefore);
    const redis = (await redisCpuSeconds()) - redisBefore;
    if (orphans.length !== 0 || lost.length !== 0) throw new Error(`a healthy node found ${orphans.length} orphans and ${lost.length} lost sessions`);
    if (round === 0) continue; // warm-up: the scripts loaded, the code compiled
    cpuMs.push((cpu.user + cpu.system) / 1000);
    redisMs.push(redis * 1000);
    wallMs.push(wall);
    commands.push(sent.length);
    process.stderr.write(`  round ${round}/${rounds}: ${cpuMs.at(-1)!.toFixed(2)} ms node CPU, ${redisMs.at(-1)!.toFixed(2)} ms Redis CPU, ${sent.length} commands\n`);
  }
  const result = {
    topology: cluster ? 'cluster (3 masters)' : 'one Redis',
    sessions,
    tenants,
    rounds,
    nodeCpuMsPerReconcile: Number(median(cpuMs).toFixed(2)),
    redisCpuMsPerReconcile: Number(median(redisMs).toFixed(2)),
    wallMsPerReconcile: Number(median(wallMs).toFixed(2)),
    commandsPerReconcile: median(commands),
  };
  console.log(JSON.stringify(result));
  console.log(
    `${result.topology}, ${sessions} sessions on the node: a reconcile takes ${result.nodeCpuMsPerReconcile} ms of node CPU and ${result.redisCpuMsPerReconcile} ms of Redis CPU ` +
      `(${result.commandsPerReconcile} commands, ${result.wallMsPerReconcile} ms), every NODE_TIMEOUT_MS/2 (5 s by default): ` +
      `${((result.nodeCpuMsPerReconcile / 5000) * 100).toFixed(3)}% of a node's core, ${((result.redisCpuMsPerReconcile / 5000) * 100).toFixed(3)}% of Redis's`,
  );
} finally {
  for (const admin of admins) {
    let cursor = '0';
    do {
      const [next, keys] = await admin.scan(cursor, 'MATCH', `${prefix}*`, 'COUNT', 1000);
      cursor = next;
      // One key a command: on a cluster, one master's keys are in many slots.
      for (const key of keys) await admin.del(key);
    } while (cursor !== '0');
  }
  await store.close();
  await closeRedis(client);
  admins.forEach((a) => a.disconnect());
  await cluster?.stop();
}
