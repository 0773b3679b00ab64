/**
 * Write coalescing: what Engine.IO flushes to one WebSocket within one turn
 * of the event loop leaves in one `writev` instead of one per packet.
 *
 * Engine.IO sends a packet at once when its transport is idle and queues the
 * rest until that write completes, then flushes the queue as one batch —
 * which `ws` would still write frame by frame. A relay burst (an offer and its
 * ICE candidates, read from one TCP segment) thus cost a system call per
 * packet, and on loopback or a busy host the system call, not the JSON, is
 * the largest single cost of a relayed message.
 *
 * So the TCP socket under the WebSocket is corked when Engine.IO flushes and
 * uncorked on `process.nextTick`, i.e. before the event loop moves on: no
 * timer, no added latency. Polling transports are left alone.
 */
import type { Socket as NetSocket } from 'node:net';

/** The parts of an Engine.IO socket this needs (its transport's internals are not in its public types). */
interface EngineConn {
  on(event: 'flush', listener: () => void): unknown;
  transport: unknown;
}

/** The TCP socket under a `websocket` transport (engine.io keeps the `ws` socket, which keeps the TCP one). */
function tcpOf(conn: EngineConn): NetSocket | null {
  const transport = conn.transport as { name?: string; socket?: { _socket?: NetSocket } } | null;
  if (transport?.name !== 'websocket') return null;
  const tcp = transport.socket?._socket;
  return tcp && typeof tcp.cork === 'function' && !tcp.destroyed ? tcp : null;
}

export function coalesceWrites(conn: EngineConn): void {
  let corked: NetSocket | null = null;
  const uncork = () => {
    const tcp = corked;
    corked = null;
    tcp?.uncork();
  };
  conn.on('flush', () => {
    if (corked) return;
    const tcp = tcpOf(conn);
    if (!tcp) return;
    tcp.cork();
    corked = tcp;
    process.nextTick(uncork);
  });
}
