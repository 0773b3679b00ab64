/**
 * Metrics an operator graphs: calls by state (ringing too), Redis operation
 * latency around the store, and a Grafana dashboard that only uses metrics
 * the server really exports.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, test } from 'node:test';
import { dropPrefix, freshPrefix, sharedRedis } from './cluster/harness.js';
import { errorCode, establish, expectOk, ring, signIn, startTestServer } from './helpers.js';
import type { SwitchboardServer } from '../src/index.js';

async function gauge(server: SwitchboardServer, name: 'ringingCalls' | 'activeCalls'): Promise<number> {
  return (await server.metrics[name].get()).values[0]?.value ?? 0;
}

describe('operating metrics', () => {
  test('calls by state: ringing and active gauges follow ring, answer, decline, busy and hangup', async () => {
    const server = await startTestServer();
    try {
      const alice = await signIn(server, 'alice');
      const bob = await signIn(server, 'bob');
      const carol = await signIn(server, 'carol');
      const first = await ring(alice, [bob], 'bob');
      assert.equal(await gauge(server, 'ringingCalls'), 1);
      expectOk(await bob.request('call:accept', { callId: first }));
      await alice.next('call:accepted');
      assert.deepEqual([await gauge(server, 'ringingCalls'), await gauge(server, 'activeCalls')], [0, 1]);
      // A busy call never rings.
      expectOk(await carol.request('call:request', { to: 'bob' }));
      await carol.next('call:busy');
      assert.equal(await gauge(server, 'ringingCalls'), 0);
      expectOk(await alice.request('call:end', { callId: first }));
      await bob.next('call:ended');
      assert.equal(await gauge(server, 'activeCalls'), 0);
      const declined = await ring(carol, [alice], 'alice');
      assert.equal(await gauge(server, 'ringingCalls'), 1);
      expectOk(await alice.request('call:reject', { callId: declined }));
      await carol.next('call:rejected');
      assert.equal(await gauge(server, 'ringingCalls'), 0);

      const text = await (await fetch(`${server.url}/metrics`)).text();
      assert.match(text, /^switchboard_ringing_calls 0$/m);
      assert.match(text, /^switchboard_draining 0$/m);
      [alice, bob, carol].forEach((c) => c.close());
    } finally {
      await server.close();
    }
  });

  test('Redis mode: every store operation is timed by operation and result; the dashboard uses only exported metrics', async () => {
    const redis = await sharedRedis();
    const prefix = freshPrefix();
    const server = await startTestServer({ REDIS_URL: redis.url, REDIS_PREFIX: prefix });
    try {
      const alice = await signIn(server, 'alice');
      const bob = await signIn(server, 'bob');
      const callId = await establish(alice, bob, 'bob');
      expectOk(await alice.request('call:end', { callId }));
      await bob.next('call:ended');
      // The node ran every event of this call itself, so it never had to read the call back: a late relay does.
      assert.equal(errorCode(await alice.request('webrtc:offer', { callId, sdp: 'v=0' })), 'invalid_state');
      const text = await (await fetch(`${server.url}/metrics`)).text();
      for (const op of ['addSession', 'getCall', 'commitCall', 'getClaims', 'sessionsOf']) {
        const count = new RegExp(`^switchboard_redis_operation_seconds_count\\{op="${op}",result="ok"\\} (\\d+)$`, 'm').exec(text);
        assert.ok(count && Number(count[1]) > 0, `${op} is timed`);
      }

      const exported = new Set([...text.matchAll(/^# TYPE (\w+) /gm)].map((m) => m[1]!));
      const dashboard = JSON.parse(readFileSync(new URL('../../../docs/grafana-dashboard.json', import.meta.url), 'utf8')) as {
        panels: { title: string; targets?: { expr: string }[] }[];
      };
      const used = new Set<string>();
      for (const panel of dashboard.panels) {
        for (const target of panel.targets ?? []) {
          for (const [name] of target.expr.matchAll(/switchboard_\w+/g)) used.add(name.replace(/_(bucket|count|sum)$/, ''));
        }
      }
      assert.ok(used.size >= 12, 'the dashboard graphs the metrics');
      for (const name of used) assert.ok(exported.has(name), `${name} used by the dashboard is exported`);
      for (const name of ['switchboard_ringing_calls', 'switchboard_redis_operation_seconds', 'switchboard_webhook_deliveries_total', 'switchboard_call_setup_seconds', 'switchboard_errors_total', 'switchboard_rate_limited_total', 'switchboard_call_quality_mos', 'switchboard_call_quality_rtt_seconds', 'switchboard_call_quality_jitter_seconds', 'switchboard_call_quality_loss_ratio', 'switchboard_call_quality_warnings_total']) {
        assert.ok(used.has(name), `the dashboard shows ${name}`);
      }
      alice.close();
      bob.close();
    } finally {
      await server.close();
      await dropPrefix(redis.url, prefix);
      await redis.release();
    }
  });
});
