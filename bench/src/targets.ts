/** A target under test: one Switchboard node, two Switchboard nodes sharing one Redis or a Redis Cluster, or the bare relay. */
import { openMany, openSpec } from './clients.js';
import { Pair, type Counters } from './call.js';
import type { ServerKind, ServerProcess } from './processes.js';
import type { RedisHandle } from './redis.js';

/** `switchboard-video`: the memory-mode node of `switchboard`, driven with video calls (`--video`). */
export type TargetName = 'switchboard' | 'bare' | 'switchboard-redis' | 'switchboard-cluster' | 'switchboard-video';

export interface Target {
  name: TargetName;
  kind: ServerKind;
  nodes: ServerProcess[];
  /** Where callers connect. */
  callerUrl: string;
  /** Where callees connect (another node in Redis mode). */
  calleeUrl: string;
  /** Redis mode: the Redis (or the cluster) the nodes share. */
  redis?: RedisHandle;
}

export function makeTarget(name: TargetName, nodes: ServerProcess[], redis?: RedisHandle): Target {
  const kind = nodes[0]!.kind;
  return { name, kind, nodes, callerUrl: nodes[0]!.url, calleeUrl: nodes[nodes.length - 1]!.url, ...(redis ? { redis } : {}) };
}

/** CPU time (ms) of every process of the target. */
export function targetCpuMs(t: Target): number {
  return t.nodes.reduce((sum, n) => sum + n.cpuMs(), 0);
}

export function crashedNodes(t: Target): string[] {
  return t.nodes.filter((n) => n.crashed).map((n) => `${n.label}: ${n.crashed}`);
}

/**
 * Connects `count` caller/callee pairs (users c<i> and e<i>); for Switchboard each
 * pair is its own tenant, so presence traffic stays within the pair.
 * `video`: the pairs place video calls (`Pair`).
 */
export async function connectPairs(
  target: Target,
  count: number,
  counters: Counters,
  onProgress?: (done: number) => void,
  video = target.name === 'switchboard-video',
): Promise<Pair[]> {
  return openMany(
    count,
    32,
    async (i) => {
      const tenant = `${video ? 'v' : 't'}${i}`; // video pairs share a node with audio ones: users of their own
      const [caller, callee] = await Promise.all([
        openSpec(target.callerUrl, target.kind, { userId: `c${i}`, tenant }),
        openSpec(target.calleeUrl, target.kind, { userId: `e${i}`, tenant }),
      ]);
      return new Pair(caller, callee, `e${i}`, counters, undefined, video);
    },
    onProgress ? (d) => onProgress(d) : undefined,
  );
}

export function closePairs(pairs: Pair[]): void {
  for (const p of pairs) {
    p.caller.disconnect();
    p.callee.disconnect();
  }
}
