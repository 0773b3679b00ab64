/**
 * Cross-node delivery in Redis mode: Socket.IO's official sharded Redis
 * adapter (Redis 7 sharded pub/sub). With `subscriptionMode: "dynamic"` every
 * room gets its own channel, subscribed only by the nodes that hold a socket in
 * it — so an emit to one session's room reaches one node, not all of them,
 * which is what one-to-one call traffic wants.
 */
import { createShardedAdapter } from '@socket.io/redis-adapter';
import { Redis } from 'ioredis';
import type { Logger } from '../logger.js';

export interface ClusterAdapter {
  adapter: ReturnType<typeof createShardedAdapter>;
  close(): Promise<void>;
}

export async function createClusterAdapter(redisUrl: string, prefix: string, logger: Logger): Promise<ClusterAdapter> {
  // Unlike the store's client, these keep an offline queue: a publish made
  // during a short outage goes out when Redis is back instead of failing.
  const pub = new Redis(redisUrl, { lazyConnect: true, maxRetriesPerRequest: null, connectionName: 'switchboard-pub' });
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
    async close() {
      await Promise.allSettled([pub.quit(), sub.quit()]);
    },
  };
}
