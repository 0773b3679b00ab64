/**
 * Webhooks: call events POSTed as signed JSON to `WEBHOOK_URL`, so a host app
 * can bill, audit, or push a notification to a user who was called while
 * offline. A `CallHooks` observer: signalling hands an event over and moves
 * on; delivery happens later, off the signalling path.
 *
 * Delivery is at least once: each event has an `id` that stays the same on
 * every retry (receivers dedupe on it). Events of one call are delivered in
 * order (the next waits until the one before is delivered or given up);
 * events of different calls are not ordered. A failed attempt (network error,
 * timeout, any non-2xx) is retried after 0.5 s, 1 s, 2 s, 4 s, 8 s, then the
 * event is dropped with a log line. The queue is bounded: past its limit the
 * oldest waiting event is dropped with a log line. Credentials in the URL
 * (`https://user:pass@host/…`) are sent as HTTP Basic authorization.
 */
import { createHmac, randomUUID, timingSafeEqual } from 'node:crypto';
import type { CallId, CallQuality, UserId, UserRef } from '@switchboard/protocol';
import type { CallRecord } from './calls/types.js';
import { maskUrl } from './config.js';
import type { Logger } from './logger.js';
import type { Metrics } from './metrics.js';
import type { HistoryEntry } from './store/types.js';
import type { CallHooks, UnreachableCall } from './calls/hooks.js';

export type WebhookType = 'call.started' | 'call.answered' | 'call.ended' | 'call.missed' | 'call.unreachable';

/** What every webhook body holds. */
export interface WebhookBase {
  /** Unique per event and the same on every retry of it. */
  id: string;
  type: WebhookType;
  /** When it happened, epoch ms. */
  timestamp: number;
  callId: CallId;
  /** The tenant of both parties ("" = the default tenant). */
  tenant: string;
  caller: UserRef;
  /** The callee; `name` is absent for `call.unreachable` (no session told us one). */
  callee: { id: UserId; name?: string };
}

export interface CallTimes {
  media: { audio: boolean; video: boolean };
  createdAt: number;
  answeredAt: number | null;
}

export type WebhookEvent =
  | (WebhookBase & { type: 'call.started' } & CallTimes & { ringDeadline: number })
  | (WebhookBase & { type: 'call.answered' } & CallTimes & { answeredAt: number; setupMs: number })
  | (WebhookBase &
      { type: 'call.ended' | 'call.missed' } & CallTimes & {
        outcome: string;
        reason: string;
        /** The user who hung up, rejected or cancelled; null when no party ended it (timeout, lost connection). */
        endedBy: UserId | null;
        endedAt: number;
        durationMs: number;
        /** The history record each party got (`GET /api/calls`). */
        history: { caller: HistoryEntry; callee: HistoryEntry };
        /** v1.1: each party's summary of its quality reports, when one reported. */
        quality?: CallQuality;
      })
  | (WebhookBase & { type: 'call.unreachable' });

export const SIGNATURE_HEADER = 'x-switchboard-signature';

/** The `X-Switchboard-Signature` value: `t=<unix seconds>,v1=<hex HMAC-SHA256(secret, t + "." + body)>`. */
export function signWebhook(secret: string, body: string, unixSeconds: number): string {
  const mac = createHmac('sha256', secret).update(`${unixSeconds}.${body}`).digest('hex');
  return `t=${unixSeconds},v1=${mac}`;
}

/**
 * Checks a signature header the way a receiver should: the MAC over the raw
 * body, compared in constant time, and a timestamp within `toleranceS` of now
 * (so a captured request cannot be replayed later).
 */
export function verifyWebhook(
  secret: string,
  header: string | undefined,
  body: string,
  options: { toleranceS?: number; nowMs?: number } = {},
): boolean {
  if (!header) return false;
  const parts = new Map(header.split(',').map((kv) => kv.trim().split('=', 2) as [string, string]));
  const t = Number(parts.get('t'));
  const v1 = parts.get('v1') ?? '';
  if (!Number.isInteger(t) || !/^[0-9a-f]{64}$/.test(v1)) return false;
  const now = Math.floor((options.nowMs ?? Date.now()) / 1000);
  if (Math.abs(now - t) > (options.toleranceS ?? 300)) return false;
  const expected = signWebhook(secret, body, t).slice(`t=${t},v1=`.length);
  return timingSafeEqual(Buffer.from(expected, 'hex'), Buffer.from(v1, 'hex'));
}

export interface WebhookOptions {
  url: string;
  secret: string;
  logger: Logger;
  /** Counts deliveries by result and the queue length. */
  metrics?: Pick<Metrics, 'webhookDeliveries' | 'webhookQueue'>;
  /** One attempt gives up after this long. @default 5000 */
  attemptTimeoutMs?: number;
  /** Waits before each retry; attempts = retries + 1. @default [500, 1000, 2000, 4000, 8000] */
  retryDelaysMs?: readonly number[];
  /** Events held (waiting or retrying) before the oldest is dropped. @default 10000 */
  maxQueue?: number;
  /** Requests in flight at once. @default 8 */
  concurrency?: number;
  now?: () => number;
}

const DEFAULT_ATTEMPT_TIMEOUT_MS = 5000;
/** The longest a call that rings no device waits for the host app to take its push (`RING_OFFLINE=webhook`). */
export const PUSH_TIMEOUT_MS = 3000;
const DEFAULT_RETRY_DELAYS_MS = [500, 1000, 2000, 4000, 8000] as const;
const DEFAULT_MAX_QUEUE = 10_000;
const DEFAULT_CONCURRENCY = 8;

interface Job {
  event: WebhookEvent;
  body: string;
  attempts: number;
  /** queued: behind an earlier event of its call; ready: may be sent; waiting: for a retry. */
  state: 'queued' | 'ready' | 'in-flight' | 'waiting' | 'done';
  timer: NodeJS.Timeout | null;
}

function errorText(err: unknown): string {
  if (err instanceof Error) {
    const cause = (err as { cause?: { code?: unknown; message?: unknown } }).cause;
    if (err.name === 'TimeoutError' || err.name === 'AbortError') return 'timeout';
    return typeof cause?.code === 'string' ? cause.code : err.message;
  }
  return String(err);
}

export class WebhookSender implements CallHooks {
  /** The URL without credentials (fetch refuses them there); they go in `authorization` instead. */
  private readonly url: string;
  private readonly authorization: string | null;
  private readonly attemptTimeoutMs: number;
  private readonly retryDelaysMs: readonly number[];
  private readonly maxQueue: number;
  private readonly concurrency: number;
  private readonly now: () => number;
  /** Every event not yet delivered or given up, oldest first. */
  private readonly jobs = new Map<string, Job>();
  /** Each call's events in order; only the first of each may be on its way. */
  private readonly chains = new Map<string, Job[]>();
  private readonly ready: Job[] = [];
  private inFlight = 0;
  private closed = false;
  private idle: (() => void)[] = [];

  constructor(private readonly options: WebhookOptions) {
    const url = new URL(options.url);
    this.authorization = url.username || url.password
      ? `Basic ${Buffer.from(`${decodeURIComponent(url.username)}:${decodeURIComponent(url.password)}`).toString('base64')}`
      : null;
    url.username = '';
    url.password = '';
    this.url = url.toString();
    this.attemptTimeoutMs = options.attemptTimeoutMs ?? DEFAULT_ATTEMPT_TIMEOUT_MS;
    this.retryDelaysMs = options.retryDelaysMs ?? DEFAULT_RETRY_DELAYS_MS;
    this.maxQueue = options.maxQueue ?? DEFAULT_MAX_QUEUE;
    this.concurrency = options.concurrency ?? DEFAULT_CONCURRENCY;
    this.now = options.now ?? Date.now;
  }

  /** Events held now (waiting, retrying or in flight). */
  get pending(): number {
    return this.jobs.size;
  }

  started(call: CallRecord): void {
    this.enqueue({ ...this.base('call.started', call), ...timesOf(call), ringDeadline: call.ringDeadline });
  }

  answered(call: CallRecord): void {
    const answeredAt = call.answeredAt ?? this.now();
    this.enqueue({ ...this.base('call.answered', call), ...timesOf(call), answeredAt, setupMs: Math.max(0, answeredAt - call.createdAt) });
  }

  ended(call: CallRecord, history: { caller: HistoryEntry; callee: HistoryEntry }): void {
    const rest = {
      ...timesOf(call),
      outcome: history.caller.outcome,
      reason: history.caller.reason,
      endedBy: call.endedBy,
      endedAt: history.caller.endedAt,
      durationMs: history.caller.durationMs,
      history,
      ...(history.caller.quality ? { quality: history.caller.quality } : {}),
    };
    this.enqueue({ ...this.base('call.ended', call), ...rest });
    if (history.caller.outcome === 'missed') this.enqueue({ ...this.base('call.missed', call), ...rest });
  }

  unreachable(info: UnreachableCall): void {
    this.enqueue(this.unreachableEvent(info));
  }

  /**
   * `RING_OFFLINE=webhook`: `call.unreachable` for a call that rings with no
   * device, sent at once (not behind the call's queue) and once: true when
   * the receiver answered 2xx within `PUSH_TIMEOUT_MS`. Anything else (an
   * error, another status, no answer) is false, and the call ends as
   * `unavailable`: the ring never waits on a receiver longer than that.
   */
  async push(info: UnreachableCall): Promise<boolean> {
    const event = this.unreachableEvent(info);
    const failure = await this.post(JSON.stringify(event), Math.min(this.attemptTimeoutMs, PUSH_TIMEOUT_MS));
    this.options.metrics?.webhookDeliveries.inc({ result: failure === null ? 'ok' : 'failed' });
    if (failure !== null) this.options.logger.warn({ callId: info.callId, eventId: event.id, error: failure }, 'push webhook refused or unanswered: the call ends as unavailable');
    return failure === null;
  }

  private unreachableEvent(info: UnreachableCall): WebhookEvent {
    return { id: randomUUID(), type: 'call.unreachable', timestamp: this.now(), callId: info.callId, tenant: info.tenant, caller: info.caller, callee: { id: info.callee } };
  }

  private base<T extends WebhookType>(type: T, call: CallRecord) {
    return {
      id: randomUUID(),
      type,
      timestamp: this.now(),
      callId: call.id,
      tenant: call.tenant,
      caller: { id: call.caller.userId, name: call.caller.name },
      callee: { id: call.callee.userId, name: call.callee.name },
    };
  }

  /** Queues an event for delivery; returns at once. */
  enqueue(event: WebhookEvent): void {
    if (this.closed) {
      this.dropped(event, 'shut down');
      return;
    }
    const job: Job = { event, body: JSON.stringify(event), attempts: 0, state: 'queued', timer: null };
    this.jobs.set(event.id, job);
    const chain = this.chains.get(event.callId);
    if (chain) chain.push(job);
    else {
      this.chains.set(event.callId, [job]);
      this.makeReady(job);
    }
    if (this.jobs.size > this.maxQueue) this.dropOldest();
    this.options.metrics?.webhookQueue.set(this.jobs.size);
    this.pump();
  }

  /** Resolves true once everything queued has been delivered or given up, false if `timeoutMs` passes first. */
  flush(timeoutMs: number): Promise<boolean> {
    if (this.jobs.size === 0) return Promise.resolve(true);
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.idle = this.idle.filter((w) => w !== done);
        resolve(false);
      }, timeoutMs);
      const done = () => (clearTimeout(timer), resolve(true));
      this.idle.push(done);
    });
  }

  /** Stops: nothing more is sent; what is still queued is dropped with one log line. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    const left = [...this.jobs.values()];
    for (const job of left) if (job.timer) clearTimeout(job.timer);
    if (left.length > 0) {
      this.options.logger.warn({ dropped: left.length }, 'webhooks not delivered before shutdown, dropped');
      this.options.metrics?.webhookDeliveries.inc({ result: 'dropped' }, left.length);
    }
    this.jobs.clear();
    this.chains.clear();
    this.ready.length = 0;
    this.options.metrics?.webhookQueue.set(0);
    this.settle();
  }

  private makeReady(job: Job): void {
    job.state = 'ready';
    this.ready.push(job);
  }

  private pump(): void {
    while (!this.closed && this.inFlight < this.concurrency && this.ready.length > 0) {
      const job = this.ready.shift()!;
      if (job.state === 'ready') void this.attempt(job);
    }
  }

  /** One signed POST of `body`: null when answered 2xx within `timeoutMs`, else why not. */
  private async post(body: string, timeoutMs: number): Promise<string | null> {
    try {
      const t = Math.floor(this.now() / 1000);
      const res = await fetch(this.url, {
        method: 'POST',
        headers: {
          'content-type': 'application/json',
          'user-agent': 'switchboard-webhooks/1',
          [SIGNATURE_HEADER]: signWebhook(this.options.secret, body, t),
          ...(this.authorization ? { authorization: this.authorization } : {}),
        },
        body,
        // A redirect would turn the POST into a GET elsewhere: treat it as a failure instead.
        redirect: 'manual',
        signal: AbortSignal.timeout(timeoutMs),
      });
      await res.body?.cancel().catch(() => undefined);
      return res.status < 200 || res.status > 299 ? `HTTP ${res.status}` : null;
    } catch (err) {
      return errorText(err);
    }
  }

  private async attempt(job: Job): Promise<void> {
    job.state = 'in-flight';
    job.attempts++;
    this.inFlight++;
    let failure: string | null;
    try {
      failure = await this.post(job.body, this.attemptTimeoutMs);
    } finally {
      this.inFlight--;
    }
    if (this.closed) return;
    const { event } = job;
    const fields = { callId: event.callId, type: event.type, eventId: event.id, attempt: job.attempts };
    if (failure === null) {
      this.options.metrics?.webhookDeliveries.inc({ result: 'ok' });
      this.options.logger.debug(fields, 'webhook delivered');
      this.finish(job);
    } else if (job.attempts <= this.retryDelaysMs.length) {
      this.options.metrics?.webhookDeliveries.inc({ result: 'retry' });
      const delayMs = this.retryDelaysMs[job.attempts - 1]!;
      this.options.logger.debug({ ...fields, error: failure, retryInMs: delayMs }, 'webhook attempt failed, will retry');
      job.state = 'waiting';
      job.timer = setTimeout(() => {
        job.timer = null;
        if (job.state !== 'waiting') return;
        this.makeReady(job);
        this.pump();
      }, delayMs);
      job.timer.unref();
    } else {
      this.options.metrics?.webhookDeliveries.inc({ result: 'failed' });
      this.options.logger.warn({ ...fields, error: failure, url: maskUrl(this.url) }, 'webhook not delivered after every attempt, dropped');
      this.finish(job);
    }
    this.pump();
  }

  /** The queue is full: drop the oldest event that is not on its way right now. */
  private dropOldest(): void {
    for (const job of this.jobs.values()) {
      if (job.state === 'in-flight') continue;
      this.dropped(job.event, 'queue full');
      this.finish(job);
      return;
    }
  }

  private dropped(event: WebhookEvent, why: string): void {
    this.options.metrics?.webhookDeliveries.inc({ result: 'dropped' });
    this.options.logger.warn({ callId: event.callId, type: event.type, eventId: event.id, why }, 'webhook dropped');
  }

  /** The event is delivered, given up or dropped: the next event of its call may go. */
  private finish(job: Job): void {
    if (job.timer) clearTimeout(job.timer);
    job.timer = null;
    job.state = 'done';
    this.jobs.delete(job.event.id);
    const chain = this.chains.get(job.event.callId);
    if (chain) {
      const i = chain.indexOf(job);
      if (i >= 0) chain.splice(i, 1);
      if (chain.length === 0) this.chains.delete(job.event.callId);
      else if (i === 0 && chain[0]!.state === 'queued') this.makeReady(chain[0]!);
    }
    this.options.metrics?.webhookQueue.set(this.jobs.size);
    this.settle();
  }

  private settle(): void {
    if (this.jobs.size > 0) return;
    const waiters = this.idle;
    this.idle = [];
    waiters.forEach((w) => w());
  }
}

function timesOf(call: CallRecord): CallTimes {
  return { media: call.media, createdAt: call.createdAt, answeredAt: call.answeredAt };
}
