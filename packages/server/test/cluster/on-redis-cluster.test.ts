/**
 * The multi-node suites (`suites.ts`) on a Redis Cluster of three masters and
 * three replicas started by this file: presence, calls across nodes, a hundred
 * simultaneous calls to one callee ringing it once, glare, two devices
 * accepting at once, and nodes that die, with every key group's slot on
 * whichever master the cluster put it.
 */
import { after, before } from 'node:test';
import { RedisCluster } from '../../../../test/support/redis-cluster.js';
import { freshPrefix } from './harness.js';
import { describeDyingNodes, describePushedCalls, describeSharedNodes, type BackendUse } from './suites.js';

const PASSWORD = 'cluster-nodes-password-0123456789';
let cluster: RedisCluster;

before(async () => {
  cluster = await RedisCluster.start({ password: PASSWORD });
});
after(async () => {
  await cluster?.stop();
});

/** The cluster under a fresh prefix (every key goes with the cluster). */
async function onCluster(): Promise<BackendUse> {
  return { env: { ...cluster.env, REDIS_PREFIX: freshPrefix() }, release: async () => undefined };
}

describeSharedNodes('three nodes on a Redis Cluster', onCluster);
describeDyingNodes('nodes that die, on a Redis Cluster', onCluster);
describePushedCalls('pushed calls across nodes, on a Redis Cluster (RING_OFFLINE=webhook)', onCluster);
