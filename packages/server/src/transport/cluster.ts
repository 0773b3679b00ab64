/**
 * Cross-node delivery in Redis mode: Socket.IO's official sharded Redis
 * adapter (Redis 7 sharded pub/sub). With `subscriptionMode: "dynamic"` every
 * room gets its own channel, subscribed only by the nodes that hold a socket in
 * it — so an emit to one session's room reaches one node, not all of them,
 * which is what one-to-one call traffic wants. Events for one session held
 * by another node go on that same channel as the node's own session mail
 * (session-mail.ts), batched per tick, beside the adapter's messages.
 */
import { randomUUID } from 'node:crypto';
import { createShardedAdapter } from '@socket.io/redis-adapter';
import type { RedisOptions } from 'ioredis';
import type { SessionId } from '@switchboard/protocol';
import type { Logger } from '../logger.js';
import type { Metrics } from '../metrics.js';
import type { NodeStore, SessionStore } from '../store/types.js';
import { closeRedis, openRedis, type RedisClient, type RedisTarget } from '../store/redis-target.js';
import type { Deps } from './context.js';
import { MAIL_MARK, SessionMail, type MailReceiver } from './session-mail.js';

export interface ClusterAdapter {
  adapter: ReturnType<typeof createShardedAdapter>;
  /** Messages to sessions and rooms on other nodes, on the same channels as the adapter's own. */
  mail: SessionMail;
  /** Both pub/sub connections are up (after a reconnect, the sub connection has re-sent its subscriptions). */
  ready(): boolean;
  close(): Promise<void>;
}

/**
 * The two members of `@socket.io/redis-adapter`'s sharded adapter that the
 * session mail uses: the channel of a room, and the handler of every message
 * on a subscribed channel. Both are private in its typings; the version is
 * pinned by the lockfile, checked when the adapter is made, and the cluster
 * tests run every cross-node event through them.
 */
interface ShardedInternals {
  dynamicChannel(room: string): string;
  onRawMessage(raw: Buffer, channel: Buffer): void;
}

function internalsOf(adapter: unknown): ShardedInternals {
  const found = adapter as Partial<ShardedInternals>;
  if (typeof found.dynamicChannel !== 'function' || typeof found.onRawMessage !== 'function') {
    throw new Error('this @socket.io/redis-adapter version lacks dynamicChannel/onRawMessage; see transport/cluster.ts');
  }
  return found as ShardedInternals;
}

/**
 * Closes a connection to a Redis that is away. The commands waiting in its
 * offline queue are rejected by the close; the adapter fires some of them
 * without waiting for their answer (its own publishes; its subscriptions are
 * caught as they are sent, see `catchSubscriptions`), so their rejections are
 * marked handled here rather than surface as unhandled.
 * (`offlineQueue` is ioredis's own queue; without it there is nothing to mark.)
 */
function dropConnection(client: RedisClient): void {
  const queue = (client as unknown as { offlineQueue?: { toArray(): { command?: { promise?: Promise<unknown> } }[] } }).offlineQueue;
  for (const item of queue?.toArray() ?? []) item.command?.promise?.catch(() => undefined);
  client.disconnect();
}

/**
 * The adapter sends SSUBSCRIBE and SUNSUBSCRIBE as rooms fill and empty and
 * never looks at their answer; one caught by a master's failure (on a
 * cluster, the subscriber connection of a master that dies) would reject
 * unheard. Its failure is logged instead: ioredis subscribes the channels it
 * holds again once it reconnects, or once the cluster's replica takes the slots.
 */
function catchSubscriptions(sub: RedisClient, logger: Logger): void {
  for (const name of ['ssubscribe', 'sunsubscribe'] as const) {
    const send = sub[name].bind(sub) as (...channels: string[]) => Promise<unknown>;
    (sub as unknown as Record<string, unknown>)[name] = (...channels: string[]) =>
      send(...channels).catch((err: unknown) => logger.warn({ err, channels: channels.length }, `redis adapter ${name} failed`));
  }
}

/** The two Redis connections of the adapter: one publishes, one subscribes. */
export interface PubSub {
  pub: RedisClient;
  sub: RedisClient;
}

/**
 * Opens the adapter's connections. Unlike the store's client, these keep an
 * offline queue: a publish made during a short outage goes out when Redis is
 * back instead of failing. Publishes made in one turn of the event loop go out
 * in one write (`openRedis`).
 * On a cluster, a channel lives on the master of its slot: the subscriber is a
 * `Cluster` with `shardedSubscribers` (one subscriber connection per master,
 * SSUBSCRIBE sent to the master of each channel's slot, moved with it), as
 * the sharded adapter's documentation asks.
 */
export async function connectPubSub(target: RedisTarget, logger: Logger): Promise<PubSub> {
  const options = (connectionName: string): RedisOptions => ({
    lazyConnect: true,
    maxRetriesPerRequest: null,
    // Back within a second of Redis, like the store's connection (ioredis would wait up to 2 s).
    retryStrategy: (times) => Math.min(50 * times, 1000),
    connectionName,
  });
  const pub = openRedis(target, options('switchboard-pub'));
  const sub = openRedis(target, options('switchboard-sub'), { shardedSubscribers: true });
  for (const [name, client] of [
    ['pub', pub],
    ['sub', sub],
  ] as const) {
    client.on('error', (err: Error) => logger.warn({ err: err.message, client: name }, 'redis adapter connection error'));
  }
  await Promise.all([pub.connect(), sub.connect()]);
  return { pub, sub };
}

/**
 * The adapter on `pubsub`, and the session mail beside it on the same
 * channels, whose arriving messages go to `receiver`. `sessionRoom` names a
 * session's room: the adapter subscribes its channel on the node holding the
 * session (`subscriptionMode: "dynamic"`), and the session mail publishes there.
 */
export function createClusterAdapter(
  { pub, sub }: PubSub,
  prefix: string,
  logger: Logger,
  sessionRoom: (session: SessionId) => string,
  receiver: MailReceiver,
  metrics?: Pick<Metrics, 'countMail'>,
): ClusterAdapter {
  // The adapter of the main namespace, once Socket.IO has made it.
  let root: ShardedInternals | undefined;
  const onPublishError = (err: unknown) => logger.warn({ err }, 'publish to another node failed');
  const channelOf = (room: string) => {
    if (!root) throw new Error('no adapter yet');
    return root.dynamicChannel(room);
  };
  const publish = (room: string, data: string) => pub.spublish(channelOf(room), data).catch(onPublishError);
  const mail = new SessionMail(
    {
      publish: (session, data) => publish(sessionRoom(session), data),
      publishToRoom: (room, data) => publish(room, data),
      channelOf: (session) => channelOf(sessionRoom(session)),
    },
    receiver,
    randomUUID(),
    (err) => logger.warn({ err }, 'unreadable session message from another node'),
    metrics ? (direction, kind) => metrics.countMail(direction, kind) : undefined,
  );
  catchSubscriptions(sub, logger);
  const sharded = createShardedAdapter(pub, sub, { channelPrefix: `${prefix}io`, subscriptionMode: 'dynamic' });
  // Socket.IO calls it with `new`: a function returning the adapter it made, as the sharded factory is.
  const adapter: typeof sharded = function (nsp: { name: string }) {
    const made = sharded(nsp);
    if (nsp.name === '/') {
      const internals = internalsOf(made);
      const decode = internals.onRawMessage.bind(made);
      // Ours start with `[`; the adapter's own are JSON objects or MessagePack maps.
      internals.onRawMessage = (raw, channel) => (raw[0] === MAIL_MARK ? mail.receive(raw) : decode(raw, channel));
      root = internals;
    }
    return made;
  };
  return {
    adapter,
    mail,
    ready: () => pub.status === 'ready' && sub.status === 'ready',
    async close() {
      // QUIT would wait in the offline queue for a Redis that is away: then just drop the connection.
      await Promise.allSettled([pub, sub].map((client) => (client.status === 'ready' ? closeRedis(client) : dropConnection(client))));
    },
  };
}

/**
 * How long a claim on a dead node lasts, in NODE_TIMEOUT_MS: long enough to
 * hand over a node's sessions; if the claimer dies first (or the store
 * fails it), the node is claimed again when the lease runs out.
 */
const DEAD_NODE_LEASE = 2;

/**
 * Node liveness in Redis mode. Each node records "alive until now +
 * NODE_TIMEOUT_MS" a few times per timeout; every node looks for nodes past
 * their time, and the one that claims a dead node treats each of its
 * connected sessions as a lost transport: the session enters its reconnect
 * grace (so it can resume on any node) and its call hears `call:reconnecting`.
 * Beats are written and judged by the store's clock (Redis `TIME`), so
 * nodes whose clocks disagree agree on who is late. A Redis stall shorter
 * than NODE_TIMEOUT_MS declares nobody dead: the last beat before it still
 * covers the node. A longer one (a failover, an outage) declares nobody dead
 * either: a node that could not reach the store judges nobody until a whole
 * NODE_TIMEOUT_MS after it reached it again, by which time every live node
 * has beaten again. A dead node is leased, not removed, by the node that
 * claims it, and forgotten only once its sessions are handed over: a claimer
 * SIGKILLed halfway, or a failover that loses its writes, leaves the node to
 * be claimed again, never its sessions connected to nobody.
 */
export class NodeLiveness {
  private readonly intervals: NodeJS.Timeout[] = [];
  /** Local time before which this node judges no other (it could not reach the store until lately). */
  private quietUntil = 0;

  constructor(
    private readonly deps: Pick<Deps, 'config' | 'logger' | 'now'> & { store: NodeStore & Pick<SessionStore, 'sessionsOfNode'> },
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
      work().catch((err: unknown) => {
        this.quietUntil = Date.now() + this.deps.config.nodeTimeoutMs;
        this.deps.logger.warn({ err: errorText(err) }, 'node liveness work failed');
      });
    }, ms);
    timer.unref();
    this.intervals.push(timer);
  }

  private async beat(): Promise<void> {
    const { store, config } = this.deps;
    await store.beat(config.nodeId, (await store.clock()) + config.nodeTimeoutMs);
  }

  async reapDeadNodes(): Promise<void> {
    if (Date.now() < this.quietUntil) return;
    const { store, config } = this.deps;
    const dead = await store.claimDeadNodes(await store.clock(), config.nodeTimeoutMs * DEAD_NODE_LEASE);
    for (const claim of dead) {
      if (claim.nodeId === config.nodeId) {
        // We were silent too long (a long pause): beat again; our sockets are still ours.
        await this.beat();
        continue;
      }
      try {
        const sessions = (await store.sessionsOfNode(claim.nodeId)).filter((s) => s.connected && s.nodeId === claim.nodeId);
        this.deps.logger.warn({ deadNode: claim.nodeId, sessions: sessions.length }, 'node declared dead; its sessions enter their grace');
        for (const session of sessions) await this.markLost(session.id, claim.nodeId);
        await store.completeDeadNode(claim);
      } catch (err) {
        // The node stays leased to us: when the lease runs out it is dead again, and whoever claims it then goes on.
        this.deps.logger.warn({ deadNode: claim.nodeId, err: errorText(err) }, 'could not hand over a dead node\'s sessions; it will be claimed again');
      }
    }
  }
}

function errorText(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
