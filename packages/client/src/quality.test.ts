/**
 * The SDK's quality sampling: readings of an RTCStatsReport (as libwebrtc
 * shapes them) become per-second samples, warnings rise and clear with
 * hysteresis, and reports to the server are paced.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { QualityTracker, REPORT_AT_LEAST_EVERY_MS, ReportPacer, type StatsReading, readStats } from './quality.js';

/** An RTCStatsReport as libwebrtc shapes one for an audio call: a Map of stats by id. */
function statsReport(entries: Record<string, unknown>[]): RTCStatsReport {
  return new Map(entries.map((e) => [e.id as string, e])) as unknown as RTCStatsReport;
}

test('readStats takes the received audio from inbound-rtp and the path from the transport’s selected pair', () => {
  const report = statsReport([
    { id: 'IT01', type: 'inbound-rtp', kind: 'audio', packetsReceived: 500, packetsLost: 12, bytesReceived: 40_000, jitter: 0.012, audioLevel: 0.3 },
    { id: 'RI01', type: 'remote-inbound-rtp', kind: 'audio', roundTripTime: 0.2 },
    { id: 'T01', type: 'transport', selectedCandidatePairId: 'CP2' },
    { id: 'CP1', type: 'candidate-pair', nominated: false, state: 'failed', currentRoundTripTime: 9, localCandidateId: 'L1', remoteCandidateId: 'R1' },
    { id: 'CP2', type: 'candidate-pair', nominated: true, state: 'succeeded', currentRoundTripTime: 0.048, localCandidateId: 'L2', remoteCandidateId: 'R1' },
    { id: 'L1', type: 'local-candidate', candidateType: 'host' },
    { id: 'L2', type: 'local-candidate', candidateType: 'relay' },
    { id: 'R1', type: 'remote-candidate', candidateType: 'srflx' },
  ]);
  assert.deepEqual(readStats(report, 1000), {
    at: 1000,
    packetsReceived: 500,
    packetsLost: 12,
    bytesReceived: 40_000,
    jitterMs: 12,
    rttMs: 48,
    audioLevel: 0.3,
    relayed: true,
  });
  // No selected pair yet: RTT from RTCP, the path unknown.
  const early = readStats(statsReport([{ id: 'RI01', type: 'remote-inbound-rtp', kind: 'audio', roundTripTime: 0.2 }]), 0);
  assert.equal(early.rttMs, 200);
  assert.equal(early.relayed, null);
  assert.equal(early.packetsReceived, 0);
});

const reading = (at: number, received: number, lost: number, extra: Partial<StatsReading> = {}): StatsReading => ({
  at,
  packetsReceived: received,
  packetsLost: lost,
  bytesReceived: received * 80,
  jitterMs: 5,
  rttMs: 40,
  audioLevel: null,
  relayed: false,
  ...extra,
});

test('samples give each second’s loss and bitrate; 10 % loss raises high-packet-loss after 3 s and clears 5 s after it stops', () => {
  const tracker = new QualityTracker();
  assert.equal(tracker.add(reading(0, 0, 0)), null, 'the first reading only sets the baseline');
  let received = 0;
  let lost = 0;
  const events: string[] = [];
  const levels: string[] = [];
  for (let second = 1; second <= 14; second++) {
    const lossy = second >= 3 && second <= 7;
    received += lossy ? 45 : 50;
    lost += lossy ? 5 : 0;
    const out = tracker.add(reading(second * 1000, received, lost))!;
    assert.equal(out.sample.packets, lossy ? 45 : 50);
    assert.equal(out.sample.lossPct, lossy ? 10 : 0);
    assert.equal(out.sample.bitrateKbps, (out.sample.packets * 80 * 8) / 1000);
    events.push(...out.raised.map((w) => `${second}+${w}`), ...out.cleared.map((w) => `${second}-${w}`));
    levels.push(out.sample.level);
  }
  // Loss from second 3: raised at the third bad sample (second 5); good again from 8: cleared at the fifth (12).
  assert.deepEqual(events, ['5+high-packet-loss', '5+low-mos', '12-high-packet-loss', '12-low-mos']);
  // 10 % loss scores MOS 3.11 (fair); the raised warnings keep it fair until they clear.
  assert.deepEqual(levels, ['good', 'good', ...Array<string>(9).fill('fair'), 'good', 'good', 'good']);
});

test('a second without packets scores MOS 1; three raise no-audio-received and make the level poor', () => {
  const tracker = new QualityTracker();
  tracker.add(reading(0, 100, 0));
  const samples = [1, 2, 3].map((s) => tracker.add(reading(s * 1000, 100, 0))!);
  assert.ok(samples.every((s) => s.sample.mos === 1 && s.sample.packets === 0));
  assert.deepEqual(samples[2]!.raised, ['low-mos', 'no-audio-received']);
  assert.equal(samples[2]!.sample.level, 'poor');
});

test('the pacer sends at once on a change, never twice within a second, and at least every 5 s when nothing changes', () => {
  const pacer = new ReportPacer();
  const good = { level: 'good' as const, warnings: [] };
  const poor = { level: 'poor' as const, warnings: ['high-packet-loss' as const] };
  const sent: number[] = [];
  const timeline: [number, typeof good | typeof poor][] = [];
  for (let t = 0; t <= 12_000; t += 1000) timeline.push([t, t >= 7000 && t < 9000 ? poor : good]);
  timeline.push([7500, poor]); // a sample half a second after a send: held back
  timeline.sort((a, b) => a[0] - b[0]);
  for (const [t, s] of timeline) if (pacer.due(s, t)) sent.push(t);
  assert.deepEqual(sent, [0, REPORT_AT_LEAST_EVERY_MS, 7000, 9000]);
  // Same warnings in another order are no change.
  const p2 = new ReportPacer();
  assert.equal(p2.due({ level: 'fair', warnings: ['high-rtt', 'high-jitter'] }, 0), true);
  assert.equal(p2.due({ level: 'fair', warnings: ['high-jitter', 'high-rtt'] }, 1000), false);
});
