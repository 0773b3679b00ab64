/**
 * Taking a node out of service without losing a call (SIGTERM): it stops
 * taking connections, closes every client transport within 5 s as a
 * transport loss, then stops. In Redis mode each session is handed over: its
 * loss is written first, so the client resumes on another node into a
 * session already waiting in its grace. In memory mode nothing survives the
 * process, so each call first ends (the machine's `drain` input).
 */
import { setTimeout as delay } from 'node:timers/promises';
import type { Logger } from './logger.js';
import type { Metrics } from './metrics.js';
import type { SwitchboardNode } from './node.js';
import type { Conn } from './transport/context.js';

/** A drain closes every client transport within this (the protocol says 5 s; the rest is margin). */
const DRAIN_CLOSE_MS = 4500;
/** Sessions handed over at once during a drain (each is a few Redis round trips). */
const DRAIN_CONCURRENCY = 32;

/** Resolves after `ms` without keeping the process alive. */
const within = (ms: number) => delay(Math.max(0, ms), undefined, { ref: false });

/** Memory mode: ends each call held here (both parties are here); how many. */
async function endLocalCalls(node: SwitchboardNode, logger: Logger): Promise<number> {
  const seen = new Set<string>();
  for (const conn of [...node.local.values()]) {
    if (!conn.session) continue;
    try {
      const call = await node.calls.callOfUser(conn.session.key);
      if (!call || seen.has(call.id)) continue;
      seen.add(call.id);
      await node.calls.run({ type: 'drain', callId: call.id, tenant: call.tenant });
    } catch (err) {
      logger.warn({ err, session: conn.session.id }, 'could not end a call while draining');
    }
  }
  return seen.size;
}

/**
 * Hands one session over: its loss is written to the store first, then its
 * transport is cut, so when the client resumes on another node the session
 * is already waiting there in its grace (and no late write from here can
 * mark the resumed session lost).
 */
async function handOver(node: SwitchboardNode, conn: Conn, deadline: number, logger: Logger): Promise<void> {
  const info = conn.session;
  if (!info || conn.closing) {
    conn.socket.conn.close();
    return;
  }
  conn.closing = 'closed';
  if (node.local.get(info.id) === conn) node.local.delete(info.id);
  const lost = node.sessions.markLost(info.id).catch((err: unknown) => {
    node.lossFailures++;
    logger.warn({ err, session: info.id }, 'could not hand a session over while draining');
  });
  node.track(lost);
  await Promise.race([lost, within(deadline - Date.now())]);
  conn.socket.conn.close();
}

/** Drains `node`, then runs `shutdown` (which stops it and everything around it). */
export async function drainNode(node: SwitchboardNode, metrics: Metrics, logger: Logger, shutdown: () => Promise<void>): Promise<void> {
  const started = Date.now();
  const deadline = started + DRAIN_CLOSE_MS;
  node.draining = true;
  metrics.draining.set(1);
  const { io } = node;
  logger.info({ sockets: io.of('/').sockets.size, sessions: node.local.size, shared: node.bus !== null }, 'draining');
  // Each socket's close, once what was sent to it has gone out (engine.io flushes before closing).
  const closed = [...io.of('/').sockets.values()].map((socket) => new Promise((resolve) => socket.once('disconnect', resolve)));
  const endedCalls = node.bus ? 0 : await endLocalCalls(node, logger);
  const conns = [...node.local.values()];
  // Sockets that never signed in have nothing to hand over.
  for (const socket of io.of('/').sockets.values()) if (!socket.data.sessionId) socket.conn.close();
  const worker = async () => {
    for (let conn = conns.shift(); conn; conn = conns.shift()) {
      if (Date.now() >= deadline) conn.socket.conn.close();
      else await handOver(node, conn, deadline, logger);
    }
  };
  await Promise.all(Array.from({ length: DRAIN_CONCURRENCY }, worker));
  await Promise.race([Promise.all(closed), within(deadline - Date.now())]);
  logger.info({ ms: Date.now() - started, endedCalls, lossFailures: node.lossFailures }, 'client transports closed');
  await shutdown();
  logger.info({ ms: Date.now() - started, handedOver: node.lossFailures === 0 }, 'drained');
}
