/**
 * Fuzz: hostile sockets throw random events and payloads at a live server while
 * well-behaved pairs place whole calls through the storm.
 *
 * Each round is drawn by fast-check from a fixed seed (FUZZ_SEED; round n uses
 * FUZZ_SEED + n, printed with the round's plan on failure, so it can be replayed).
 * A round: 2–6 hostile sockets (signed in or not) throw random events and
 * payloads, malformed packets and binary frames; two fuzz "players" play a
 * call's events in random order between them; 1–3 legitimate pairs, in their own
 * tenant, each complete a whole call. Rounds go on until FUZZ_SECONDS (30) is
 * spent: 60 % against a server with rate limits off (every payload reaches its
 * handler), 40 % with the default limits (the storm is limited and cut). For long
 * runs lift the runner's 120 s limit:
 *   FUZZ_SECONDS=600 node --conditions=source --import tsx --test --test-timeout=0 packages/server/test/fuzz.test.ts
 *
 * After every round: nothing uncaught in the process, every legitimate call
 * completed, no event or ack outside its call or tenant, every ack answered (or
 * its socket closed) and well formed, no prototype polluted. At the end: alive
 * and ready, no session, claim, socket or active call left, the per-address gate
 * released, and the heap back near where it started.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import { io as connect, type Socket } from 'socket.io-client';
import { SignJWT } from 'jose';
import { CONTROL_EVENTS, ERROR_CODES, RELAY_EVENTS, type ClientToServerEvents, type ServerToClientEvents } from '@switchboard/protocol';
import { MemoryStore, type SwitchboardServer } from '../src/index.js';
import { TOMBSTONE_MS } from '../src/transport/calls.js';
import { CLIENT_EVENTS, expectOk, signIn, startTestServer, TEST_SECRET, TestClient, tokenFor } from './helpers.js';
import { assertNothingLeft, MB, metricSum, recordAll, settledHeap, watchProcessErrors, type UserRef } from './hostile.js';

const FUZZ_SECONDS = Number(process.env.FUZZ_SECONDS ?? 30);
const FUZZ_SEED = Number(process.env.FUZZ_SEED ?? 0x5b0a2d);
/** Generous waits: the fuzz runs beside other test files on a small machine. */
const STEP_MS = 15_000;
const ACK_MS = 10_000;
const HEAP_BOUND = 50 * MB;
/**
 * User ids come from a pool of this many rounds, so what the store keeps by design per user
 * (its history, capped at 5 entries here) stays bounded however long the fuzz runs.
 */
const USER_POOL = 64;
/**
 * Legitimate pairs come from a larger pool: one pair may ring at most 6 times a minute
 * (`PAIR_REQUESTS`), and with 64 a fast machine reached a slot's 7th round (round 384) within the minute.
 */
const LEGIT_POOL = 4 * USER_POOL;
/** Where a legitimate pair connects from: an address of its own, as real users have (the fuzzers all come from 127.0.0.1). */
const legitAddress = (round: number, k: number) => `127.0.${2 + ((round + 1) % 250)}.${2 + k}`;
/** Recent legitimate calls and sessions the fuzzers aim at (and that the isolation check looks for). */
const RECENT = 256;
const remember = (list: string[], ...items: string[]) => {
  list.push(...items);
  if (list.length > RECENT) list.splice(0, list.length - RECENT);
};

// ---------------------------------------------------------------- what a round is

/** A symbolic value, resolved when the action runs (a live callId, a session id, a token…). */
type Ref =
  | 'legitCall'
  | 'ownCall'
  | 'legitSession'
  | 'ownSession'
  | 'fuzzUser'
  | 'legitUser'
  | 'validToken'
  | 'otherTenantToken'
  | 'expiredToken'
  | 'noneToken'
  | 'forgedToken'
  | 'buffer'
  | 'manyBuffers'
  | 'deep';
const REF_KEY = '$$fuzzRef';
const ref = (r: Ref) => fc.constant({ [REF_KEY]: r });

type Auth =
  | 'none'
  | 'handshake'
  | 'event'
  | 'weird-auth'
  | 'bad-token'
  | 'query-token'
  | 'resume-foreign'
  /** Sign-in sequences: two `auth:handshake` a few loop turns apart; a handshake `auth` raced by a resume; leave the namespace and join again on the same connection. */
  | 'double-handshake'
  | 'handshake-resume'
  | 'rejoin';
type Action =
  | { kind: 'emit'; event: string | number; args: unknown[]; ack: boolean }
  | { kind: 'play'; event: string; ack: boolean; pick: number }
  | { kind: 'frame'; frame: string }
  | { kind: 'engine'; type: 'ping' | 'pong' | 'noop' | 'upgrade' | 'close' | 'binary' }
  | { kind: 'yield' }
  | { kind: 'leave'; how: 'disconnect' | 'drop' };
interface SocketPlan {
  auth: Auth;
  user: number;
  tenant: '' | 'other';
  weirdAuth: unknown;
  actions: Action[];
}
interface Round {
  sockets: SocketPlan[];
  /**
   * Two fuzz users that only play a call's events, in random order and with random timing (ring,
   * answer, relay, controls, hang up, glare, repeats), while the hostile sockets storm around them.
   */
  players: [Action[], Action[]];
  legitPairs: number;
}

/** Names the Socket.IO client refuses to emit: sent as hand-made packets. */
const CLIENT_RESERVED = ['connect', 'connect_error', 'disconnect', 'disconnecting', 'newListener', 'removeListener'];
const ODD_EVENTS = [
  ...CLIENT_RESERVED,
  'error',
  'connection',
  'message',
  '__proto__',
  'constructor',
  'toString',
  'hasOwnProperty',
  'valueOf',
  'prototype',
  'auth:success',
  'call:incoming',
  'call:error',
  'user:online',
  'reconnect:success',
  '',
];
const KEYS = ['__proto__', 'constructor', 'prototype', 'callId', 'from', 'userId', 'by', 'to', 'token', 'sdp', 'candidate', 'sessionId', '_placeholder', 'num', 'media'];

/** Mostly under the 64 KiB message limit (answered), sometimes over it (the transport may close). */
const hugeString = fc.integer({ min: 1_000, max: 70_000 }).map((n) => 'x'.repeat(n));
const leaf = fc.oneof(
  { weight: 4, arbitrary: fc.string({ maxLength: 30 }) },
  { weight: 1, arbitrary: fc.string({ maxLength: 30, unit: 'binary' }) },
  { weight: 2, arbitrary: fc.integer() },
  { weight: 1, arbitrary: fc.double() },
  { weight: 1, arbitrary: fc.boolean() },
  { weight: 1, arbitrary: fc.constant(null) },
  { weight: 1, arbitrary: hugeString },
  { weight: 1, arbitrary: ref('buffer') },
);
const key = fc.oneof(fc.string({ maxLength: 12 }), fc.constantFrom(...KEYS));
const { value: json } = fc.letrec<{ value: unknown }>((tie) => ({
  value: fc.oneof(
    { depthSize: 'small', withCrossShrink: true },
    leaf,
    fc.array(tie('value'), { maxLength: 4 }),
    fc.dictionary(key, tie('value'), { maxKeys: 4 }),
  ),
}));
/** Nesting far deeper than any payload, as objects or arrays (built when the action runs, so a plan stays printable). */
const deep = fc.record({ [REF_KEY]: fc.constant('deep' as const), depth: fc.integer({ min: 10, max: 2_000 }), array: fc.boolean() });
const polluting = fc.constantFrom<unknown>(
  JSON.parse('{"__proto__":{"polluted":"yes"}}'),
  JSON.parse('{"callId":"3b2f7a4e-1c9d-4e8a-9f00-123456789abc","__proto__":{"polluted":"yes","isAdmin":true}}'),
  { constructor: { prototype: { polluted: 'yes' } } },
  JSON.parse('{"to":"x","constructor":{"prototype":{"polluted":"yes"}}}'),
  { _placeholder: true, num: 0 },
  { _placeholder: true, num: '__proto__' },
  JSON.parse('{"candidate":{"__proto__":{"polluted":"yes"}},"callId":"x"}'),
);
const callIdArb = fc.oneof(
  { weight: 4, arbitrary: ref('legitCall') },
  { weight: 3, arbitrary: ref('ownCall') },
  { weight: 2, arbitrary: fc.uuid() },
  { weight: 1, arbitrary: fc.string({ maxLength: 50 }) },
  { weight: 1, arbitrary: json },
);
const userArb = fc.oneof(
  { weight: 4, arbitrary: ref('fuzzUser') },
  { weight: 2, arbitrary: ref('legitUser') },
  { weight: 1, arbitrary: fc.string({ maxLength: 300 }) },
  { weight: 1, arbitrary: json },
);
const tokenArb = fc.oneof(
  ref('validToken'),
  ref('otherTenantToken'),
  ref('expiredToken'),
  ref('noneToken'),
  ref('forgedToken'),
  fc.string({ maxLength: 100 }),
  hugeString,
  json,
);
const sessionArb = fc.oneof(ref('legitSession'), ref('ownSession'), fc.string({ maxLength: 200 }), json);
const shaped = fc.oneof(
  fc.record({ callId: callIdArb }),
  fc.record({ to: userArb, callId: fc.option(callIdArb, { nil: undefined }), media: fc.option(fc.oneof(fc.record({ audio: fc.boolean(), video: fc.boolean() }), json), { nil: undefined }) }),
  fc.record({ callId: callIdArb, sdp: fc.oneof(fc.string({ maxLength: 200 }), fc.integer({ min: 30_000, max: 40_000 }).map((n) => 'v'.repeat(n)), json) }),
  fc.record({
    callId: callIdArb,
    candidate: fc.oneof(
      fc.constant(null),
      fc.record({ candidate: fc.oneof(fc.string({ maxLength: 100 }), fc.constant('c'.repeat(1025))), sdpMid: fc.option(fc.string({ maxLength: 70 })), sdpMLineIndex: fc.option(fc.integer({ min: -5, max: 2000 })) }),
      json,
    ),
  }),
  fc.record({ token: tokenArb }),
  fc.record({ token: tokenArb, sessionId: sessionArb }),
);
/** A payload shaped like a real one, with extra keys (forged identities, prototype keys) spread over it. */
const shapedWithExtras = fc.tuple(shaped, fc.dictionary(key, json, { maxKeys: 3 })).map(([p, extra]) => ({ ...extra, ...p }));
const payload = fc.oneof(
  { weight: 8, arbitrary: shapedWithExtras },
  { weight: 3, arbitrary: json },
  { weight: 1, arbitrary: deep },
  { weight: 1, arbitrary: polluting },
  { weight: 1, arbitrary: ref('manyBuffers') },
);
const eventArb = fc.oneof(
  { weight: 12, arbitrary: fc.constantFrom<string | number>(...CLIENT_EVENTS) },
  { weight: 3, arbitrary: fc.constantFrom<string | number>(...ODD_EVENTS) },
  { weight: 1, arbitrary: fc.string({ maxLength: 40 }) },
  { weight: 1, arbitrary: fc.integer({ min: -5, max: 1e9 }) },
  { weight: 1, arbitrary: fc.integer({ min: 65, max: 20_000 }).map((n) => 'e'.repeat(n)) },
);
/** Hand-made Socket.IO packets: malformed, out of place, namespaces that do not exist, binary placeholders without their binary. */
const frameArb = fc.oneof(
  fc.constantFrom(
    '2',
    '2[]',
    '2{}',
    '2"x"',
    '2[1,2]',
    '2[null]',
    '2[{"a":1}]',
    '2[["nested"]]',
    '2[true]',
    '299999999999999999999999["call:end",{}]',
    '2-1["x"]',
    '20["user:list"]',
    '51-["webrtc:offer",{"_placeholder":true,"num":0}]',
    '51-["x",{"_placeholder":true,"num":"__proto__"}]',
    '52-["x",{"_placeholder":true,"num":5}]',
    '599999-["x"]',
    '5-["x"]',
    '5abc-["x"]',
    '3["x"]',
    '31["x"]',
    '3',
    '61-[{"_placeholder":true,"num":0}]',
    '0',
    '0{}',
    '0/admin,',
    '0/admin,{"token":"x"}',
    '1',
    '1/admin,',
    '4{}',
    '4"x"',
    '9',
    '2/nope,["x"]',
    '2/,["x"]',
    '2/',
    '',
  ),
  fc.string({ maxLength: 200 }).map((s) => `2${s}`),
  fc.string({ maxLength: 200 }),
  fc.tuple(fc.constantFrom(...ODD_EVENTS, ...CLIENT_EVENTS), fc.option(fc.nat(1000)), json).map(
    ([e, id, v]) => `2${id ?? ''}${JSON.stringify([e, v], (_k, x: unknown) => (isRef(x) ? String(x[REF_KEY]) : x))}`,
  ),
);
/** The events of a call, weighted so that calls among the fuzzers do ring, get answered, relay and end. */
const playEventArb = fc.oneof(
  { weight: 4, arbitrary: fc.constant('call:request') },
  { weight: 4, arbitrary: fc.constant('call:accept') },
  { weight: 4, arbitrary: fc.constantFrom(...RELAY_EVENTS) },
  { weight: 2, arbitrary: fc.constantFrom(...CONTROL_EVENTS) },
  { weight: 2, arbitrary: fc.constant('call:end') },
  { weight: 1, arbitrary: fc.constantFrom('call:reject', 'call:cancel', 'user:list', 'auth:handshake', 'reconnect:attempt') },
);
const actionArb: fc.Arbitrary<Action> = fc.oneof(
  { weight: 12, arbitrary: fc.record({ kind: fc.constant('play' as const), event: playEventArb, ack: fc.boolean(), pick: fc.nat(7) }) },
  { weight: 16, arbitrary: fc.record({ kind: fc.constant('emit' as const), event: eventArb, args: fc.array(payload, { maxLength: 3 }), ack: fc.boolean() }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('frame' as const), frame: frameArb }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('engine' as const), type: fc.constantFrom('ping' as const, 'pong' as const, 'noop' as const, 'upgrade' as const, 'close' as const, 'binary' as const) }) },
  { weight: 3, arbitrary: fc.constant({ kind: 'yield' as const }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('leave' as const), how: fc.constantFrom('disconnect' as const, 'drop' as const) }) },
);
const socketPlanArb: fc.Arbitrary<SocketPlan> = fc.record({
  auth: fc.oneof(
    { weight: 5, arbitrary: fc.constant<Auth>('handshake') },
    { weight: 2, arbitrary: fc.constant<Auth>('event') },
    { weight: 3, arbitrary: fc.constant<Auth>('none') },
    { weight: 1, arbitrary: fc.constantFrom<Auth>('weird-auth', 'bad-token', 'query-token', 'resume-foreign') },
    { weight: 2, arbitrary: fc.constantFrom<Auth>('double-handshake', 'handshake-resume', 'rejoin') },
  ),
  user: fc.nat(3),
  tenant: fc.constantFrom<'' | 'other'>('', '', 'other'),
  weirdAuth: fc.oneof(json, polluting, fc.record({ token: tokenArb })),
  actions: fc.array(actionArb, { minLength: 1, maxLength: 30 }),
});
const playerArb: fc.Arbitrary<Action[]> = fc.array(
  fc.oneof(
    { weight: 6, arbitrary: fc.record({ kind: fc.constant('play' as const), event: playEventArb, ack: fc.boolean(), pick: fc.nat(7) }) },
    { weight: 1, arbitrary: fc.constant({ kind: 'yield' as const }) },
  ),
  { minLength: 5, maxLength: 40 },
);
const roundArb: fc.Arbitrary<Round> = fc.record({
  sockets: fc.array(socketPlanArb, { minLength: 2, maxLength: 6 }),
  players: fc.tuple(playerArb, playerArb),
  legitPairs: fc.integer({ min: 1, max: 3 }),
});

function isRef(x: unknown): x is Record<typeof REF_KEY, Ref> {
  return typeof x === 'object' && x !== null && REF_KEY in x;
}

// ---------------------------------------------------------------- running it

interface Shared {
  server: SwitchboardServer;
  /** Every legitimate callId so far (live and ended). */
  legitCalls: string[];
  legitSessions: string[];
  legitUsers: string[];
  /** Sessions handed to fuzzers (what a racing resume aims at). */
  fuzzSessions: string[];
  /** Every user that may have signed in, for the end-of-run state check (by tenant and id). */
  users: Map<string, UserRef>;
  tokens: { expired: string; none: string; forged: string };
  /** Acks that were never answered while their socket stayed open. */
  unanswered: string[];
  /** Acks answered with something that is not `{ ok: true }` or `{ ok: false, error: { code, message } }`. */
  malformed: string[];
  /** Ack answers to fuzzers that name a legitimate user or call. */
  leaked: string[];
  stats: { rounds: number; actions: number; skipped: number; cut: number; legitCalls: number; setupMs: number[]; slowestRoundMs: number; callsEnded: number; answered: number };
}

const pick = <T>(list: T[], salt: number): T | undefined => (list.length === 0 ? undefined : list[Math.abs(salt) % list.length]);

/** One hostile socket: signs in (or not) as its plan says, then throws its actions at the server. */
class Fuzzer {
  client: TestClient | null = null;
  readonly log: { event: string; payload: unknown }[] = [];
  readonly acks: Promise<void>[] = [];
  ownCalls: string[] = [];
  ownSessions: string[] = [];
  private waitedToAnswer = false;
  private salt = 0;

  constructor(
    private readonly shared: Shared,
    readonly plan: SocketPlan,
    readonly userId: string,
    private readonly token: string,
    private readonly otherTenantToken: string,
    /** The other fuzz users of this round that sign in to the same tenant: whom its calls go to. */
    private readonly peers: string[] = [],
  ) {}

  private resolve(value: unknown, depth = 0): unknown {
    if (depth > 100) return value; // generated values are shallow; only 'deep' refs nest further
    if (isRef(value)) {
      const s = this.shared;
      const salt = this.salt++;
      switch (value[REF_KEY]) {
        case 'legitCall':
          return pick(s.legitCalls, salt) ?? randomUUID();
        case 'ownCall':
          return pick(this.ownCalls, salt) ?? randomUUID();
        case 'legitSession':
          return pick(s.legitSessions, salt) ?? 'no-session-yet';
        case 'ownSession':
          return pick(this.ownSessions, salt) ?? 'no-session-yet';
        case 'fuzzUser':
          return `fz-${this.userId.split('-')[1]}-${salt % 4}`;
        case 'legitUser':
          return pick(s.legitUsers, salt) ?? 'legit-nobody';
        case 'validToken':
          return this.token;
        case 'otherTenantToken':
          return this.otherTenantToken;
        case 'expiredToken':
          return s.tokens.expired;
        case 'noneToken':
          return s.tokens.none;
        case 'forgedToken':
          return s.tokens.forged;
        case 'buffer':
          return Buffer.alloc(salt % 64, salt % 256);
        case 'manyBuffers':
          return Array.from({ length: 11 + (salt % 30) }, (_, i) => Buffer.from([i]));
        case 'deep': {
          const { depth: levels, array } = value as unknown as { depth: number; array: boolean };
          let v: unknown = 'bottom';
          for (let i = 0; i < levels; i++) v = array ? [v] : { a: v };
          return v;
        }
      }
    }
    if (Array.isArray(value)) return value.map((v) => this.resolve(v, depth + 1));
    if (typeof value === 'object' && value !== null && !Buffer.isBuffer(value)) {
      const out: Record<string, unknown> = Object.getPrototypeOf(value) === null ? Object.create(null) : {};
      for (const k of Object.keys(value)) {
        // defineProperty: a "__proto__" key stays an own key, as it would be on the wire.
        Object.defineProperty(out, k, { value: this.resolve((value as Record<string, unknown>)[k], depth + 1), enumerable: true, writable: true, configurable: true });
      }
      return out;
    }
    return value;
  }

  async open(): Promise<void> {
    const { plan, shared } = this;
    let auth: unknown = {};
    let query: Record<string, string> | undefined;
    if (plan.auth === 'handshake' || plan.auth === 'handshake-resume' || plan.auth === 'rejoin') auth = { token: this.token };
    if (plan.auth === 'weird-auth') auth = this.resolve(plan.weirdAuth);
    if (plan.auth === 'bad-token') auth = { token: shared.tokens.forged };
    if (plan.auth === 'query-token') query = { token: this.token };
    const socket = connect(shared.server.url, {
      transports: ['websocket'],
      reconnection: false,
      forceNew: true,
      timeout: STEP_MS,
      auth: auth as Record<string, unknown>,
      ...(query ? { query } : {}),
    }) as Socket<ServerToClientEvents, ClientToServerEvents>;
    const client = new TestClient(socket);
    socket.onAny((event: string, p: unknown) => {
      this.log.push({ event, payload: p });
      const payload = p as { callId?: unknown; sessionId?: unknown } | null;
      if (typeof payload?.callId === 'string' && event !== 'call:error') this.ownCalls.push(payload.callId);
      if ((event === 'auth:success' || event === 'reconnect:success') && typeof payload?.sessionId === 'string') {
        this.ownSessions.push(payload.sessionId);
        remember(this.shared.fuzzSessions, payload.sessionId);
      }
    });
    const opened = await new Promise<boolean>((resolve) => {
      const timer = setTimeout(() => resolve(false), STEP_MS);
      socket.once('connect', () => (clearTimeout(timer), resolve(true)));
      socket.once('connect_error', () => (clearTimeout(timer), resolve(false)));
      // A CONNECT the server cannot parse (e.g. an auth that is not an object) closes the connection.
      socket.once('disconnect', () => (clearTimeout(timer), resolve(false)));
    });
    if (!opened) {
      socket.close();
      return;
    }
    this.client = client;
    // A socket signed in by its handshake waits for the answer (a fuzzer that acts before signing in is the 'none' and 'event' plans).
    if (plan.auth === 'handshake') await this.answered(['auth:success', 'auth:error'], STEP_MS);
    if (plan.auth === 'event') client.raw('auth:handshake', { token: this.token });
    if (plan.auth === 'resume-foreign') client.raw('reconnect:attempt', { token: this.token, sessionId: pick(shared.legitSessions, plan.user) ?? 'none' });
    await this.signInSequence(client);
  }

  /** The sign-in sequences: whatever their timing, a socket never carries more than one session (checked after the round). */
  private async signInSequence(client: TestClient): Promise<void> {
    const { plan, shared } = this;
    if (plan.auth === 'double-handshake') {
      client.raw('auth:handshake', { token: this.token });
      for (let i = 0; i < plan.user * 3; i++) await new Promise((resolve) => setImmediate(resolve));
      client.raw('auth:handshake', { token: this.token });
    } else if (plan.auth === 'handshake-resume') {
      // The handshake's sign-in is still being checked when the resume arrives.
      client.raw('reconnect:attempt', { token: this.token, sessionId: pick(shared.fuzzSessions, plan.user) ?? 'none' });
    } else if (plan.auth === 'rejoin') {
      await this.answered(['auth:success', 'auth:error'], STEP_MS);
      const engine = client.socket.io.engine as unknown as { send(frame: string): void };
      engine.send('41');
      engine.send(`40${JSON.stringify({ token: this.token })}`);
    }
  }

  /** How many sessions this socket was handed (`auth:success` and `reconnect:success`). */
  get sessionsHanded(): number {
    return this.log.filter((r) => r.event === 'auth:success' || r.event === 'reconnect:success').length;
  }

  /** Resolves once one of `events` has been received (now or before), the socket closed, or `timeoutMs` passed. */
  private answered(events: string[], timeoutMs: number): Promise<void> {
    const socket = this.client?.socket;
    if (!socket || this.log.some((r) => events.includes(r.event))) return Promise.resolve();
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer);
        socket.offAny(onAny);
        socket.off('disconnect', done);
        resolve();
      };
      const onAny = (event: string) => events.includes(event) && done();
      const timer = setTimeout(done, timeoutMs);
      socket.onAny(onAny);
      socket.on('disconnect', done);
    });
  }

  async run(): Promise<void> {
    await this.open();
    const client = this.client;
    for (const [i, action] of this.plan.actions.entries()) {
      this.shared.stats.actions++;
      if (!client || !client.socket.connected) {
        this.shared.stats.skipped++;
        continue;
      }
      await this.act(client, action);
      // Let the server and the legitimate calls move between actions.
      if (action.kind === 'yield' || i % 2 === 1) await new Promise((resolve) => setImmediate(resolve));
    }
  }

  private async act(client: TestClient, action: Action): Promise<void> {
    const socket = client.socket as unknown as Socket;
    const engine = socket.io.engine as unknown as {
      send(data: string | Buffer): void;
      _sendPacket(type: string, data?: string): void;
    };
    switch (action.kind) {
      case 'yield':
        return;
      case 'leave':
        if (action.how === 'disconnect') socket.disconnect();
        else socket.io.engine.close();
        return;
      case 'frame':
        engine.send(action.frame);
        return;
      case 'play': {
        if ((action.event === 'call:accept' || action.event === 'call:reject') && this.ownCalls.length === 0 && !this.waitedToAnswer) {
          // Answering needs a call: wait a little, once, for one to ring (bounded; it may never come).
          this.waitedToAnswer = true;
          await this.answered(['call:incoming'], 60);
        }
        if (!client.socket.connected) return;
        const payload = this.wellFormed(action.event, action.pick);
        const args = payload === undefined ? [] : [payload];
        if (action.ack) this.emitWithAck(socket, action.event, args);
        else socket.emit(action.event, ...args);
        return;
      }
      case 'engine':
        if (action.type === 'binary') engine.send(Buffer.from([1, 2, 3, 4]));
        else engine._sendPacket(action.type);
        return;
      case 'emit': {
        const args = action.args.map((a) => this.resolve(a));
        const name = action.event;
        if (typeof name === 'string' && CLIENT_RESERVED.includes(name)) {
          // The client refuses these names: write the packet by hand (Buffers become plain JSON).
          engine.send(`2${JSON.stringify([name, ...args])}`);
          return;
        }
        if (!action.ack) {
          socket.emit(name as string, ...args);
          return;
        }
        this.emitWithAck(socket, name, args);
        return;
      }
    }
  }

  /** A payload a real client could send on `event`, aimed at this fuzzer's latest calls and fellow fuzzers. */
  private wellFormed(event: string, pick: number): unknown {
    const latest = this.ownCalls[this.ownCalls.length - 1 - (pick % 2)] ?? randomUUID();
    const peer = this.peers[pick % Math.max(1, this.peers.length)] ?? `fz-${this.userId.split('-')[1]}-${pick % 4}`;
    switch (event) {
      case 'auth:handshake':
        return { token: this.token };
      case 'reconnect:attempt':
        return { token: this.token, sessionId: this.ownSessions[this.ownSessions.length - 1] ?? 'none' };
      case 'user:list':
        return undefined;
      case 'call:request':
        return pick % 3 === 0 ? { to: peer, callId: randomUUID(), media: { audio: true, video: pick % 2 === 0 } } : { to: peer };
      case 'webrtc:offer':
      case 'webrtc:answer':
        return { callId: latest, sdp: `v=0\r\no=- ${pick} 2 IN IP4 127.0.0.1\r\n` };
      case 'webrtc:ice-candidate':
        return { callId: latest, candidate: pick === 7 ? null : { candidate: `candidate:${pick} 1 udp 2122260223 10.0.0.${pick} 9 typ host`, sdpMid: '0', sdpMLineIndex: 0 } };
      default:
        return { callId: latest };
    }
  }

  private emitWithAck(socket: Socket, name: string | number, args: unknown[]): void {
    const label = `${String(name).slice(0, 40)} ${safeJson(args).slice(0, 120)}`;
    this.acks.push(
      new Promise<void>((resolve) => {
        socket.timeout(ACK_MS).emit(name as string, ...args, (err: Error | null, response: unknown) => {
          if (err) {
            // Unanswered is fine only when the socket went away (cut, refused, or it left).
            if (err.message !== 'socket has been disconnected' && socket.connected) this.shared.unanswered.push(label);
          } else if (!wellFormedAck(response)) {
            this.shared.malformed.push(`${label} → ${safeJson(response).slice(0, 200)}`);
          } else {
            const text = safeJson(response);
            if (text.includes('legit-') || this.shared.legitCalls.some((id) => text.includes(id))) {
              this.shared.leaked.push(`${label} → ${text.slice(0, 200)}`);
            }
          }
          resolve();
        });
      }),
    );
  }

  close(): void {
    this.client?.socket.disconnect();
  }
}

function safeJson(v: unknown): string {
  try {
    return JSON.stringify(v, (_k, x: unknown) => (Buffer.isBuffer(x) ? `<Buffer ${x.length}>` : x)) ?? String(v);
  } catch {
    return '<unserializable>';
  }
}

const CODES: readonly string[] = ERROR_CODES;
function wellFormedAck(r: unknown): boolean {
  if (typeof r !== 'object' || r === null) return false;
  const a = r as { ok?: unknown; error?: { code?: unknown; message?: unknown } };
  if (a.ok === true) return true;
  return a.ok === false && typeof a.error?.code === 'string' && CODES.includes(a.error.code) && typeof a.error.message === 'string';
}

/** A well-behaved pair in its own tenant: request → incoming → accept → offer/answer/ICE → end → ended. */
async function legitCall(shared: Shared, round: number, k: number): Promise<{ callId: string; logs: { event: string; payload: unknown }[][]; ids: string[] }> {
  const slot = round < 0 ? 'warm' : round % LEGIT_POOL;
  const ids = [`legit-${slot}-${k}-a`, `legit-${slot}-${k}-b`];
  remember(shared.legitUsers, ...ids);
  for (const id of ids) shared.users.set(`legit\0${id}`, { tenant: 'legit', id });
  // Not from the fuzzers' address, which runs into its sign-in limit.
  const a = await signIn(shared.server, ids[0]!, { tenant: 'legit', localAddress: legitAddress(round, k) });
  const b = await signIn(shared.server, ids[1]!, { tenant: 'legit', localAddress: legitAddress(round, k) });
  const logs = [recordAll(a), recordAll(b)];
  remember(shared.legitSessions, a.auth!.sessionId, b.auth!.sessionId);
  try {
    const callId = randomUUID();
    const started = performance.now();
    const ack = await a.request<{ callId: string }>('call:request', { to: ids[1], callId }, STEP_MS);
    expectOk(ack);
    remember(shared.legitCalls, callId);
    await b.next('call:incoming', (p) => p.callId === callId, STEP_MS);
    expectOk(await b.request('call:accept', { callId }, STEP_MS));
    await a.next('call:accepted', (p) => p.callId === callId, STEP_MS);
    a.socket.emit('webrtc:offer', { callId, sdp: `v=0 offer ${callId}` });
    const offer = await b.next('webrtc:offer', (p) => p.callId === callId, STEP_MS);
    assert.deepEqual(offer, { callId, from: ids[0], sdp: `v=0 offer ${callId}` });
    b.socket.emit('webrtc:answer', { callId, sdp: `v=0 answer ${callId}` });
    const answer = await a.next('webrtc:answer', (p) => p.callId === callId, STEP_MS);
    assert.deepEqual(answer, { callId, from: ids[1], sdp: `v=0 answer ${callId}` });
    shared.stats.setupMs.push(performance.now() - started);
    const candidates = [...Array.from({ length: 5 }, (_, i) => ({ candidate: `candidate:${i} 1 udp 1 10.0.0.1 ${9000 + i} typ host`, sdpMid: '0', sdpMLineIndex: 0 })), null];
    for (const candidate of candidates) {
      a.socket.emit('webrtc:ice-candidate', { callId, candidate });
      b.socket.emit('webrtc:ice-candidate', { callId, candidate });
    }
    for (const [receiver, sender] of [
      [b, ids[0]],
      [a, ids[1]],
    ] as const) {
      for (const candidate of candidates) {
        const got = await receiver.next('webrtc:ice-candidate', (p) => p.callId === callId, STEP_MS);
        assert.deepEqual(got, { callId, from: sender, candidate }, 'ICE relayed in order, from the sender');
      }
    }
    expectOk(await a.request('call:end', { callId }, STEP_MS));
    const ended = await b.next('call:ended', (p) => p.callId === callId, STEP_MS);
    assert.equal(ended.reason, 'hangup');
    assert.equal(ended.by?.id, ids[0]);
    shared.stats.legitCalls++;
    return { callId, logs, ids };
  } finally {
    a.close();
    b.close();
  }
}

const LEGIT_EVENTS = new Set(['user:list', 'user:online', 'user:offline', 'user:status', 'call:incoming', 'call:accepted', 'webrtc:offer', 'webrtc:answer', 'webrtc:ice-candidate', 'call:ended']);

/** Nothing reached a legitimate party but its own call, and nothing of a legitimate call reached a fuzzer. */
function checkIsolation(shared: Shared, legit: Awaited<ReturnType<typeof legitCall>>[], fuzzers: Fuzzer[]): void {
  for (const { callId, logs } of legit) {
    for (const { event, payload } of logs.flat()) {
      assert.ok(LEGIT_EVENTS.has(event), `a legitimate party received ${event}: ${safeJson(payload).slice(0, 300)}`);
      const p = payload as { callId?: string; userId?: string; user?: { id: string }; users?: { id: string }[] };
      if (p.callId !== undefined) assert.equal(p.callId, callId, `${event} of another call reached a legitimate party`);
      for (const id of [p.userId, p.user?.id, ...(p.users ?? []).map((u) => u.id)]) {
        if (id !== undefined) assert.match(id, /^legit-/, `${event} names ${id}, a user of another tenant`);
      }
    }
  }
  for (const f of fuzzers) {
    for (const { event, payload } of f.log) {
      if (event === 'call:error') continue; // echoes what the fuzzer itself sent
      const text = safeJson(payload);
      assert.ok(!text.includes('legit-'), `a fuzzer received ${event} naming a legitimate user: ${text.slice(0, 300)}`);
      for (const callId of shared.legitCalls) assert.ok(!text.includes(callId), `a fuzzer received ${event} of a legitimate call`);
    }
  }
}

function snapshotPrototypes(): string {
  return [Object.prototype, Array.prototype, Function.prototype, String.prototype].map((p) => Object.getOwnPropertyNames(p).sort().join(',')).join('|');
}

async function fuzz(env: Record<string, string>, seconds: number, phase: string): Promise<Shared['stats'] & { heapBeforeMb: number; heapAfterMb: number }> {
  const watch = watchProcessErrors();
  // The store's clock can be moved on at the end: ended calls are kept five minutes by design (TOMBSTONE_MS),
  // and the heap check is about what outlives that, not about what the fuzz ran into in its last minutes.
  let storeSkewMs = 0;
  const store = new MemoryStore({ historyLimit: 5, now: () => Date.now() + storeSkewMs });
  const server = await startTestServer({ RECONNECT_GRACE_MS: '300', RING_TIMEOUT_MS: '2000', AUTH_TIMEOUT_MS: '3000', ...env }, { store });
  const enc = new TextEncoder();
  const shared: Shared = {
    server,
    legitCalls: [],
    legitSessions: [],
    fuzzSessions: [],
    legitUsers: [],
    users: new Map(),
    tokens: {
      expired: await new SignJWT({}).setProtectedHeader({ alg: 'HS256' }).setSubject('fz-expired').setExpirationTime(Math.floor(Date.now() / 1000) - 3600).sign(enc.encode(TEST_SECRET)),
      none: `${Buffer.from('{"alg":"none"}').toString('base64url')}.${Buffer.from(JSON.stringify({ sub: 'fz-none', exp: 2e9 })).toString('base64url')}.`,
      forged: await new SignJWT({}).setProtectedHeader({ alg: 'HS256' }).setSubject('legit-0-0-a').setExpirationTime(2e9).sign(enc.encode('not-the-secret-0123456789-abcdefghij')),
    },
    unanswered: [],
    malformed: [],
    leaked: [],
    stats: { rounds: 0, actions: 0, skipped: 0, cut: 0, legitCalls: 0, setupMs: [], slowestRoundMs: 0, callsEnded: 0, answered: 0 },
  };
  const prototypes = snapshotPrototypes();
  try {
    // Warm up (code paths, JIT, pools) before the heap baseline.
    await legitCall(shared, -1, 0);
    const heapBefore = await settledHeap();
    const deadline = Date.now() + seconds * 1000;
    for (let round = 0; Date.now() < deadline; round++) {
      const roundStarted = performance.now();
      const [plan] = fc.sample(roundArb, { seed: FUZZ_SEED + round, numRuns: 1 });
      const context = `${phase}, round ${round} (FUZZ_SEED=${FUZZ_SEED}, seed ${FUZZ_SEED + round})`;
      const fuzzers = await Promise.all(
        plan!.sockets.map(async (p, i) => {
          const userId = `fz-${round % USER_POOL}-${p.user}`;
          shared.users.set(`${p.tenant}\0${userId}`, { tenant: p.tenant, id: userId });
          shared.users.set(`other\0${userId}-${i}`, { tenant: 'other', id: `${userId}-${i}` });
          const peers = plan!.sockets
            .filter((q) => q.tenant === p.tenant && q.user !== p.user && (q.auth === 'handshake' || q.auth === 'event'))
            .map((q) => `fz-${round % USER_POOL}-${q.user}`);
          return new Fuzzer(shared, p, userId, await tokenFor(userId, p.tenant ? { tenant: p.tenant } : {}), await tokenFor(`${userId}-${i}`, { tenant: 'other' }), peers);
        }),
      );
      const playerIds = [`fz-${round % USER_POOL}-p0`, `fz-${round % USER_POOL}-p1`];
      for (const [i, actions] of plan!.players.entries()) {
        const id = playerIds[i]!;
        shared.users.set(`\0${id}`, { tenant: '', id });
        const p: SocketPlan = { auth: 'handshake', user: i, tenant: '', weirdAuth: null, actions };
        fuzzers.push(new Fuzzer(shared, p, id, await tokenFor(id), await tokenFor(`${id}-x`, { tenant: 'other' }), [playerIds[1 - i]!]));
        shared.users.set(`other\0${id}-x`, { tenant: 'other', id: `${id}-x` });
      }
      try {
        const [legit] = await Promise.all([
          Promise.all(Array.from({ length: plan!.legitPairs }, (_, k) => legitCall(shared, round, k))),
          Promise.all(fuzzers.map((f) => f.run())),
        ]);
        await Promise.all(fuzzers.flatMap((f) => f.acks));
        shared.stats.cut += fuzzers.filter((f) => f.client && !f.client.socket.connected).length;
        assert.deepEqual(watch.errors, [], 'nothing uncaught in the server process');
        assert.deepEqual(shared.unanswered, [], 'every ack is answered while its socket is open');
        assert.deepEqual(shared.malformed, [], 'every ack answer is { ok: true, … } or { ok: false, error: { code, message } }');
        assert.deepEqual(shared.leaked, [], 'no ack answer to a fuzzer names a legitimate user or call');
        assert.deepEqual(fuzzers.filter((f) => f.sessionsHanded > 1).map((f) => f.plan.auth), [], 'one socket, one session');
        assert.equal(snapshotPrototypes(), prototypes, 'no prototype gained a property');
        assert.equal(({} as Record<string, unknown>).polluted, undefined, 'Object.prototype is not polluted');
        checkIsolation(shared, legit, fuzzers);
      } catch (err) {
        const detail = safeJson(plan).slice(0, 4000);
        throw new Error(`${context} failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\nplan: ${detail}`, { cause: err });
      } finally {
        fuzzers.forEach((f) => f.close());
      }
      shared.stats.rounds++;
      shared.stats.slowestRoundMs = Math.max(shared.stats.slowestRoundMs, performance.now() - roundStarted);
    }
    // Afterwards: alive, ready, nothing left behind, heap back near its start.
    assert.equal((await fetch(`${server.url}/healthz`)).status, 200);
    assert.equal((await fetch(`${server.url}/readyz`)).status, 200);
    await assertNothingLeft(server, [...shared.users.values()]);
    shared.stats.callsEnded = await metricSum(server, 'switchboard_calls_total');
    shared.stats.answered = await metricSum(server, 'switchboard_call_setup_seconds_count');
    if (env.RATE_LIMITS !== 'off') {
      // The per-address gate of unauthenticated sockets is fully released: a full quota still connects.
      const quota = Number(env.MAX_UNAUTHENTICATED_PER_ADDRESS);
      const sockets = [];
      for (let i = 0; i < quota; i++) {
        const s = connect(server.url, { transports: ['websocket'], reconnection: false, forceNew: true });
        sockets.push(s);
        await new Promise<void>((resolve, reject) => {
          s.once('connect', () => resolve());
          s.once('connect_error', (e) => reject(new Error(`socket ${i + 1} of ${quota} refused: ${e.message} — the gate leaked`)));
        });
      }
      sockets.forEach((s) => s.disconnect());
      await assertNothingLeft(server, []);
    }
    assert.deepEqual(watch.errors, [], 'nothing uncaught in the server process');
    storeSkewMs = TOMBSTONE_MS + 60_000;
    (store as unknown as { sweepTombstones(): void }).sweepTombstones();
    const heapAfter = await settledHeap();
    const result = { ...shared.stats, heapBeforeMb: heapBefore / MB, heapAfterMb: heapAfter / MB };
    assert.ok(heapAfter - heapBefore < HEAP_BOUND, `heap grew by ${((heapAfter - heapBefore) / MB).toFixed(1)} MB (bound ${HEAP_BOUND / MB} MB)`);
    return result;
  } finally {
    watch.stop();
    await server.close();
  }
}

function report(phase: string, s: Awaited<ReturnType<typeof fuzz>>): void {
  const sorted = [...s.setupMs].sort((a, b) => a - b);
  const q = (p: number) => sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))]?.toFixed(1);
  console.log(
    `fuzz ${phase}: ${s.rounds} rounds, ${s.actions} hostile actions (${s.skipped} skipped on closed sockets), ${s.cut} fuzz sockets closed by the server or themselves, ` +
      `${s.legitCalls} legitimate calls completed (setup p50 ${q(0.5)} ms, max ${q(1)} ms), ${s.callsEnded - s.legitCalls} calls among fuzzers (${s.answered - s.legitCalls} answered), slowest round ${s.slowestRoundMs.toFixed(0)} ms, heap ${s.heapBeforeMb.toFixed(1)} → ${s.heapAfterMb.toFixed(1)} MB`,
  );
}

describe('fuzz: hostile sockets against a live server', () => {
  test('rate limits off: every random event and payload reaches its handler; legitimate calls complete, nothing leaks or lingers', async () => {
    const stats = await fuzz({ RATE_LIMITS: 'off' }, FUZZ_SECONDS * 0.6, 'limits off');
    report('limits off', stats);
    assert.ok(stats.rounds >= 3, `the fuzz ran (${stats.rounds} rounds)`);
  });

  test('default rate limits: the same storm is limited and cut; legitimate calls complete, nothing leaks or lingers', async () => {
    const stats = await fuzz({ MAX_UNAUTHENTICATED_PER_ADDRESS: '40' }, FUZZ_SECONDS * 0.4, 'default limits');
    report('default limits', stats);
    assert.ok(stats.rounds >= 3, `the fuzz ran (${stats.rounds} rounds)`);
  });
});
