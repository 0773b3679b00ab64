/**
 * The ICE servers a phone uses for its calls, always the freshest the server
 * gave (sign-in, resumption, each call), and when their TURN credentials run
 * out. TURN REST credentials (what coturn's `use-auth-secret` checks) carry
 * their expiry in the username, `<unix seconds>:<user>`; coturn refuses them
 * after it, so an allocation made or refreshed later fails. Renewal starts a
 * margin before: a fifth of their lifetime, at most a minute.
 */

const MAX_RENEW_MARGIN_MS = 60_000;

export class IceServers {
  private current: RTCIceServer[] = [];
  private expiresAt: number | null = null;
  private marginMs = 0;

  get servers(): RTCIceServer[] {
    return this.current;
  }

  /** Takes `servers` issued at `now` (epoch ms). An empty or missing list (a server older than v1.1 on a call) keeps the ones at hand. */
  use(servers: RTCIceServer[] | undefined, now = Date.now()): void {
    if (!Array.isArray(servers) || servers.length === 0) return;
    this.current = servers;
    this.expiresAt = expiryOf(servers);
    this.marginMs = this.expiresAt === null ? 0 : Math.min(MAX_RENEW_MARGIN_MS, Math.max(0, this.expiresAt - now) / 5);
  }

  /** When renewal is due (epoch ms), or `null` when the servers have no expiring credentials. */
  get renewAt(): number | null {
    return this.expiresAt === null ? null : this.expiresAt - this.marginMs;
  }

  /** The credentials expire within the margin (or have): a new allocation should wait for fresh ones. */
  stale(now = Date.now()): boolean {
    const at = this.renewAt;
    return at !== null && now >= at;
  }
}

/** The earliest expiry (epoch ms) among servers with TURN REST credentials, or `null`. */
export function expiryOf(servers: readonly RTCIceServer[]): number | null {
  let earliest: number | null = null;
  for (const server of servers) {
    if (typeof server.username !== 'string' || server.credential === undefined) continue;
    const match = /^(\d{9,12}):/.exec(server.username);
    if (!match) continue;
    const at = Number(match[1]) * 1000;
    if (earliest === null || at < earliest) earliest = at;
  }
  return earliest;
}
