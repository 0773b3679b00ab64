/**
 * The chaos run (`chaos.ts`) on Redis behind Sentinel: a master, a replica and
 * three sentinels; the master is killed once and its replica promoted.
 */
import { redisTargetOf, resolveRedisTarget } from '../../src/store/redis-target.js';
import { SENTINEL_MASTER, SentinelGroup } from '../../../../test/support/sentinel.js';
import { describeChaos } from './chaos.js';

describeChaos('chaos on Redis behind Sentinel', async () => {
  const group = await SentinelGroup.start();
  return {
    env: group.env,
    killMaster: () => group.killMaster().then(() => group.restartOld()),
    target: async () =>
      (await resolveRedisTarget(
        redisTargetOf({ redisUrl: null, redisClusterNodes: [], redisSentinels: group.sentinelList.split(','), redisSentinelMaster: SENTINEL_MASTER, redisUsername: null, redisPassword: null }),
      ))!,
    stop: () => group.stop(),
  };
});
