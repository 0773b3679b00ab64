/**
 * `call:quality` (v1.1), in both modes (Redis with the parties on two nodes):
 * a bound party's report reaches its peer as `{ callId, userId, level,
 * warnings }`; a report within a second of the last is dropped; bad numbers,
 * names and senders are refused; both parties' summaries reach the history
 * records, the `call.ended` webhook and the Prometheus histograms.
 */
import assert from 'node:assert/strict';
import { setTimeout as delay } from 'node:timers/promises';
import { after, before, describe, test } from 'node:test';
import { pino } from 'pino';
import type { QualityReport, QualitySummary } from '@switchboard/protocol';
import { loadConfig, startServer, userKey, type SwitchboardServer } from '../src/index.js';
import { Metrics } from '../src/metrics.js';
import { WebhookSender } from '../src/webhooks.js';
import { dropPrefix, freshPrefix, sharedRedis } from './cluster/harness.js';
import { errorCode, establish, expectOk, ring, signIn, TEST_SECRET, type TestClient } from './helpers.js';
import { Receiver } from './ops-helpers.js';

type Mode = 'memory' | 'redis';
const WEBHOOK_SECRET = 'whsec-quality-0123456789abcdef';
/** A little over the server's minimum spacing of reports (900 ms). */
const SPACING_MS = 1_000;

const good: QualityReport = { mos: 4.4, rttMs: 40, jitterMs: 2, lossPct: 0, level: 'good', warnings: [] };
const lossy: QualityReport = { mos: 3.1, rttMs: 60, jitterMs: 12, lossPct: 9, level: 'poor', warnings: ['high-packet-loss', 'low-mos'] };

const close = (a: number, b: number) => Math.abs(a - b) < 1e-9;

for (const mode of ['memory', 'redis'] as Mode[]) {
  describe(`call quality reports (${mode} mode)`, () => {
    let redis: { url: string; release(): Promise<void> } | undefined;
    let receiver: Receiver;
    const prefix = freshPrefix();
    const nodes: { server: SwitchboardServer; metrics: Metrics }[] = [];
    const clients: TestClient[] = [];
    let n = 0;
    const names = (...roles: string[]) => roles.map((r) => `${r}${++n}`);
    /** Caller on the first node, callee on the last (another node in Redis mode). */
    const pair = async () => {
      const [a, b] = names('qa', 'qb');
      const caller = await signIn(nodes[0]!.server, a!);
      const callee = await signIn(nodes[nodes.length - 1]!.server, b!);
      clients.push(caller, callee);
      return { a: a!, b: b!, caller, callee, callId: await establish(caller, callee, b!) };
    };

    before(async () => {
      receiver = await Receiver.start(WEBHOOK_SECRET);
      if (mode === 'redis') redis = await sharedRedis();
      const env = { PORT: '0', HOST: '127.0.0.1', JWT_SECRET: TEST_SECRET, LOG_LEVEL: 'silent', RATE_LIMITS: 'off', ...(redis ? { REDIS_URL: redis.url, REDIS_PREFIX: prefix } : {}) };
      for (let i = 0; i < (mode === 'redis' ? 2 : 1); i++) {
        const metrics = new Metrics();
        const sender = new WebhookSender({ url: receiver.url, secret: WEBHOOK_SECRET, logger: pino({ level: 'silent' }), metrics });
        nodes.push({ server: await startServer(loadConfig(env), { hooks: [sender], metrics, logger: pino({ level: 'silent' }) }), metrics });
      }
    });
    after(async () => {
      clients.forEach((c) => c.close());
      await Promise.all(nodes.map((node) => node.server.close()));
      await receiver.close();
      if (redis) await dropPrefix(redis.url, prefix);
      await redis?.release();
    });

    test('a report reaches the peer with the sender and its level and warnings; one within a second of the last is dropped; one that changes nothing is not sent on', async () => {
      const { a, caller, callee, callId } = await pair();
      const ack = await caller.request<{ callId: string; dropped?: true }>('call:quality', { callId, ...lossy });
      expectOk(ack);
      assert.equal(ack.dropped, undefined);
      assert.deepEqual(await callee.next('call:quality'), { callId, userId: a, level: 'poor', warnings: ['high-packet-loss', 'low-mos'] });

      const soon = await caller.request<{ callId: string; dropped?: true }>('call:quality', { callId, ...good });
      expectOk(soon);
      assert.equal(soon.dropped, true, 'a second report at once is dropped');
      await delay(SPACING_MS);
      expectOk(await caller.request('call:quality', { callId, ...good }));
      assert.deepEqual(await callee.next('call:quality'), { callId, userId: a, level: 'good', warnings: [] }, 'the dropped report never reached the peer');
      await delay(SPACING_MS);
      const same = await caller.request<{ callId: string; dropped?: true }>('call:quality', { callId, ...good, mos: 4.3 });
      expectOk(same);
      assert.equal(same.dropped, undefined, 'taken (it counts in the summary)…');
      await callee.sync();
      assert.deepEqual(callee.received('call:quality'), [], '…but the peer already knows its level and warnings');
    });

    test('bad reports are refused with invalid_payload, and only a bound party of an active call may report', async () => {
      const { caller, callee, callId } = await pair();
      const bad: [string, Record<string, unknown>][] = [
        ['mos above 5', { ...good, mos: 5.5 }],
        ['mos below 1', { ...good, mos: 0 }],
        ['negative rtt', { ...good, rttMs: -1 }],
        ['loss above 100 %', { ...good, lossPct: 101 }],
        ['a level of its own', { ...good, level: 'great' }],
        ['an unknown warning', { ...good, warnings: ['too-quiet'] }],
        ['a warning twice', { ...good, warnings: ['high-rtt', 'high-rtt'] }],
        ['a number as text', { ...good, rttMs: '40' }],
        ['no jitter', { mos: 4, rttMs: 40, lossPct: 0, level: 'good', warnings: [] }],
      ];
      for (const [what, report] of bad) {
        assert.equal(errorCode(await caller.request('call:quality', { callId, ...report })), 'invalid_payload', what);
      }
      const [c] = names('qc');
      const stranger = await signIn(nodes[0]!.server, c!);
      clients.push(stranger);
      assert.equal(errorCode(await stranger.request('call:quality', { callId, ...good })), 'forbidden', 'a stranger');

      const [x, y] = names('qx', 'qy');
      const ringer = await signIn(nodes[0]!.server, x!);
      const rung = await signIn(nodes[nodes.length - 1]!.server, y!);
      clients.push(ringer, rung);
      const ringing = await ring(ringer, [rung], y!);
      assert.equal(errorCode(await ringer.request('call:quality', { callId: ringing, ...good })), 'invalid_state', 'a ringing call');
      expectOk(await caller.request('call:end', { callId }));
      await callee.next('call:ended');
      assert.equal(errorCode(await callee.request('call:quality', { callId, ...good })), 'invalid_state', 'an ended call');
    });

    test('both parties’ summaries reach both history records, the call.ended webhook and the histograms', async () => {
      const { a, b, caller, callee, callId } = await pair();
      const callerReports = [good, lossy, good];
      const calleeReports = [lossy, lossy];
      for (let i = 0; i < callerReports.length; i++) {
        if (i > 0) await delay(SPACING_MS);
        expectOk(await caller.request('call:quality', { callId, ...callerReports[i] }));
        if (calleeReports[i]) expectOk(await callee.request('call:quality', { callId, ...calleeReports[i] }));
      }
      // The callee hangs up: in Redis mode on the other node than the caller's, which saved only the caller's first report.
      expectOk(await callee.request('call:end', { callId }));
      await caller.next('call:ended');
      const callerSeen = mode === 'memory' ? callerReports.length : 1;

      const check = (summary: QualitySummary | undefined, reports: QualityReport[], who: string) => {
        assert.ok(summary, `${who} has a summary`);
        assert.equal(summary.samples, reports.length, `${who}: samples`);
        const mean = (k: 'mos' | 'rttMs' | 'jitterMs' | 'lossPct') => reports.reduce((s, r) => s + r[k], 0) / reports.length;
        assert.ok(close(summary.mos.mean, mean('mos')), `${who}: MOS mean ${summary.mos.mean}`);
        assert.equal(summary.mos.min, Math.min(...reports.map((r) => r.mos)));
        assert.ok(close(summary.lossPct.mean, mean('lossPct')), `${who}: loss mean`);
        assert.equal(summary.lossPct.max, Math.max(...reports.map((r) => r.lossPct)));
        assert.equal(summary.rttMs.max, Math.max(...reports.map((r) => r.rttMs)));
        assert.ok(close(summary.jitterMs.mean, mean('jitterMs')), `${who}: jitter mean`);
        assert.equal(summary.worstLevel, reports.some((r) => r.level === 'poor') ? 'poor' : 'good');
      };
      for (const user of [a, b]) {
        const [entry] = (await nodes[0]!.server.store.listHistory(userKey('', user), 1, null)).calls;
        assert.equal(entry?.callId, callId);
        assert.deepEqual(entry.media, { audio: true, video: false });
        check(entry.quality?.caller, callerReports.slice(0, callerSeen), `${user}'s record, caller`);
        check(entry.quality?.callee, calleeReports, `${user}'s record, callee`);
      }
      const ended = await receiver.next('call.ended', (e) => e.type === 'call.ended' && e.callId === callId);
      assert.ok(ended.type === 'call.ended');
      check(ended.quality?.caller, callerReports.slice(0, callerSeen), 'webhook, caller');
      check(ended.quality?.callee, calleeReports, 'webhook, callee');
      assert.deepEqual(ended.history.caller.quality, ended.quality);

      // The node that ended the call observed each party once; each node counted the warnings its sockets raised.
      const ender = nodes[nodes.length - 1]!.metrics;
      const text = await ender.registry.metrics();
      for (const role of ['caller', 'callee']) {
        assert.match(text, new RegExp(`switchboard_call_quality_mos_count\\{role="${role}"\\} [1-9]`), `MOS observed for the ${role}`);
        assert.match(text, new RegExp(`switchboard_call_quality_loss_ratio_bucket\\{le="0.05",role="${role}"\\} \\d`));
      }
      assert.match(text, /switchboard_call_quality_rtt_seconds_sum\{role="callee"\} 0\.06/);
      assert.match(text, /switchboard_call_quality_jitter_seconds_count\{role="caller"\} [1-9]/);
      const warnings = nodes.length === 1 ? text : await nodes[0]!.metrics.registry.metrics();
      assert.match(warnings, /switchboard_call_quality_warnings_total\{warning="high-packet-loss"\} [1-9]/);
    });
  });
}
