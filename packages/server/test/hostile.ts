/**
 * Tools for the hostile-client tests (fuzz, soak, security): a raw Engine.IO /
 * Socket.IO client over `ws` that can send anything and stop reading, bounded
 * polling, metrics, a forced-GC heap reading, a watch on uncaught errors, and a
 * check that nothing of a set of users is left in the store.
 */
import assert from 'node:assert/strict';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import WebSocket from 'ws';
import { userKey, type SwitchboardServer } from '../src/index.js';
import type { TestClient } from './helpers.js';

export { pollUntil } from '../../../test/support/wait.js';
import { pollUntil } from '../../../test/support/wait.js';

/** The value of one unlabelled Prometheus sample from `/metrics`. */
export async function metricValue(server: SwitchboardServer, name: string): Promise<number> {
  const text = await (await fetch(`${server.url}/metrics`)).text();
  const line = text.split('\n').find((l) => l.startsWith(`${name} `));
  assert.ok(line, `metric ${name} is exported`);
  return Number(line.slice(name.length + 1));
}

/** The sum of every sample of a labelled counter (e.g. `switchboard_rate_limited_total`). */
export async function metricSum(server: SwitchboardServer, name: string): Promise<number> {
  const text = await (await fetch(`${server.url}/metrics`)).text();
  return text
    .split('\n')
    .filter((l) => l.startsWith(`${name}{`) || l.startsWith(`${name} `))
    .reduce((sum, l) => sum + Number(l.slice(l.lastIndexOf(' ') + 1)), 0);
}

let gc: (() => void) | undefined;
/** `global.gc`, exposing it at run time when node was started without `--expose-gc`. */
export function forceGc(): void {
  if (!gc) {
    const exposed = (globalThis as { gc?: () => void }).gc;
    if (exposed) gc = exposed;
    else {
      setFlagsFromString('--expose-gc');
      gc = runInNewContext('gc') as () => void;
    }
  }
  gc();
}

/** Heap in use after full collections (a few, with turns of the event loop between them so finalizers run). */
export async function settledHeap(): Promise<number> {
  for (let i = 0; i < 3; i++) {
    forceGc();
    await new Promise((resolve) => setImmediate(resolve));
  }
  return process.memoryUsage().heapUsed;
}

export const MB = 1024 * 1024;

/** Records every uncaught exception and unhandled rejection in this process from now on. */
export function watchProcessErrors(): { errors: unknown[]; stop(): void } {
  const errors: unknown[] = [];
  const onError = (err: unknown) => errors.push(err);
  process.on('uncaughtException', onError);
  process.on('unhandledRejection', onError);
  return {
    errors,
    stop() {
      process.off('uncaughtException', onError);
      process.off('unhandledRejection', onError);
    },
  };
}

/** Every event a client received, in order, whether or not a test consumed it with `next()`. */
export function recordAll(client: TestClient): { event: string; payload: unknown }[] {
  const log: { event: string; payload: unknown }[] = [];
  client.socket.onAny((event: string, payload: unknown) => log.push({ event, payload }));
  return log;
}

export interface UserRef {
  tenant: string;
  id: string;
}

/**
 * Waits (bounded) until the store holds nothing for `users` — no session, no call
 * claim — and the gauges are back to zero with no socket left on the server.
 */
export async function assertNothingLeft(server: SwitchboardServer, users: UserRef[], timeoutMs = 15_000): Promise<void> {
  const keys = users.map((u) => userKey(u.tenant, u.id));
  await pollUntil(
    'the store, the gauges and the socket table to be empty',
    async () => {
      const claims = await server.store.getClaims(keys);
      const held = claims.filter((c) => c !== null);
      if (held.length > 0) return false;
      for (const key of keys) if ((await server.store.sessionsOf(key)).length > 0) return false;
      if (server.io.of('/').sockets.size > 0 || server.io.engine.clientsCount > 0) return false;
      if ((await metricValue(server, 'switchboard_connected_sessions')) !== 0) return false;
      return (await metricValue(server, 'switchboard_active_calls')) === 0;
    },
    timeoutMs,
    50,
  );
  // Said once more as assertions, so a failure names what is left.
  const claims = await server.store.getClaims(keys);
  assert.deepEqual(claims.filter((c) => c !== null), [], 'no call claim is left');
  assert.equal(await metricValue(server, 'switchboard_active_calls'), 0);
  assert.equal(await metricValue(server, 'switchboard_connected_sessions'), 0);
}

export interface RawPacket {
  event: string;
  args: unknown[];
}

export interface RawOptions {
  /** Handshake `auth` of the Socket.IO CONNECT packet. */
  auth?: Record<string, unknown>;
  headers?: Record<string, string>;
  /** Send the Socket.IO CONNECT packet (default true). */
  connect?: boolean;
  /** Extra query string (e.g. `token=...`). */
  query?: string;
}

/**
 * A Socket.IO client written by hand: `ws` speaking the Engine.IO v4 / Socket.IO v5
 * text protocol. It answers pings (unless paused), can send any packet, and can stop
 * reading its TCP socket altogether (`pause()`), like a client on a stalled network.
 */
export class RawClient {
  readonly events: RawPacket[] = [];
  readonly frames: string[] = [];
  /** Resolves when the WebSocket closes, with its close code. */
  readonly closed: Promise<number>;
  private waiters: { match: (p: RawPacket) => boolean; resolve: (p: RawPacket) => void }[] = [];
  private nextAckId = 0;
  private readonly acks = new Map<number, (args: unknown[]) => void>();

  private constructor(readonly ws: WebSocket) {
    this.closed = new Promise((resolve) => ws.once('close', (code) => resolve(code)));
    ws.on('message', (data, isBinary) => {
      if (isBinary) return;
      const text = data.toString();
      this.frames.push(text);
      if (text === '2') {
        ws.send('3');
        return;
      }
      const m = /^4([236])(\d*)(\[.*)$/s.exec(text);
      if (!m) return;
      const [, type, id, json] = m;
      const args = JSON.parse(json!) as unknown[];
      if (type === '3') {
        this.acks.get(Number(id))?.(args);
        this.acks.delete(Number(id));
        return;
      }
      const packet = { event: String(args[0]), args: args.slice(1) };
      const i = this.waiters.findIndex((w) => w.match(packet));
      if (i >= 0) this.waiters.splice(i, 1)[0]!.resolve(packet);
      else this.events.push(packet);
    });
  }

  /** Opens the WebSocket (and, by default, connects the default namespace). Rejects when the upgrade is refused. */
  static async open(server: { port: number }, options: RawOptions = {}): Promise<RawClient> {
    const query = options.query ? `&${options.query}` : '';
    const ws = new WebSocket(`ws://127.0.0.1:${server.port}/socket.io/?EIO=4&transport=websocket${query}`, {
      headers: options.headers ?? {},
    });
    await new Promise<void>((resolve, reject) => {
      ws.once('open', () => resolve());
      ws.once('error', reject);
      ws.once('unexpected-response', (_req, res) => reject(new Error(`upgrade refused: HTTP ${res.statusCode}`)));
    });
    const client = new RawClient(ws);
    if (options.connect !== false) {
      const connected = client.frame((f) => f.startsWith('40') || f.startsWith('44'));
      ws.send(`40${options.auth ? JSON.stringify(options.auth) : ''}`);
      const answer = await connected;
      if (answer.startsWith('44')) throw new Error(`namespace connect refused: ${answer}`);
    }
    return client;
  }

  /** Sends a Socket.IO EVENT packet. */
  emit(event: string, ...args: unknown[]): void {
    this.ws.send(`42${JSON.stringify([event, ...args])}`);
  }

  /** Sends a Socket.IO EVENT packet with an ack id and resolves with the ack's arguments. */
  request(event: string, payload: unknown, timeoutMs = 5000): Promise<unknown> {
    const id = this.nextAckId++;
    this.ws.send(`42${id}${JSON.stringify([event, payload])}`);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no ack for ${event} within ${timeoutMs} ms`)), timeoutMs);
      this.acks.set(id, (args) => (clearTimeout(timer), resolve(args[0])));
    });
  }

  /** Sends any text frame (an Engine.IO packet). */
  send(frame: string | Buffer): void {
    this.ws.send(frame);
  }

  /** The next event named `event` (already received or still to come). */
  next(event: string, timeoutMs = 5000): Promise<RawPacket> {
    const match = (p: RawPacket) => p.event === event;
    const i = this.events.findIndex(match);
    if (i >= 0) return Promise.resolve(this.events.splice(i, 1)[0]!);
    return new Promise((resolve, reject) => {
      const waiter = { match, resolve: (p: RawPacket) => (clearTimeout(timer), resolve(p)) };
      const timer = setTimeout(() => {
        this.waiters = this.waiters.filter((w) => w !== waiter);
        reject(new Error(`timed out waiting for ${event}; got ${JSON.stringify(this.events.map((e) => e.event))}`));
      }, timeoutMs);
      this.waiters.push(waiter);
    });
  }

  /** Stops reading the TCP socket: the server's writes pile up in the kernel, then in its own buffers. */
  pause(): void {
    (this.ws as unknown as { _socket: { pause(): void } })._socket.pause();
  }

  terminate(): void {
    this.ws.terminate();
  }

  private frame(match: (f: string) => boolean, timeoutMs = 5000): Promise<string> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('no answer to the namespace CONNECT')), timeoutMs);
      const onMessage = (data: WebSocket.RawData, isBinary: boolean) => {
        const text = isBinary ? '' : data.toString();
        if (match(text)) {
          clearTimeout(timer);
          this.ws.off('message', onMessage);
          resolve(text);
        }
      };
      this.ws.on('message', onMessage);
      this.ws.once('close', () => (clearTimeout(timer), reject(new Error('closed before the namespace CONNECT was answered'))));
    });
  }
}
