/**
 * The edge: every client event arrives here, is rate limited, checked against
 * its schema, run, and answered — by its ack when it has one, by `call:error`
 * when it failed without one. Nothing a client sends can throw past this.
 */
import type { ZodType } from 'zod';
import {
  type CallId,
  type ClientEventName,
  CONTROL_EVENTS,
  type ControlEvent,
  type ErrorBody,
  RELAY_EVENTS,
  type RelayEvent,
  type UserId,
  authHandshakeSchema,
  callEndSchema,
  callIdSchema,
  callQualitySchema,
  callRequestSchema,
  iceCandidateSchema,
  reconnectAttemptSchema,
  sdpSchema,
} from '@switchboard/protocol';
import type { CallRunner } from './calls.js';
import type { UserLimiters } from './abuse.js';
import type { CallRequests } from './call-requests.js';
import type { Conn, Deps } from './context.js';
import { actorOf, logOf } from './context.js';
import { refusals, SwitchboardError } from './errors.js';
import type { Presence } from './presence.js';
import { QualityReports } from './quality.js';
import type { Relay, RelayPayload } from './relay.js';
import type { Sessions } from './sessions.js';

type Result = object | void;
interface Route {
  schema: ZodType | null;
  /** Needs an authenticated session. */
  session: boolean;
  handle(conn: Conn, payload: never): Result | Promise<Result>;
}

function route<T>(schema: ZodType<T> | null, session: boolean, handle: (conn: Conn, payload: T) => Result | Promise<Result>): Route {
  return { schema, session, handle: handle as Route['handle'] };
}

export class Dispatcher {
  private readonly routes: Map<string, Route>;

  constructor(
    private readonly deps: Deps,
    sessions: Sessions,
    calls: CallRunner,
    presence: Presence,
    requests: CallRequests,
    relay: Relay,
    private readonly userLimiters: UserLimiters | null,
  ) {
    const callEvent = (type: 'accept' | 'reject' | 'cancel') =>
      route(callIdSchema, true, async (conn, p) => {
        await calls.run({ type, callId: p.callId as CallId, by: actorOf(conn.session!) }, logOf(conn.session!));
        return { callId: p.callId };
      });
    const quality = new QualityReports(deps, relay);
    const entries: [ClientEventName, Route][] = [
      ['auth:handshake', route(authHandshakeSchema, false, (conn, p) => sessions.authenticate(conn, p.token))],
      ['reconnect:attempt', route(reconnectAttemptSchema, false, (conn, p) => sessions.resume(conn, p.token, p.sessionId))],
      [
        'user:list',
        route(null, true, async (conn) => {
          const users = await presence.list(conn.session!);
          conn.socket.emit('user:list', { users });
          return { users };
        }),
      ],
      ['call:request', route(callRequestSchema, true, (conn, p) => requests.request(conn.session!, p))],
      ['call:accept', callEvent('accept')],
      ['call:reject', callEvent('reject')],
      ['call:cancel', callEvent('cancel')],
      [
        'call:end',
        route(callEndSchema, true, async (conn, p) => {
          const by = actorOf(conn.session!);
          await calls.run({ type: 'end', callId: p.callId as CallId, by, ...(p.reason ? { reason: p.reason } : {}) }, logOf(conn.session!));
          return { callId: p.callId };
        }),
      ],
      ...CONTROL_EVENTS.map(
        (control: ControlEvent): [ClientEventName, Route] => [
          control,
          route(callIdSchema, true, async (conn, p) => {
            await calls.run({ type: 'control', control, callId: p.callId as CallId, by: actorOf(conn.session!) }, logOf(conn.session!));
            return { callId: p.callId };
          }),
        ],
      ),
      ['call:quality', route(callQualitySchema, true, (conn, p) => quality.report(conn, p))],
      ...RELAY_EVENTS.map((event: RelayEvent): [ClientEventName, Route] => [
        event,
        route<RelayPayload>(event === 'webrtc:ice-candidate' ? iceCandidateSchema : sdpSchema, true, (conn, p) =>
          relay.send(conn, event, p),
        ),
      ]),
    ];
    this.routes = new Map(entries);
  }

  /**
   * Handles one incoming event: `args` as Socket.IO hands them over, the ack callback last if any.
   * The event name is whatever the client sent: socket.io-parser lets a number through as an event
   * name, so it is made a string before anything looks at it (an unknown event, then).
   */
  dispatch(conn: Conn, rawEvent: unknown, args: unknown[]): void {
    const event = typeof rawEvent === 'string' ? rawEvent : String(rawEvent);
    try {
      this.dispatchEvent(conn, event, args);
    } catch (err) {
      // Nothing a client sends may throw past the edge: an exception here would be uncaught.
      // The event name is named only when it is one of ours: a client-chosen string has no place in the logs.
      this.deps.logger.error({ err, event: this.routes.has(event) ? event : 'unknown', session: conn.session?.id }, 'event dispatch failed');
      const last = args[args.length - 1];
      // An ack answers once (Socket.IO ignores a second call), so this is safe even if it was already answered.
      if (typeof last === 'function') {
        try {
          (last as (r: unknown) => void)({ ok: false, error: { code: 'internal', message: 'internal error' } });
        } catch {
          // the socket is gone
        }
      }
    }
  }

  private dispatchEvent(conn: Conn, event: string, args: unknown[]): void {
    const last = args[args.length - 1];
    const ack = typeof last === 'function' ? (last as (response: unknown) => void) : undefined;
    const payload = ack ? (args.length > 1 ? args[0] : undefined) : args[0];
    const { metrics } = this.deps;
    const route = this.routes.get(event);
    metrics.eventCounter(route ? event : 'unknown').inc();

    if (conn.limiter) {
      const now = this.deps.now();
      let verdict = conn.limiter.take(event, now);
      if (verdict === 'ok' && conn.session && this.userLimiters) verdict = this.userLimiters.take(conn.session.key, event);
      if (verdict !== 'ok') {
        metrics.rateLimitedTotal.inc({ event: route ? event : 'unknown' });
        if (verdict === 'abusive') {
          // Packets decoded before the cut still come through once it is closed: one log line per cut is enough.
          if (conn.socket.disconnected) return;
          this.deps.logger.warn({ socket: conn.socket.id, session: conn.session?.id }, 'cutting a socket that ignores rate limits');
          // Cut as a lost transport: its session keeps its grace like any other, and is cut again if it goes on.
          // `close(true)` discards what is still queued for it: a plain close() waits for the queue to drain,
          // which a client that has stopped reading never lets happen.
          conn.socket.conn.close(true);
          return;
        }
        return this.fail(conn, event, ack, payload, refusals.tooManyEvents());
      }
    }
    if (!route) return this.fail(conn, event, ack, payload, refusals.unknownEvent(truncate(event)));
    if (route.session && !conn.session) {
      return this.fail(conn, event, ack, payload, refusals.authenticateFirst());
    }
    let input: unknown = undefined;
    if (route.schema) {
      const parsed = route.schema.safeParse(payload);
      if (!parsed.success) {
        const issue = parsed.error.issues[0];
        const where = issue && issue.path.length > 0 ? issue.path.join('.') : 'payload';
        return this.fail(conn, event, ack, payload, refusals.badPayload(where, issue?.message ?? 'invalid'));
      }
      input = parsed.data;
    }
    try {
      const result = route.handle(conn, input as never);
      if (result instanceof Promise) {
        result.then(
          (data) => ack?.({ ok: true, ...(data ?? {}) }),
          (err: unknown) => this.fail(conn, event, ack, payload, err),
        );
      } else {
        ack?.({ ok: true, ...(result ?? {}) });
      }
    } catch (err) {
      this.fail(conn, event, ack, payload, err);
    }
  }

  private fail(conn: Conn, event: string, ack: ((r: unknown) => void) | undefined, payload: unknown, err: unknown): void {
    const known = err instanceof SwitchboardError;
    if (!known) this.deps.logger.error({ err, event, session: conn.session?.id }, 'event handler failed');
    const error: ErrorBody = known ? err.toBody() : { code: 'internal', message: 'internal error' };
    this.deps.metrics.errorsTotal.inc({ code: error.code });
    if (ack) {
      ack({ ok: false, error });
      return;
    }
    if (known && err.told) return;
    const callId = known && err.callId ? err.callId : callIdIn(payload);
    conn.socket.emit('call:error', { event: truncate(event), ...error, ...(callId ? { callId } : {}) });
  }
}

function truncate(s: string): string {
  return s.length > 64 ? `${s.slice(0, 64)}…` : s;
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
function callIdIn(payload: unknown): CallId | undefined {
  if (typeof payload !== 'object' || payload === null) return undefined;
  const id = (payload as { callId?: unknown }).callId;
  return typeof id === 'string' && UUID.test(id) ? (id as CallId) : undefined;
}
