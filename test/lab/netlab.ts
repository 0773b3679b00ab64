/**
 * The network lab: real networks for tests, made of Linux network namespaces,
 * veth pairs and nftables, with a real coturn and a real Switchboard server.
 *
 *   alice 192.168.1.10 ─ r1 [NAT] 172.16.1.2 ─┐
 *   bob   192.168.2.10 ─ r2 [NAT] 172.16.2.2 ─┼─ internet: 10.200.0.1 (server :3000, coturn :3478,
 *   (spare LAN 192.168.3.0/24) ─ r3 [NAT] 172.16.3.2 ─┘   relays 49152-49999); default route → a silent sink
 *
 * Routers masquerade on their WAN and let nothing unsolicited in from it; the
 * internet forwards nothing from one router to another (unless a test allows
 * direct paths), so only TURN connects two phones. A test switches faults on
 * and off (random UDP loss, UDP blocked, signalling blocked, TURN blocked) and
 * moves a phone to another router (a network change mid-call).
 *
 * Namespaces are named `sblab-<pid>-<n>-<role>`, so labs of two test processes
 * run side by side; every child runs under `timeout`; the lab is torn down by
 * `close()`, after a failed set-up, and at process exit or on a signal; a lab
 * starting removes what labs of dead processes left behind. Needs root: a lab
 * that cannot make a namespace fails, it never skips.
 */
import { execFileSync, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { appendFileSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { mintToken } from '../../packages/server/src/auth/tokens.js';
import { pollUntil } from '../support/wait.js';
import type { AgentPhoneOptions } from './agent-protocol.js';
import { LabPhone, type AgentExit } from './lab-phone.js';
import { droppedPackets, internetFaultRules, internetRuleset, NO_ROUTER_FAULTS, routerFaultRules, routerRuleset, type InternetFaults, type RouterFaults } from './nft.js';
import { alive, killGroup, run, runIn, runSync, spawnIn, stopGroup } from './shell.js';

export type PhoneName = 'alice' | 'bob';
export type RouterName = 'r1' | 'r2' | 'r3';
type Role = 'net' | RouterName | PhoneName;

const ROLES: readonly Role[] = ['net', 'r1', 'r2', 'r3', 'alice', 'bob'];
const ROUTERS: Readonly<Record<RouterName, number>> = { r1: 1, r2: 2, r3: 3 };
const HOME: Readonly<Record<PhoneName, RouterName>> = { alice: 'r1', bob: 'r2' };
const NS_PREFIX = 'sblab-';
const REPO_ROOT = fileURLToPath(new URL('../../', import.meta.url));

/** The lab's addresses (all private, all inside the lab's namespaces). */
export const LAB = {
  services: '10.200.0.1',
  serverPort: 3000,
  webhookPort: 3100,
  turnPort: 3478,
  relayPorts: [49152, 49999] as const,
  realm: 'switchboard.lab',
  wan: (router: RouterName) => `172.16.${ROUTERS[router]}.2`,
  gateway: (router: RouterName) => `192.168.${ROUTERS[router]}.1`,
  phoneAddress: (router: RouterName) => `192.168.${ROUTERS[router]}.10`,
  sink: { near: 'snk0', far: 'snk1', address: '10.255.255.1/30', gateway: '10.255.255.2', mac: '02:00:00:00:00:02' },
} as const;

export interface NetLabOptions {
  /** `TURN_TTL_S` of the server: lifetime of the TURN credentials it hands out. @default 86400 */
  turnTtlS?: number;
  /** More server variables (e.g. `PING_INTERVAL_MS`). */
  serverEnv?: Record<string, string>;
  /** TURN transports offered to phones. @default ['udp'] */
  turnTransports?: readonly ('udp' | 'tcp')[];
  /** Every child process of the lab dies after this, whatever happens to the test. @default 600 */
  lifetimeS?: number;
  /** Runs a webhook receiver beside the server and points `WEBHOOK_URL` at it (see `webhookEvents`). */
  webhooks?: boolean;
}

export interface PhoneSetup {
  /** The tone the phone sends, and the one it should hear, in Hz. */
  audio: { send: number; expect: number };
  /** `Phone` options, passed straight through (e.g. `mediaRecoveryTimeoutMs`). */
  options?: AgentPhoneOptions;
}

let labCount = 0;
const live = new Set<NetLab>();

export class NetLab {
  /** The Switchboard server, as phones reach it. */
  readonly url = `http://${LAB.services}:${LAB.serverPort}`;
  readonly jwtSecret = randomBytes(32).toString('base64url');
  readonly turnSecret = randomBytes(24).toString('base64url');
  /** Logs and coturn's files. */
  readonly dir: string;
  /** How every phone agent exited (code or signal), for the report. */
  readonly agentExits: { name: string; exit: AgentExit }[] = [];
  private readonly ns: Record<Role, string>;
  private readonly at: Record<PhoneName, RouterName | null> = { alice: null, bob: null };
  private readonly routerFaults: Record<RouterName, RouterFaults> = { r1: { ...NO_ROUTER_FAULTS }, r2: { ...NO_ROUTER_FAULTS }, r3: { ...NO_ROUTER_FAULTS } };
  private readonly internetFaults: InternetFaults = { lossPercent: 0, turnBlocked: false, direct: false };
  private readonly services: ChildProcess[] = [];
  private readonly phones: LabPhone[] = [];
  private readonly created: string[] = [];
  private closing: Promise<void> | null = null;

  private constructor(private readonly options: NetLabOptions) {
    const id = `${process.pid}-${++labCount}`;
    this.ns = Object.fromEntries(ROLES.map((role) => [role, `${NS_PREFIX}${id}-${role}`])) as Record<Role, string>;
    this.dir = mkdtempSync(join(tmpdir(), `netlab-${id}-`));
  }

  /** Builds the lab and starts coturn and the server; on any failure tears down what it made, then rejects. */
  static async start(options: NetLabOptions = {}): Promise<NetLab> {
    installExitHooks();
    const lab = new NetLab(options);
    live.add(lab);
    try {
      await removeStaleLabs();
      await lab.createNamespaces();
      await lab.wire();
      await lab.firewall();
      if (options.webhooks) await lab.startWebhookSink();
      await Promise.all([lab.startTurn(), lab.startServer()]);
    } catch (err) {
      await lab.close();
      throw err;
    }
    return lab;
  }

  private get lifetimeS(): number {
    return this.options.lifetimeS ?? 600;
  }

  /** A token for `userId` signed with the lab server's secret. */
  token(userId: string, ttlS = 3600): Promise<string> {
    return mintToken(this.jwtSecret, { userId, name: userId[0]!.toUpperCase() + userId.slice(1), ttlS });
  }

  /** Starts a phone agent in `name`'s namespace and signs it in as `name`. */
  async phone(name: PhoneName, setup: PhoneSetup): Promise<LabPhone> {
    const phone = await LabPhone.start(name, this.ns[name], this.lifetimeS);
    this.phones.push(phone);
    await phone.connect(this.url, await this.token(name), setup.audio, setup.options);
    return phone;
  }

  /** The router a phone is behind now. */
  routerOf(phone: PhoneName): RouterName {
    const router = this.at[phone];
    if (!router) throw new Error(`${phone} is not attached to a router`);
    return router;
  }

  // ---- faults ---------------------------------------------------------------

  /** Drops `percent` % of the UDP that `target` forwards (a phone: the router it is behind now; the internet: UDP reaching its services). 0 clears. */
  async loss(target: PhoneName | RouterName | 'internet', percent: number): Promise<void> {
    if (target === 'internet') {
      this.internetFaults.lossPercent = percent;
      return this.applyInternetFaults();
    }
    await this.setRouterFaults(this.routerFor(target), { lossPercent: percent });
  }

  /** Drops all UDP at the phone's router (media, STUN, TURN); the signalling's TCP stays up. */
  blockUdp(phone: PhoneName): Promise<void> {
    return this.setRouterFaults(this.routerOf(phone), { udpBlocked: true });
  }

  unblockUdp(phone: PhoneName): Promise<void> {
    return this.setRouterFaults(this.routerOf(phone), { udpBlocked: false });
  }

  /** Cuts the phone's TCP to the server at its router: silently (`drop`), or answering each packet with a TCP reset. */
  blockSignalling(phone: PhoneName, mode: 'drop' | 'reset' = 'drop'): Promise<void> {
    return this.setRouterFaults(this.routerOf(phone), { signalling: mode });
  }

  unblockSignalling(phone: PhoneName): Promise<void> {
    return this.setRouterFaults(this.routerOf(phone), { signalling: null });
  }

  /** Nothing from outside reaches coturn (its port and its relay ports). */
  blockTurn(): Promise<void> {
    this.internetFaults.turnBlocked = true;
    return this.applyInternetFaults();
  }

  unblockTurn(): Promise<void> {
    this.internetFaults.turnBlocked = false;
    return this.applyInternetFaults();
  }

  /** Lets the internet forward between routers (direct and server-reflexive paths), or not (the default: TURN only). */
  allowDirect(on: boolean): Promise<void> {
    this.internetFaults.direct = on;
    return this.applyInternetFaults();
  }

  /**
   * A network change: the phone's link to its router goes away, and a link
   * to `router` comes up with a new address and default route. Resolves once
   * the new link is up; the old router's faults stay with the old router.
   */
  async move(phone: PhoneName, router: RouterName): Promise<void> {
    const from = this.routerOf(phone);
    if (from === router) throw new Error(`${phone} is behind ${router} already`);
    const taken = (Object.keys(this.at) as PhoneName[]).find((p) => this.at[p] === router);
    if (taken) throw new Error(`${router}'s LAN has ${taken} on it`);
    await run(['ip', '-n', this.ns[phone], 'link', 'del', `via-${from}`]);
    this.at[phone] = null;
    await this.attach(phone, router);
  }

  /** Packets the fault rules at `target` have dropped since the faults there last changed: proof that a fault bit. */
  async dropped(target: PhoneName | RouterName | 'internet'): Promise<number> {
    const ns = target === 'internet' ? this.ns.net : this.ns[this.routerFor(target)];
    return droppedPackets(await runIn(ns, ['nft', 'list', 'chain', 'inet', 'lab', 'faults']));
  }

  private routerFor(target: PhoneName | RouterName): RouterName {
    return target in ROUTERS ? (target as RouterName) : this.routerOf(target as PhoneName);
  }

  private async setRouterFaults(router: RouterName, change: Partial<RouterFaults>): Promise<void> {
    const faults = Object.assign(this.routerFaults[router], change);
    await runIn(this.ns[router], ['nft', '-f', '-'], routerFaultRules(faults, { address: LAB.services, port: LAB.serverPort }));
  }

  private async applyInternetFaults(): Promise<void> {
    const turn = { port: LAB.turnPort, minRelayPort: LAB.relayPorts[0], maxRelayPort: LAB.relayPorts[1] };
    await runIn(this.ns.net, ['nft', '-f', '-'], internetFaultRules(this.internetFaults, turn));
  }

  // ---- building -------------------------------------------------------------

  private async createNamespaces(): Promise<void> {
    for (const role of ROLES) {
      const ns = this.ns[role];
      try {
        await run(['ip', 'netns', 'add', ns]);
      } catch (err) {
        throw new Error(`the network lab needs root and iproute2 netns: ${(err as Error).message}`);
      }
      this.created.push(ns);
      const forwards = role === 'net' || role in ROUTERS;
      const sysctls = ['net.ipv6.conf.all.disable_ipv6=1', 'net.ipv6.conf.default.disable_ipv6=1', `net.ipv4.ip_forward=${forwards ? 1 : 0}`];
      await runIn(ns, ['sysctl', '-q', '-w', ...sysctls]);
    }
  }

  /** The links and routes: the internet with its sink, a WAN link to each router, each phone on its home router's LAN. */
  private async wire(): Promise<void> {
    const { sink } = LAB;
    const net = [
      'link set lo up',
      `addr add ${LAB.services}/32 dev lo`,
      `link add ${sink.near} type veth peer name ${sink.far}`,
      `link set ${sink.far} address ${sink.mac}`,
      `link set ${sink.near} up`,
      `link set ${sink.far} up`,
      `addr add ${sink.address} dev ${sink.near}`,
      `neigh replace ${sink.gateway} lladdr ${sink.mac} dev ${sink.near} nud permanent`,
      `route add default via ${sink.gateway} dev ${sink.near}`,
    ];
    for (const [router, i] of Object.entries(ROUTERS)) {
      net.push(`link add w${i} type veth peer name wan netns ${this.ns[router as RouterName]}`, `addr add 172.16.${i}.1/30 dev w${i}`, `link set w${i} up`);
    }
    await this.batch('net', net);
    for (const [router, i] of Object.entries(ROUTERS)) {
      await this.batch(router as RouterName, ['link set lo up', `addr add ${LAB.wan(router as RouterName)}/30 dev wan`, 'link set wan up', `route add default via 172.16.${i}.1`]);
    }
    for (const phone of Object.keys(HOME) as PhoneName[]) {
      await this.batch(phone, ['link set lo up']);
      await this.attach(phone, HOME[phone]);
    }
  }

  /** A veth between `phone` (`via-<router>`) and `router`'s LAN (`lan`), addressed, up, and the phone's default route through it. */
  private async attach(phone: PhoneName, router: RouterName): Promise<void> {
    const link = `via-${router}`;
    await run(['ip', '-n', this.ns[router], 'link', 'add', 'lan', 'type', 'veth', 'peer', 'name', link, 'netns', this.ns[phone]]);
    await this.batch(router, [`addr add ${LAB.gateway(router)}/24 dev lan`, 'link set lan up']);
    await this.batch(phone, [`addr add ${LAB.phoneAddress(router)}/24 dev ${link}`, `link set ${link} up`, `route replace default via ${LAB.gateway(router)}`]);
    this.at[phone] = router;
  }

  private async firewall(): Promise<void> {
    await runIn(this.ns.net, ['nft', '-f', '-'], internetRuleset(LAB.sink.far));
    await this.applyInternetFaults();
    for (const router of Object.keys(ROUTERS) as RouterName[]) {
      await runIn(this.ns[router], ['nft', '-f', '-'], routerRuleset());
      await this.setRouterFaults(router, {});
    }
  }

  private batch(role: Role, commands: readonly string[]): Promise<string> {
    return run(['ip', '-n', this.ns[role], '-batch', '-'], commands.join('\n') + '\n');
  }

  // ---- services -------------------------------------------------------------

  private async startTurn(): Promise<void> {
    const log = join(this.dir, 'turn.log');
    // --verbose: coturn logs its listeners (the readiness signal) and each allocation's user (turnAllocations) only then.
    const argv = [
      'turnserver', '-n',
      `--listening-ip=${LAB.services}`, `--relay-ip=${LAB.services}`, `--listening-port=${LAB.turnPort}`,
      `--min-port=${LAB.relayPorts[0]}`, `--max-port=${LAB.relayPorts[1]}`,
      '--verbose', '--use-auth-secret', `--static-auth-secret=${this.turnSecret}`, `--realm=${LAB.realm}`,
      '--no-tls', '--no-dtls', '--no-cli', '--no-rfc5780', '--no-software-attribute', '--no-multicast-peers',
      `--pidfile=${join(this.dir, 'turn.pid')}`, `--userdb=${join(this.dir, 'turndb')}`,
      `--log-file=${log}`, '--simple-log', '--no-stdout-log',
    ];
    const child = this.spawnService(argv, 'turn.out');
    await pollUntil(
      'coturn to open its UDP listener',
      () => {
        if (child.exitCode !== null || child.signalCode !== null) throw new Error(`coturn exited (${child.exitCode ?? child.signalCode}): ${tail(log)}`);
        return tail(log, 100).includes('UDP listener opened');
      },
      15_000,
      50,
    ).catch((err: Error) => {
      throw new Error(`${err.message}\n${tail(log)}`);
    });
  }

  private async startServer(): Promise<void> {
    const transports = this.options.turnTransports ?? ['udp'];
    const env = {
      PORT: String(LAB.serverPort),
      HOST: LAB.services,
      JWT_SECRET: this.jwtSecret,
      NODE_ENV: 'production',
      LOG_LEVEL: 'info',
      TURN_URLS: transports.map((t) => `turn:${LAB.services}:${LAB.turnPort}?transport=${t}`).join(','),
      TURN_SECRET: this.turnSecret,
      TURN_TTL_S: String(this.options.turnTtlS ?? 86_400),
      ...(this.options.webhooks ? { WEBHOOK_URL: `http://${LAB.services}:${LAB.webhookPort}/hooks`, WEBHOOK_SECRET: this.turnSecret } : {}),
      ...this.options.serverEnv,
    };
    const argv = [process.execPath, '--conditions=source', '--import', 'tsx', 'packages/server/src/main.ts'];
    const child = this.spawnService(argv, 'server.log', env);
    const log = join(this.dir, 'server.log');
    await pollUntil(
      'the server to listen',
      () => {
        if (child.exitCode !== null || child.signalCode !== null) throw new Error(`the server exited (${child.exitCode ?? child.signalCode}): ${tail(log)}`);
        return tail(log, 100).includes('switchboard listening');
      },
      30_000,
      50,
    ).catch((err: Error) => {
      throw new Error(`${err.message}\n${tail(log)}`);
    });
  }

  /** The webhook receiver (test/lab/webhook-sink.mjs) in the internet namespace: each event a line of `webhooks.jsonl`. */
  private async startWebhookSink(): Promise<void> {
    const argv = [process.execPath, fileURLToPath(new URL('./webhook-sink.mjs', import.meta.url)), `${LAB.services}:${LAB.webhookPort}`, join(this.dir, 'webhooks.jsonl')];
    const child = this.spawnService(argv, 'webhook-sink.log');
    const log = join(this.dir, 'webhook-sink.log');
    await pollUntil(
      'the webhook receiver to listen',
      () => {
        if (child.exitCode !== null || child.signalCode !== null) throw new Error(`the webhook receiver exited: ${tail(log)}`);
        return tail(log, 10).includes('webhook sink listening');
      },
      15_000,
      50,
    );
  }

  /** The webhook events the server delivered so far (with `webhooks: true`). */
  webhookEvents(): { type: string; callId: string; [field: string]: unknown }[] {
    let text = '';
    try {
      text = readFileSync(join(this.dir, 'webhooks.jsonl'), 'utf8');
    } catch {
      return []; // nothing delivered yet
    }
    return text.split('\n').filter((l) => l.trim()).map((l) => JSON.parse(l) as { type: string; callId: string });
  }

  /** GET `path` of the server's HTTP API as `userId` (from inside the internet namespace); the body as text. */
  async get(path: string, userId: string): Promise<string> {
    const script = 'fetch(process.argv[1], { headers: { authorization: process.argv[2] } }).then(async (r) => { if (!r.ok) throw new Error(String(r.status)); process.stdout.write(await r.text()); })';
    return runIn(this.ns.net, [process.execPath, '-e', script, `${this.url}${path}`, `Bearer ${await this.token(userId)}`]);
  }

  /** Starts a service in the internet namespace, its stdout and stderr appended to `<dir>/<output>`. */
  private spawnService(argv: string[], output: string, env: Record<string, string> = {}): ChildProcess {
    const child = spawnIn(this.ns.net, argv, this.lifetimeS, { cwd: REPO_ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] });
    this.services.push(child);
    const file = join(this.dir, output);
    const append = (chunk: Buffer) => appendFileSync(file, chunk);
    child.stdout?.on('data', append);
    child.stderr?.on('data', append);
    return child;
  }

  /** The allocations coturn granted so far (from its log): the TURN REST user, and the expiry its name carries (epoch s). */
  turnAllocations(): { user: string; expiresAt: number }[] {
    const granted = /user <(\d+):([^>]*)>: incoming packet ALLOCATE processed, success/g;
    return [...tail(join(this.dir, 'turn.log'), Infinity).matchAll(granted)].map((m) => ({ user: m[2]!, expiresAt: Number(m[1]) }));
  }

  /** The last `lines` lines of coturn's or the server's log. */
  log(name: 'turn' | 'server', lines = 40): string {
    return tail(join(this.dir, `${name}.log`), lines);
  }

  // ---- teardown -------------------------------------------------------------

  /** Ends the phones (recording how their agents exited), the server and coturn, and deletes the namespaces. Idempotent. */
  close(): Promise<void> {
    this.closing ??= this.teardown();
    return this.closing;
  }

  private async teardown(): Promise<void> {
    const exits = await Promise.all(this.phones.map(async (phone) => ({ name: phone.name, exit: await phone.close() })));
    this.agentExits.push(...exits);
    await Promise.all(this.services.map((child) => stopGroup(child, 5000)));
    this.teardownSync();
    live.delete(this);
  }

  /** What `exit` and signal handlers can do: SIGKILL every process group, then every process left in the namespaces, then delete them. */
  teardownSync(): void {
    for (const child of [...this.phones.map((p) => ({ pid: p.pid })), ...this.services]) killGroup(child.pid, 'SIGKILL');
    for (const ns of this.created.splice(0)) removeNamespace(ns);
    if (!process.env.NETLAB_KEEP_LOGS) rmSync(this.dir, { recursive: true, force: true });
  }
}

/** Kills whatever runs in `ns` (processes of this lab, or of a dead run's), then deletes it. */
function removeNamespace(ns: string): void {
  let pids: string[] = [];
  try {
    pids = execFileSync('timeout', ['5', 'ip', 'netns', 'pids', ns], { encoding: 'utf8' }).split(/\s+/).filter(Boolean);
  } catch {
    // gone already
  }
  for (const pid of pids) {
    try {
      process.kill(Number(pid), 'SIGKILL');
    } catch {
      // exited meanwhile
    }
  }
  runSync(['ip', 'netns', 'del', ns]);
}

/**
 * Deletes the namespaces of labs whose process no longer exists (a run that
 * was SIGKILLed), and their log directories (a lab that closed keeps none,
 * unless NETLAB_KEEP_LOGS asked it to: those stay).
 */
async function removeStaleLabs(): Promise<void> {
  const list = await run(['ip', 'netns', 'list']).catch(() => '');
  const stale = new Set<string>();
  for (const line of list.split('\n')) {
    const match = new RegExp(`^(${NS_PREFIX}((\\d+)-\\d+)-\\w+)`).exec(line);
    if (!match || Number(match[3]) === process.pid || alive(Number(match[3]))) continue;
    removeNamespace(match[1]!);
    stale.add(match[2]!);
  }
  for (const name of readdirSync(tmpdir())) {
    const id = /^netlab-(\d+-\d+)-/.exec(name)?.[1];
    if (id && stale.has(id)) rmSync(join(tmpdir(), name), { recursive: true, force: true });
  }
}

let hooksInstalled = false;

/** Tears every live lab down at exit and on SIGINT/SIGTERM/SIGHUP (then lets the signal do what it would have done). */
function installExitHooks(): void {
  if (hooksInstalled) return;
  hooksInstalled = true;
  const teardownAll = () => {
    for (const lab of live) lab.teardownSync();
    live.clear();
  };
  process.on('exit', teardownAll);
  for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    process.once(signal, () => {
      teardownAll();
      if (process.listenerCount(signal) === 0) process.kill(process.pid, signal);
    });
  }
}

function tail(file: string, lines = 40): string {
  try {
    return readFileSync(file, 'utf8').split('\n').slice(-lines).join('\n');
  } catch {
    return '(no log)';
  }
}
