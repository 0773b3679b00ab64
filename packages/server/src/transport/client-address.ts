/**
 * Whose address a connection is. Without `TRUSTED_PROXIES` it is the TCP
 * peer's, and `X-Forwarded-For` is ignored: anyone can write that header.
 * Behind trusted proxies it is the nearest address in `X-Forwarded-For` that
 * is not itself a trusted proxy, read from the right: the hops a trusted proxy
 * appended are believed, whatever a client wrote before them is not. Every
 * per-address limit (unauthenticated sockets, sign-ins) counts by it.
 */
import type { IncomingMessage } from 'node:http';
import { isIP } from 'node:net';
import proxyaddr from '@fastify/proxy-addr';

/** A request's client address (see the module's comment). */
export type AddressOf = (req: IncomingMessage) => string;

/** The address of a socket whose peer is already gone. */
const UNKNOWN = 'unknown';

/**
 * Why `entry` cannot be a trusted proxy, or null when it can: an IPv4 or IPv6
 * address, a CIDR range (`10.0.0.0/8`, or `10.0.0.0/255.0.0.0`), or one of
 * `loopback`, `linklocal` and `uniquelocal`.
 */
export function trustedProxyError(entry: string): string | null {
  try {
    proxyaddr.compile(entry);
    return null;
  } catch (err) {
    return `expected an IP address, a CIDR range, loopback, linklocal or uniquelocal, got "${entry}" (${err instanceof Error ? err.message : String(err)})`;
  }
}

/** How this node tells a connection's client address, given `TRUSTED_PROXIES` (each entry valid: see `trustedProxyError`). */
export function clientAddress(trustedProxies: readonly string[]): AddressOf {
  if (trustedProxies.length === 0) return (req) => req.socket.remoteAddress ?? UNKNOWN;
  const trust = proxyaddr.compile([...trustedProxies]);
  return (req) => {
    const peer = req.socket.remoteAddress;
    if (peer === undefined) return UNKNOWN;
    const address = proxyaddr(req, trust);
    // A trusted hop that passed on something other than an address: count by the peer, never by free text.
    return isIP(address) !== 0 ? address : peer;
  };
}
