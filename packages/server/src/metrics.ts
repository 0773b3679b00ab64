/**
 * Prometheus metrics, one registry per server instance (several can share a
 * process in tests). Call gauges move on the node that sees each change, so
 * in Redis mode only their sum over nodes means anything: graph `sum(...)`.
 */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { CallHooks } from './calls/hooks.js';

export class Metrics {
  readonly registry = new Registry();
  readonly connectedSessions = new Gauge({
    name: 'switchboard_connected_sessions',
    help: 'Authenticated sessions with a live socket on this node',
    registers: [this.registry],
  });
  readonly activeCalls = new Gauge({
    name: 'switchboard_active_calls',
    help: 'Calls in progress that this node has seen answered and not yet ended',
    registers: [this.registry],
  });
  readonly ringingCalls = new Gauge({
    name: 'switchboard_ringing_calls',
    help: 'Calls ringing: started on this node minus answered or ended unanswered on this node (sum over nodes)',
    registers: [this.registry],
  });
  readonly callsTotal = new Counter({
    name: 'switchboard_calls_total',
    help: 'Ended calls, by outcome',
    labelNames: ['outcome'] as const,
    registers: [this.registry],
  });
  readonly callSetupSeconds = new Histogram({
    name: 'switchboard_call_setup_seconds',
    help: 'Time from call:request to call:accepted',
    buckets: [0.5, 1, 2, 3, 5, 8, 13, 21, 30, 60],
    registers: [this.registry],
  });
  private readonly eventCounts = new PlainCounts<'event'>();
  readonly eventsTotal: Counter<'event'> = new Counter({
    name: 'switchboard_events_total',
    help: 'Client events received, by event name',
    labelNames: ['event'] as const,
    registers: [this.registry],
    collect: () => this.eventCounts.handTo(this.eventsTotal),
  });
  private readonly mailCounts = new PlainCounts<'direction' | 'kind'>();
  readonly crossNodeMessages: Counter<'direction' | 'kind'> = new Counter({
    name: 'switchboard_cross_node_messages_total',
    help: 'Redis mode: session-mail messages published to other nodes (out) and received (in), by kind: session, room, or unreadable',
    labelNames: ['direction', 'kind'] as const,
    registers: [this.registry],
    collect: () => this.mailCounts.handTo(this.crossNodeMessages),
  });
  readonly errorsTotal = new Counter({
    name: 'switchboard_errors_total',
    help: 'Error answers sent, by code',
    labelNames: ['code'] as const,
    registers: [this.registry],
  });
  readonly rateLimitedTotal = new Counter({
    name: 'switchboard_rate_limited_total',
    help: 'Client events refused by a rate limit, by event name',
    labelNames: ['event'] as const,
    registers: [this.registry],
  });

  readonly redisSeconds = new Histogram({
    name: 'switchboard_redis_operation_seconds',
    help: 'Latency of store operations against Redis (one or a few commands or one Lua script each), by operation and result',
    labelNames: ['op', 'result'] as const,
    buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
    registers: [this.registry],
  });
  readonly webhookDeliveries = new Counter({
    name: 'switchboard_webhook_deliveries_total',
    help: 'Webhook delivery attempts by result: ok (2xx), retry (failed, will retry), failed (gave up), dropped (queue full)',
    labelNames: ['result'] as const,
    registers: [this.registry],
  });
  readonly webhookQueue = new Gauge({
    name: 'switchboard_webhook_queue_length',
    help: 'Webhook events waiting to be delivered (including those waiting to retry)',
    registers: [this.registry],
  });
  readonly draining = new Gauge({
    name: 'switchboard_draining',
    help: '1 while this node drains (SIGTERM): it takes no new connections',
    registers: [this.registry],
  });

  constructor() {
    collectDefaultMetrics({ register: this.registry, prefix: 'switchboard_process_' });
  }

  /** Counts one session-mail message. */
  countMail(direction: 'out' | 'in', kind: 'session' | 'room' | 'unreadable'): void {
    this.mailCounts.of(`${direction} ${kind}`, { direction, kind }).inc();
  }

  /** The counter of one client event name: resolve it once, then `inc()` per event. */
  eventCounter(event: string): { inc(): void } {
    return this.eventCounts.of(event, { event });
  }
}

/**
 * Counts kept as plain numbers on a hot path (a labelled `inc()` hashes its
 * labels every time), handed to their prom-client counter when it is scraped.
 */
class PlainCounts<L extends string> {
  private readonly counts = new Map<string, { labels: Record<L, string>; n: number; reported: number; inc(): void }>();

  /** The count of one label set, under `key` (a string naming it). */
  of(key: string, labels: Record<L, string>): { inc(): void } {
    let count = this.counts.get(key);
    if (!count) {
      const entry = { labels, n: 0, reported: 0, inc: () => void entry.n++ };
      this.counts.set(key, (count = entry));
    }
    return count;
  }

  /** Adds what was counted since the last scrape to `counter`. */
  handTo(counter: Counter<L>): void {
    for (const count of this.counts.values()) {
      if (count.n === count.reported) continue;
      counter.inc(count.labels, count.n - count.reported);
      count.reported = count.n;
    }
  }
}

/**
 * The call metrics, as a `CallHooks` observer: calls ringing and active, setup
 * time, and calls by outcome (a busy call never rang: it ends without starting).
 */
export function callMetrics(metrics: Metrics): CallHooks {
  return {
    started: () => metrics.ringingCalls.inc(),
    answered(call) {
      metrics.ringingCalls.dec();
      metrics.activeCalls.inc();
      if (call.answeredAt !== null) metrics.callSetupSeconds.observe((call.answeredAt - call.createdAt) / 1000);
    },
    ended(call, history) {
      if (call.answeredAt === null && call.outcome !== 'busy') metrics.ringingCalls.dec();
      if (call.answeredAt !== null) metrics.activeCalls.dec();
      metrics.callsTotal.inc({ outcome: history.caller.outcome });
    },
  };
}
