/**
 * The chaos run (`chaos.ts`) on a Redis Cluster of three masters and three
 * replicas: the master of the key group that holds the users' calls and
 * sessions is killed once and its replica takes its slots over.
 */
import { groupOf } from '../../src/store/redis-keys.js';
import { redisTargetOf } from '../../src/store/redis-target.js';
import { RedisCluster } from '../../../../test/support/redis-cluster.js';
import { describeChaos } from './chaos.js';

describeChaos('chaos on a Redis Cluster', async () => {
  const cluster = await RedisCluster.start();
  return {
    env: cluster.env,
    killMaster: async () => {
      await cluster.killMaster(await cluster.masterOfSlot(await cluster.slotOf(`{g${groupOf('')}}`)));
      await cluster.restartKilled();
    },
    target: async () => redisTargetOf({ redisUrl: null, redisClusterNodes: cluster.seeds.split(','), redisSentinels: [], redisSentinelMaster: null, redisUsername: null, redisPassword: null })!,
    stop: () => cluster.stop(),
  };
});
