/**
 * What a connection must pass before Socket.IO takes it (draining, origin,
 * unauthenticated connections per address), how large a message may be, and
 * the sweep that cuts sockets whose unread packets pile up.
 */
import type { IncomingMessage } from 'node:http';
import { MAX_MESSAGE_BYTES } from '@switchboard/protocol';
import type { Config } from '../config.js';
import type { Logger } from '../logger.js';
import type { Metrics } from '../metrics.js';
import type { AddressGate } from './abuse.js';
import type { AddressOf } from './client-address.js';
import { MAX_BUFFERED_PACKETS } from './abuse.js';
import type { SbServer } from './context.js';

/** Headroom over the largest legal message for Socket.IO framing. */
const FRAME_OVERHEAD_BYTES = 1024;
/** The largest message Socket.IO reads (also the WebSocket `maxPayload`): a larger one closes its transport. */
export const MAX_HTTP_BUFFER_BYTES = MAX_MESSAGE_BYTES + FRAME_OVERHEAD_BYTES;

/** How often sockets are checked for packets piling up unread. */
const SLOW_READER_CHECK_MS = 2000;

function originAllowed(allowed: string[], origin: string | undefined): boolean {
  // Non-browser clients send no Origin; browsers always do on a cross-site WebSocket.
  return allowed.length === 0 || origin === undefined || allowed.includes(origin);
}

type AllowRequest = (req: IncomingMessage, callback: (err: string | null | undefined, success: boolean) => void) => void;

/**
 * Socket.IO's `allowRequest`, asked at every Engine.IO handshake (WebSocket
 * upgrades included, which CORS does not cover): a draining node takes no
 * one, a browser from another origin is refused (exact match), and a client
 * address (`addressOf`: behind trusted proxies, from `X-Forwarded-For`) at its
 * cap of unauthenticated connections is refused.
 */
export function admission(config: Config, gate: AddressGate | null, metrics: Metrics, addressOf: AddressOf, draining: () => boolean): AllowRequest {
  return (req, callback) => {
    if (draining()) return callback('this node is shutting down', false);
    if (!originAllowed(config.corsOrigins, req.headers.origin)) return callback('origin not allowed', false);
    if (gate && !gate.admit(addressOf(req))) {
      metrics.rateLimitedTotal.inc({ event: 'connect' });
      return callback('too many unauthenticated connections from this address', false);
    }
    callback(null, true);
  };
}

/**
 * A socket that does not read its packets would make us buffer without bound:
 * every few seconds, one with more than `MAX_BUFFERED_PACKETS` waiting is cut
 * as a lost transport. Returns the sweep's timer.
 */
export function cutSlowReaders(io: SbServer, logger: Logger): NodeJS.Timeout {
  const timer = setInterval(() => {
    for (const socket of io.of('/').sockets.values()) {
      // engine.io keeps unsent packets in `writeBuffer` (not in its public types).
      const buffered = (socket.conn as unknown as { writeBuffer: unknown[] }).writeBuffer.length;
      if (buffered > MAX_BUFFERED_PACKETS) {
        logger.warn({ socket: socket.id, session: socket.data.sessionId, buffered }, 'cutting a slow reader');
        // close(true) discards the queue: a plain close() would wait for it to drain, which a stalled reader never lets happen.
        socket.conn.close(true);
      }
    }
  }, SLOW_READER_CHECK_MS);
  timer.unref();
  return timer;
}
