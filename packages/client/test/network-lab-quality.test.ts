/**
 * Call quality and preflight on real networks (test/lab/netlab.ts): alice and
 * bob behind their own NATs, only TURN between them, a real coturn. Random
 * loss raises and clears warnings at the side that receives it and reaches
 * the peer as `remoteQuality`; both parties' summaries reach the history, the
 * `call.ended` webhook and `/metrics`; preflight passes through TURN, reports
 * the relay's RTT, and names TURN when it is blocked.
 *
 * Needs root (network namespaces, nftables) and coturn's `turnserver`.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { PreflightReport, QualitySummary } from '../src/index.js';
import type { LabPhone } from '../../../test/lab/lab-phone.js';
import { LAB, NetLab } from '../../../test/lab/netlab.js';
import { connectedCall, hangUp, startPair } from '../../../test/lab/calls.js';
import { pollUntil } from '../../../test/support/wait.js';

/** The issue's bounds: a warning raised, and cleared, within 10 s of the loss starting, and stopping. */
const WARNING_WITHIN_MS = 10_000;

describe('network lab: call quality and preflight', () => {
  let lab: NetLab;
  let alice: LabPhone;
  let bob: LabPhone;

  before(async () => {
    lab = await NetLab.start({ webhooks: true, serverEnv: { PING_INTERVAL_MS: '1000', PING_TIMEOUT_MS: '1000' } });
    [alice, bob] = await startPair(lab);
  });

  after(async () => {
    await lab?.close();
    for (const { name, exit } of lab?.agentExits ?? []) console.log(`netlab: ${name}'s agent exited: ${exit.signal ?? `code ${exit.code}`}`);
  });

  test('preflight passes: signalling, STUN through the NAT, TURN over UDP with its RTT, and audio relayed through coturn with a MOS', async (t) => {
    const report = await alice.preflight<PreflightReport>({ timeoutMs: 15_000 });
    t.diagnostic(JSON.stringify({ ...report, servers: report.servers.map((s) => `${s.url} ${s.ok ? s.candidate?.type : s.reason}`) }));
    assert.equal(report.ok, true, `preflight ok (reason ${report.reason})`);
    assert.equal(report.reason, undefined);
    assert.ok(report.signaling.ok && report.signaling.rttMs !== null && report.signaling.rttMs > 0);
    assert.ok(report.stun.ok, 'coturn answers as a STUN server');
    const stun = report.servers.find((s) => s.kind === 'stun');
    assert.equal(stun?.candidate?.type, 'srflx', 'behind its NAT, alice gets a server-reflexive candidate');
    assert.equal(stun?.candidate?.address.split(':')[0], LAB.wan('r1'), "…on its router's WAN address");
    assert.deepEqual([report.turn.ok, report.turn.transport], [true, 'udp']);
    // Direct paths are dropped in the lab: the loopback can only go through the relay, and says so.
    // Measured (not null) through the relay; the lab's links are sub-millisecond, so it may round to 0.
    assert.ok(report.turn.rttMs !== null && Number.isFinite(report.turn.rttMs) && report.turn.rttMs >= 0, `TURN RTT ${report.turn.rttMs}`);
    assert.ok(report.media, 'the audio loopback ran');
    assert.equal(report.media.relayed, true);
    assert.equal(report.media.lossPct, 0);
    assert.ok(report.media.mos >= 4, `MOS ${report.media.mos}`);
    assert.ok(report.media.samples >= 2);
    assert.deepEqual(report.warnings, []);
    assert.ok(report.servers.find((s) => s.kind === 'turn')?.candidate?.address.startsWith(`${LAB.services}:`), 'the relay candidate is on coturn');
  });

  test('preflight with TURN blocked fails, and says TURN is unreachable', async (t) => {
    await lab.blockTurn();
    try {
      const report = await alice.preflight<PreflightReport>({ timeoutMs: 10_000 });
      t.diagnostic(`${report.reason} after ${report.durationMs} ms: ${report.servers.map((s) => `${s.url} ${s.ok ? 'ok' : s.reason}`).join(', ')}`);
      assert.equal(report.ok, false);
      assert.equal(report.reason, 'turn_unreachable');
      assert.deepEqual([report.turn.ok, report.turn.reason], [false, 'turn_unreachable']);
      assert.equal(report.media, null, 'no audio loopback without a relay');
      assert.equal(report.signaling.ok, true, 'signalling still answers');
      assert.ok(report.durationMs < 12_000, `bounded by its budget: ${report.durationMs} ms`);
      assert.ok((await lab.dropped('internet')) > 0, 'the TURN block dropped packets');
    } finally {
      await lab.unblockTurn();
    }
  });

  test('10 % loss at alice: bob raises high-packet-loss within 10 s, his level drops, alice sees it as remoteQuality, and it clears within 10 s after', async (t) => {
    const { callId } = await connectedCall(alice, bob);
    const marks = { alice: alice.mark(), bob: bob.mark() };
    const lossFrom = Date.now();
    await lab.loss('alice', 10);
    const raised = await bob.waitFor('warning', (e) => e.name === 'high-packet-loss', { since: marks.bob, timeoutMs: WARNING_WITHIN_MS });
    const lossy = await bob.waitFor('quality', (e) => e.level !== 'good' && e.warnings.includes('high-packet-loss'), { since: marks.bob, timeoutMs: 5000 });
    assert.ok(['fair', 'poor'].includes(lossy.level));
    const seen = await alice.waitFor('remote-quality', (e) => e.warnings.includes('high-packet-loss'), { since: marks.alice, timeoutMs: 5000 });
    assert.notEqual(seen.level, 'good');
    const dropped = await lab.dropped('alice');
    await lab.loss('alice', 0);
    const lossTo = Date.now();
    const after = alice.mark();
    const cleared = await bob.waitFor('warning-cleared', (e) => e.name === 'high-packet-loss', { since: marks.bob, timeoutMs: WARNING_WITHIN_MS });
    await alice.waitFor('remote-quality', (e) => !e.warnings.includes('high-packet-loss'), { since: after, timeoutMs: 5000 });
    t.diagnostic(
      `${dropped} packets dropped; bob raised high-packet-loss ${raised.t - lossFrom} ms after the loss began (at ${lossy.lossPct} % loss, MOS ${lossy.mos}, ${lossy.level}); ` +
        `alice saw ${seen.level} ${raised.t <= seen.t ? seen.t - raised.t : 0} ms later; cleared ${cleared.t - lossTo} ms after the loss stopped`,
    );
    assert.ok(dropped > 0);

    await hangUp(alice, bob);
    // The history of each party carries both summaries; bob, who received the lossy audio, shows it.
    for (const user of ['alice', 'bob']) {
      const page = JSON.parse(await lab.get('/api/calls?limit=1', user)) as { calls: { callId: string; quality?: { caller?: QualitySummary; callee?: QualitySummary } }[] };
      const entry = page.calls[0];
      assert.equal(entry?.callId, callId);
      assert.ok(entry.quality?.caller && entry.quality.callee, `${user}'s record has both summaries: ${JSON.stringify(entry.quality)}`);
      assert.ok(entry.quality.callee.lossPct.max > 1, `bob's reports show the loss: ${JSON.stringify(entry.quality.callee)}`);
      assert.notEqual(entry.quality.callee.worstLevel, 'good');
      assert.ok(entry.quality.caller.samples >= 2 && entry.quality.callee.samples >= 2);
    }
    const ended = await pollUntil('the call.ended webhook', () => lab.webhookEvents().find((e) => e.type === 'call.ended' && e.callId === callId), 10_000);
    const quality = ended!.quality as { caller?: QualitySummary; callee?: QualitySummary } | undefined;
    assert.ok(quality?.caller && quality.callee, `the webhook carries both summaries: ${JSON.stringify(quality)}`);
    assert.ok(quality.callee.lossPct.max > 1);

    const metrics = await lab.get('/metrics', 'alice');
    for (const name of ['mos', 'rtt_seconds', 'jitter_seconds', 'loss_ratio']) {
      for (const role of ['caller', 'callee']) assert.match(metrics, new RegExp(`switchboard_call_quality_${name}_count\\{role="${role}"\\} [1-9]`), `${name} for the ${role}`);
    }
    assert.match(metrics, /switchboard_call_quality_warnings_total\{warning="high-packet-loss"\} [1-9]/);
  });
});
