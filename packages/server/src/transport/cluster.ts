/**
 * Cross-node delivery in Redis mode: Socket.IO's official sharded Redis
 * adapter (Redis 7 sharded pub/sub). With `subscriptionMode: "dynamic"` every
 * room gets its own channel, subscribed only by the nodes that hold a socket in
 * it — so an emit to one session's room reaches one node, not all of them,
 * which is what one-to-one call traffic wants.
 */
import { createShardedAdapter } from '@socket.io/redis-adapter';
import { Redis } from 'ioredis';
import type { SessionId } from '@switchboard/protocol';
import type { Logger } from '../logger.js';
import type { Deps } from './context.js';

export interface ClusterAdapter {
  adapter: ReturnType<typeof createShardedAdapter>;
  /** Both pub/sub connections are up (after a reconnect, the sub connection has re-sent its subscriptions). */
  ready(): boolean;
  close(): Promise<void>;
}

export async function createClusterAdapter(redisUrl: string, prefix: string, logger: Logger): Promise<ClusterAdapter> {
  // Unlike the store's client, these keep an offline queue: a publish made
  // during a short outage goes out when Redis is back instead of failing.
  // Publishes made in the same tick go out in one write.
  const pub = new Redis(redisUrl, {
    lazyConnect: true,
    maxRetriesPerRequest: null,
    enableAutoPipelining: true,
    // Back within a second of Redis, like the store's connection (ioredis would wait up to 2 s).
    retryStrategy: (times) => Math.min(50 * times, 1000),
    connectionName: 'switchboard-pub',
  });
  const sub = pub.duplicate({ connectionName: 'switchboard-sub' });
  for (const [name, client] of [
    ['pub', pub],
    ['sub', sub],
  ] as const) {
    client.on('error', (err: Error) => logger.warn({ err: err.message, client: name }, 'redis adapter connection error'));
  }
  await Promise.all([pub.connect(), sub.connect()]);
  return {
    adapter: createShardedAdapter(pub, sub, { channelPrefix: `${prefix}io`, subscriptionMode: 'dynamic' }),
    ready: () => pub.status === 'ready' && sub.status === 'ready',
    async close() {
      await Promise.allSettled([pub.quit(), sub.quit()]);
    },
  };
}

/** The inter-node message of socket.io-adapter's `ClusterAdapter` for a plain broadcast (see `publishToRoom`). */
const BROADCAST = 3; // MessageType.BROADCAST
const EVENT = 2; // socket.io-parser PacketType.EVENT

interface Publisher {
  publishAndReturnOffset(message: { type: number; data: { packet: { type: number; data: unknown[] }; opts: { rooms: string[]; except: string[]; flags: object } } }): Promise<unknown>;
}

/**
 * Sends an event to a room none of whose sockets is on this node, as the
 * message `io.to(room).emit(...)` would publish, but without the local half
 * of that broadcast: for a peer on another node, `emit` would also encode
 * the packet and precompute its WebSocket frame here, for nobody (a relayed
 * SDP offer is kilobytes). Returns false when the adapter cannot do it (not
 * a cluster adapter), so the caller emits the usual way.
 *
 * This speaks socket.io-adapter's own inter-node message (a BROADCAST, as its
 * `ClusterAdapter.broadcast` publishes it), which the receiving nodes deliver
 * exactly like any broadcast; the version is pinned by the lockfile and the
 * cluster tests relay through it. Publishes keep their order with the
 * adapter's own: both queue on the same connection synchronously.
 */
export function publishToRoom(adapter: unknown, room: string, event: string, payload: unknown, onError: (err: unknown) => void): boolean {
  const publisher = adapter as Partial<Publisher>;
  if (typeof publisher.publishAndReturnOffset !== 'function') return false;
  publisher
    .publishAndReturnOffset({
      type: BROADCAST,
      data: { packet: { type: EVENT, data: [event, payload] }, opts: { rooms: [room], except: [], flags: {} } },
    })
    .catch(onError);
  return true;
}

/**
 * Node liveness in Redis mode. Each node records "alive until now +
 * NODE_TIMEOUT_MS" a few times per timeout; every node looks for nodes past
 * their time, and the one that claims a dead node treats each of its
 * connected sessions as a lost transport: the session enters its reconnect
 * grace (so it can resume on any node) and its call hears `call:reconnecting`.
 * A Redis stall shorter than NODE_TIMEOUT_MS declares nobody dead: the last
 * beat before it still covers the node.
 */
export class NodeLiveness {
  private readonly intervals: NodeJS.Timeout[] = [];

  constructor(
    private readonly deps: Pick<Deps, 'store' | 'config' | 'logger' | 'now'>,
    private readonly markLost: (sessionId: SessionId, nodeId: string) => Promise<void>,
  ) {}

  async start(): Promise<void> {
    await this.beat();
    const { nodeTimeoutMs } = this.deps.config;
    this.every(Math.max(100, Math.floor(nodeTimeoutMs / 3)), () => this.beat());
    this.every(Math.max(100, Math.floor(nodeTimeoutMs / 4)), () => this.reapDeadNodes());
  }

  async stop(): Promise<void> {
    this.intervals.forEach(clearInterval);
    await this.deps.store.removeNode(this.deps.config.nodeId).catch(() => undefined);
  }

  private every(ms: number, work: () => Promise<void>): void {
    const timer = setInterval(() => {
      work().catch((err: unknown) => this.deps.logger.warn({ err: errorText(err) }, 'node liveness work failed'));
    }, ms);
    timer.unref();
    this.intervals.push(timer);
  }

  private async beat(): Promise<void> {
    await this.deps.store.beat(this.deps.config.nodeId, this.deps.now() + this.deps.config.nodeTimeoutMs);
  }

  async reapDeadNodes(): Promise<void> {
    const dead = await this.deps.store.claimDeadNodes(this.deps.now());
    for (const nodeId of dead) {
      if (nodeId === this.deps.config.nodeId) {
        // We were silent too long (a long pause): beat again; our sockets are still ours.
        await this.beat();
        continue;
      }
      const sessions = (await this.deps.store.sessionsOfNode(nodeId)).filter((s) => s.connected && s.nodeId === nodeId);
      this.deps.logger.warn({ deadNode: nodeId, sessions: sessions.length }, 'node declared dead; its sessions enter their grace');
      for (const session of sessions) await this.markLost(session.id, nodeId);
    }
  }
}

function errorText(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
