/**
 * Prometheus metrics, one registry per server instance (several can share a
 * process in tests). Call gauges move on the node that sees each change, so
 * in Redis mode only their sum over nodes means anything: graph `sum(...)`.
 */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { QualitySummary, QualityWarning } from '@switchboard/protocol';
import type { CallHooks } from './calls/hooks.js';

/** A histogram of one quality measure, observed once per party per call (its mean over the call). */
function qualityHistogram(registry: Registry, name: string, help: string, buckets: number[]): Histogram<'role'> {
  return new Histogram({ name: `switchboard_call_quality_${name}`, help, labelNames: ['role'] as const, buckets, registers: [registry] });
}

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

  /** v1.1 call quality: one observation per party per call that reported, of its mean over the call. */
  readonly qualityMos = qualityHistogram(this.registry, 'mos', 'Mean estimated MOS a party reported over a call, by role', [1.5, 2, 2.5, 3, 3.5, 3.8, 4, 4.2, 4.4]);
  readonly qualityRtt = qualityHistogram(this.registry, 'rtt_seconds', 'Mean round-trip time a party reported over a call, by role', [0.025, 0.05, 0.1, 0.15, 0.2, 0.3, 0.4, 0.6, 1, 2]);
  readonly qualityJitter = qualityHistogram(this.registry, 'jitter_seconds', 'Mean jitter of received audio a party reported over a call, by role', [0.005, 0.01, 0.02, 0.03, 0.05, 0.1, 0.2]);
  readonly qualityLoss = qualityHistogram(this.registry, 'loss_ratio', 'Mean fraction of received audio packets lost that a party reported over a call, by role', [0.001, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5]);
  private readonly warningCounts = new PlainCounts<'warning'>();
  readonly qualityWarnings: Counter<'warning'> = new Counter({
    name: 'switchboard_call_quality_warnings_total',
    help: 'Quality warnings raised by parties of calls (counted when a report first carries one), by name',
    labelNames: ['warning'] as const,
    registers: [this.registry],
    collect: () => this.warningCounts.handTo(this.qualityWarnings),
  });

  constructor() {
    collectDefaultMetrics({ register: this.registry, prefix: 'switchboard_process_' });
  }

  /** Counts a quality warning a party raised. */
  qualityWarning(warning: QualityWarning): void {
    this.warningCounts.of(warning, { warning }).inc();
  }

  /** Observes one party's quality summary of a call. */
  observeQuality(role: 'caller' | 'callee', summary: QualitySummary): void {
    this.qualityMos.observe({ role }, summary.mos.mean);
    this.qualityRtt.observe({ role }, summary.rttMs.mean / 1000);
    this.qualityJitter.observe({ role }, summary.jitterMs.mean / 1000);
    this.qualityLoss.observe({ role }, summary.lossPct.mean / 100);
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
      const quality = history.caller.quality;
      if (quality?.caller) metrics.observeQuality('caller', quality.caller);
      if (quality?.callee) metrics.observeQuality('callee', quality.callee);
    },
  };
}
