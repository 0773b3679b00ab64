/**
 * The nftables rules of the network lab, as text for `nft -f -`: what a home
 * router does (masquerade on the WAN, nothing unsolicited in from it), what
 * the "internet" does (no forwarding between two NATs, a silent sink), and
 * the faults a test switches on and off. Pure functions: the lab applies them.
 */

/** Faults applied at one router, to what it forwards. */
export interface RouterFaults {
  /** Percentage of forwarded UDP dropped at random (0: none). */
  lossPercent: number;
  /** Every forwarded UDP packet dropped (signalling, on TCP, stays up). */
  udpBlocked: boolean;
  /** TCP to and from the signalling server: `drop` silently, answer with a `reset`, or `null` to pass. */
  signalling: 'drop' | 'reset' | null;
}

/** Faults applied at the internet namespace, to what reaches its services. */
export interface InternetFaults {
  /** Percentage of UDP arriving from the routers dropped at random. */
  lossPercent: number;
  /** Nothing from outside reaches coturn (its listening port and its relay ports). */
  turnBlocked: boolean;
  /** Packets may cross from one router's WAN to another's (host, server-reflexive paths); off: only TURN connects. */
  direct: boolean;
}

export const NO_ROUTER_FAULTS: Readonly<RouterFaults> = { lossPercent: 0, udpBlocked: false, signalling: null };

/**
 * A home router: LAN behind masquerade on `wan`. Nothing unsolicited comes in
 * from the WAN (neither to the router, which would answer an ICMP port
 * unreachable, nor through it): otherwise crossing connectivity checks make
 * Linux masquerade pick new ports, which a home router does not do.
 */
export function routerRuleset(): string {
  return `
table inet lab {
  chain faults {
  }
  chain forward {
    type filter hook forward priority filter; policy drop;
    jump faults
    iifname "lan" oifname "wan" accept
    iifname "wan" oifname "lan" ct state established,related accept
  }
  chain input {
    type filter hook input priority filter; policy accept;
    iifname "wan" ct state established,related accept
    iifname "wan" drop
  }
}
table ip nat {
  chain postrouting {
    type nat hook postrouting priority srcnat; policy accept;
    oifname "wan" masquerade
  }
}
`;
}

/** Replaces the router's fault rules (one transaction). */
export function routerFaultRules(faults: RouterFaults, server: { address: string; port: number }): string {
  const rules: string[] = [];
  if (faults.udpBlocked) rules.push('meta l4proto udp counter drop');
  else if (faults.lossPercent > 0) rules.push(`meta l4proto udp numgen random mod 100 < ${percent(faults.lossPercent)} counter drop`);
  if (faults.signalling) {
    const verdict = faults.signalling === 'reset' ? 'reject with tcp reset' : 'drop';
    rules.push(`ip daddr ${server.address} tcp dport ${server.port} counter ${verdict}`);
    rules.push(`ip saddr ${server.address} tcp sport ${server.port} counter ${verdict}`);
  }
  return chainReplacement('inet lab faults', rules);
}

/**
 * The internet: services on its own address, a link to each router, and a
 * default route into `sink`, whose far end drops everything: coturn 4.6.1
 * closes a whole allocation when a relayed send fails with ENETUNREACH (as a
 * send to a phone's private host candidate would without a default route),
 * and a drop in this namespace's own output path would fail the send too
 * (EPERM), so the drop is on the far end's input.
 */
export function internetRuleset(sinkFarEnd: string): string {
  return `
table inet lab {
  chain sink {
    type filter hook prerouting priority raw; policy accept;
    iifname "${sinkFarEnd}" counter drop
  }
  chain faults {
  }
  chain input {
    type filter hook input priority filter; policy accept;
    jump faults
  }
  chain crossing {
  }
  chain forward {
    type filter hook forward priority filter; policy drop;
    jump crossing
  }
}
`;
}

/** Replaces the internet's fault rules (inbound only: a drop of coturn's own sends would be an error to it, not a loss). */
export function internetFaultRules(faults: InternetFaults, turn: { port: number; minRelayPort: number; maxRelayPort: number }): string {
  const rules: string[] = [];
  if (faults.turnBlocked) {
    rules.push(`iifname != "lo" meta l4proto { udp, tcp } th dport ${turn.port} counter drop`);
    rules.push(`iifname != "lo" udp dport ${turn.minRelayPort}-${turn.maxRelayPort} counter drop`);
  }
  if (faults.lossPercent > 0) rules.push(`iifname != "lo" meta l4proto udp numgen random mod 100 < ${percent(faults.lossPercent)} counter drop`);
  const crossing = faults.direct ? ['iifname "w*" oifname "w*" accept'] : [];
  return chainReplacement('inet lab faults', rules) + chainReplacement('inet lab crossing', crossing);
}

/** Packets the fault rules of a chain listing (`nft list chain … faults`) have dropped so far (the counters restart when faults change). */
export function droppedPackets(listing: string): number {
  return [...listing.matchAll(/counter packets (\d+)/g)].reduce((sum, m) => sum + Number(m[1]), 0);
}

function chainReplacement(chain: string, rules: readonly string[]): string {
  return [`flush chain ${chain}`, ...rules.map((rule) => `add rule ${chain} ${rule}`)].join('\n') + '\n';
}

function percent(value: number): number {
  if (!Number.isFinite(value) || value < 0 || value > 100) throw new RangeError(`a loss percentage is 0 to 100, got ${value}`);
  return Math.round(value);
}
