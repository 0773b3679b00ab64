/** Prometheus metrics, one registry per server instance (several can share a process in tests). */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

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
  readonly eventsTotal = new Counter({
    name: 'switchboard_events_total',
    help: 'Client events received, by event name',
    labelNames: ['event'] as const,
    registers: [this.registry],
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

  constructor() {
    collectDefaultMetrics({ register: this.registry, prefix: 'switchboard_process_' });
  }
}
