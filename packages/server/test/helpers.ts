/**
 * Test harness: a real server on a free port, real socket.io-client
 * connections over loopback, and an event inbox that waits with a bounded
 * timeout (never a sleep).
 */
import { after, before } from 'node:test';
import { io as connect, type Socket } from 'socket.io-client';
import type {
  AckResponse,
  AuthSuccess,
  ClientToServerEvents,
  ServerEventName,
  ServerPayload,
  ServerToClientEvents,
  ClientEventName,
} from '@switchboard/protocol';
import { CONTROL_EVENTS, RELAY_EVENTS } from '@switchboard/protocol';
import type { SwitchboardServer } from '../src/index.js';
import type { MintOptions } from '../src/auth/tokens.js';

/** Every event a client may send, in the contract's order. */
export const CLIENT_EVENTS: readonly ClientEventName[] = [
  'auth:handshake',
  'reconnect:attempt',
  'user:list',
  'call:request',
  'call:accept',
  'call:reject',
  'call:cancel',
  'call:end',
  ...CONTROL_EVENTS,
  ...RELAY_EVENTS,
];

export { startTestServer, TEST_SECRET, tokenFor, WAIT_MS } from '../../../test/support/server.js';
import { startTestServer, tokenFor, WAIT_MS } from '../../../test/support/server.js';
import { dropPrefix, freshPrefix, sharedRedis } from '../../../test/support/redis.js';

type Received = { event: string; payload: unknown };

export class TestClient {
  readonly inbox: Received[] = [];
  private waiters: { match: (r: Received) => boolean; resolve: (r: Received) => void }[] = [];
  auth: AuthSuccess | undefined;
  /** Resolves with the disconnect reason, whenever it happens (even before anyone waits). */
  readonly disconnected: Promise<string>;

  constructor(readonly socket: Socket<ServerToClientEvents, ClientToServerEvents>) {
    socket.onAny((event: string, payload: unknown) => this.push({ event, payload }));
    this.disconnected = new Promise((resolve) => socket.once('disconnect', (reason) => resolve(reason)));
  }

  private push(r: Received): void {
    const i = this.waiters.findIndex((w) => w.match(r));
    if (i >= 0) {
      const [w] = this.waiters.splice(i, 1);
      w!.resolve(r);
    } else {
      this.inbox.push(r);
    }
  }

  /** The next `event` (matching `filter`), already received or still to come, within `timeoutMs`. */
  next<E extends ServerEventName>(
    event: E,
    filter: (payload: ServerPayload<E>) => boolean = () => true,
    timeoutMs = WAIT_MS,
  ): Promise<ServerPayload<E>> {
    const match = (r: Received) => r.event === event && filter(r.payload as ServerPayload<E>);
    const i = this.inbox.findIndex(match);
    if (i >= 0) return Promise.resolve(this.inbox.splice(i, 1)[0]!.payload as ServerPayload<E>);
    return new Promise((resolve, reject) => {
      const waiter = { match, resolve: (r: Received) => (clearTimeout(timer), resolve(r.payload as ServerPayload<E>)) };
      const timer = setTimeout(() => {
        this.waiters = this.waiters.filter((w) => w !== waiter);
        reject(new Error(`timed out after ${timeoutMs} ms waiting for ${event}; inbox: ${this.describeInbox()}`));
      }, timeoutMs);
      this.waiters.push(waiter);
    });
  }

  /** Drops everything received so far. */
  clear(): void {
    this.inbox.length = 0;
  }

  /** Events of this name received and not yet consumed. */
  received<E extends ServerEventName>(event: E): ServerPayload<E>[] {
    return this.inbox.filter((r) => r.event === event).map((r) => r.payload as ServerPayload<E>);
  }

  /** Emits anything, bypassing the typed event map (for malformed or forged input). */
  raw(event: string, ...args: unknown[]): void {
    (this.socket as unknown as Socket).emit(event, ...args);
  }

  /** Emits with an ack and resolves with the ack's answer. */
  request<T extends object = object>(event: string, payload?: unknown, timeoutMs = WAIT_MS): Promise<AckResponse<T>> {
    const args = payload === undefined ? [] : [payload];
    return (this.socket as unknown as Socket).timeout(timeoutMs).emitWithAck(event, ...args) as Promise<AckResponse<T>>;
  }

  /**
   * A barrier: once the server has answered this, it has already sent this socket
   * everything it sent before handling it (events to one socket stay in order).
   */
  async sync(): Promise<void> {
    await this.request('user:list');
    const i = this.inbox.findLastIndex((r) => r.event === 'user:list');
    if (i >= 0) this.inbox.splice(i, 1);
  }

  close(): void {
    this.socket.disconnect();
  }

  private describeInbox(): string {
    return JSON.stringify(this.inbox.map((r) => r.event));
  }
}

export interface ConnectOptions {
  /** Send the token in the handshake `auth` (default) or by `auth:handshake`. */
  via?: 'handshake' | 'event' | 'none';
  token?: string;
  extraHeaders?: Record<string, string>;
  query?: Record<string, string>;
  /** The loopback address to connect from (127.0.0.2 …): another client address, as the server sees it. */
  localAddress?: string;
}

/** Opens a socket (websocket transport) and waits until it is connected. */
export async function openSocket(server: { url: string }, options: ConnectOptions = {}): Promise<TestClient> {
  const auth = options.via === 'handshake' && options.token ? { token: options.token } : {};
  const socket = connect(server.url, {
    transports: ['websocket'],
    reconnection: false,
    forceNew: true,
    auth,
    ...(options.extraHeaders ? { extraHeaders: options.extraHeaders } : {}),
    ...(options.query ? { query: options.query } : {}),
    ...(options.localAddress ? { localAddress: options.localAddress } : {}),
  }) as Socket<ServerToClientEvents, ClientToServerEvents>;
  const client = new TestClient(socket);
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('connect timed out')), WAIT_MS);
    socket.once('connect', () => (clearTimeout(timer), resolve()));
    socket.once('connect_error', (err) => (clearTimeout(timer), reject(err)));
  });
  return client;
}

/** A connected, authenticated client for `userId`. */
export async function signIn(
  server: { url: string },
  userId: string,
  options: Omit<MintOptions, 'userId'> & { via?: 'handshake' | 'event'; localAddress?: string } = {},
): Promise<TestClient> {
  const { via = 'handshake', localAddress, ...mint } = options;
  const token = await tokenFor(userId, mint);
  const client = await openSocket(server, { via, token, ...(localAddress ? { localAddress } : {}) });
  if (via === 'event') client.socket.emit('auth:handshake', { token });
  client.auth = await client.next('auth:success');
  await client.next('user:list');
  return client;
}

/** Places a call from `caller` to `callee`'s devices and waits until every device rings. */
export async function ring(caller: TestClient, calleeDevices: TestClient[], to: string, extra: { callId?: string } = {}): Promise<string> {
  const ack = await caller.request<{ callId: string }>('call:request', { to, ...extra });
  if (!ack.ok) throw new Error(`call:request failed: ${ack.error.code}`);
  for (const device of calleeDevices) await device.next('call:incoming', (p) => p.callId === ack.callId);
  return ack.callId;
}

/** Rings and answers: returns the callId of an active call. */
export async function establish(caller: TestClient, callee: TestClient, to: string): Promise<string> {
  const callId = await ring(caller, [callee], to);
  const ack = await callee.request('call:accept', { callId });
  if (!ack.ok) throw new Error(`call:accept failed: ${ack.error.code}`);
  await caller.next('call:accepted', (p) => p.callId === callId);
  return callId;
}

export function expectOk<T extends object>(ack: AckResponse<T>): asserts ack is { ok: true } & T {
  if (!ack.ok) throw new Error(`expected ok, got ${ack.error.code}: ${ack.error.message}`);
}

export function errorCode(ack: AckResponse): string | undefined {
  return ack.ok ? undefined : ack.error.code;
}

/**
 * One real server for a `describe` block and the clients its tests sign in,
 * all closed after it. `names()` hands out fresh user ids, so tests never see
 * each other's calls.
 */
export function serverSuite(env: Record<string, string> = {}) {
  let server: SwitchboardServer | undefined;
  const clients: TestClient[] = [];
  let n = 0;
  before(async () => {
    server = await startTestServer(env);
  });
  after(async () => {
    clients.forEach((c) => c.close());
    await server?.close();
  });
  const suite = {
    get server(): SwitchboardServer {
      if (!server) throw new Error('the suite server is not started yet');
      return server;
    },
    names: (...roles: string[]) => roles.map((r) => `${r}${++n}`),
    /** Signs `id` in; closed with the suite. */
    user: async (id: string, options: Parameters<typeof signIn>[2] = {}) => suite.keep(await signIn(suite.server, id, options)),
    /** Closes `client` with the suite. */
    keep: (client: TestClient) => {
      clients.push(client);
      return client;
    },
  };
  return suite;
}

/** A caller's server and the one a late device signs in on (the same one in memory mode), and how to let both go. */
export type TwoNodes = { caller: SwitchboardServer; late: SwitchboardServer; close(): Promise<void> };

/** One server in memory mode, for the caller and the late device alike. */
export async function oneNode(
  env: Record<string, string> = {},
  start: (env: Record<string, string>) => Promise<SwitchboardServer> = startTestServer,
): Promise<TwoNodes> {
  const server = await start(env);
  return { caller: server, late: server, close: () => server.close() };
}

/** Two servers on the shared Redis under a fresh key prefix. */
export async function twoNodesOnRedis(
  env: Record<string, string>,
  start: (env: Record<string, string>) => Promise<SwitchboardServer> = startTestServer,
): Promise<TwoNodes> {
  const redis = await sharedRedis();
  const prefix = freshPrefix();
  const shared = { ...env, REDIS_URL: redis.url, REDIS_PREFIX: prefix };
  const [caller, late] = [await start(shared), await start(shared)];
  return {
    caller,
    late,
    async close() {
      await Promise.all([caller.close(), late.close()]);
      await dropPrefix(redis.url, prefix);
      await redis.release();
    },
  };
}
