/** The E-model against published reference points, and warnings that do not flap. */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { type QualitySample, Warnings, delayImpairment, estimateMos, levelOf, lossImpairment, mosFromR } from './quality-model.js';

const near = (actual: number, expected: number, within: number, what: string) =>
  assert.ok(Math.abs(actual - expected) <= within, `${what}: ${actual}, expected ${expected} ± ${within}`);

const sample = (over: Partial<QualitySample> = {}): QualitySample => ({ rttMs: 40, jitterMs: 2, lossPct: 0, mos: 4.4, packets: 50, ...over });

describe('MOS: the E-model', () => {
  test('R to MOS follows G.107 Annex B (R 93.2 → 4.41, 80 → 4.02, 70 → 3.60, 60 → 3.10, 50 → 2.58)', () => {
    for (const [r, mos] of [[93.2, 4.41], [80, 4.02], [70, 3.6], [60, 3.1], [50, 2.58]] as const) near(mosFromR(r), mos, 0.01, `R ${r}`);
    assert.equal(mosFromR(-5), 1);
    assert.equal(mosFromR(120), 4.5);
  });

  test('the delay impairment is Cole & Rosenbluth’s: 0.024 d, plus 0.11 (d − 177.3) past 177.3 ms', () => {
    near(delayImpairment(100), 2.4, 1e-9, 'd 100');
    near(delayImpairment(300), 7.2 + 0.11 * 122.7, 1e-9, 'd 300');
  });

  test('the loss impairment is G.107’s Ie_eff: with G.711 + PLC (Ie 0, Bpl 25.1), 2 % random loss costs 7.01', () => {
    near(lossImpairment(2, 0, 25.1), 7.01, 0.01, 'G.711 PLC at 2 %');
    assert.equal(lossImpairment(0), 0);
  });

  test('a clean call scores the narrowband ceiling; loss, jitter and delay each bring it down', () => {
    near(estimateMos({ rttMs: 20, jitterMs: 1, lossPct: 0 }), 4.4, 0.02, 'clean');
    assert.ok(estimateMos({ rttMs: 20, jitterMs: 1, lossPct: 10 }) < 3.5, '10 % loss is below 3.5');
    assert.ok(estimateMos({ rttMs: 800, jitterMs: 1, lossPct: 0 }) < estimateMos({ rttMs: 100, jitterMs: 1, lossPct: 0 }));
    assert.ok(estimateMos({ rttMs: 20, jitterMs: 80, lossPct: 0 }) < estimateMos({ rttMs: 20, jitterMs: 5, lossPct: 0 }));
  });
});

describe('warnings: hysteresis', () => {
  test('raised after 3 bad samples in a row, cleared after 5 good ones in a row; alternating samples change nothing', () => {
    const w = new Warnings();
    const lossy = sample({ lossPct: 10 });
    assert.deepEqual(w.add(lossy).raised, []);
    assert.deepEqual(w.add(sample()).raised, [], 'a good sample resets the streak');
    for (let i = 0; i < 2; i++) assert.deepEqual(w.add(lossy).raised, []);
    assert.deepEqual(w.add(lossy).raised, ['high-packet-loss']);
    assert.deepEqual(w.current, ['high-packet-loss']);
    for (let i = 0; i < 20; i++) {
      const { raised, cleared } = w.add(i % 2 ? lossy : sample());
      assert.deepEqual([raised, cleared], [[], []], 'no flapping on alternating samples');
    }
    for (let i = 0; i < 4; i++) assert.deepEqual(w.add(sample()).cleared, []);
    assert.deepEqual(w.add(sample()).cleared, ['high-packet-loss']);
    assert.deepEqual(w.current, []);
  });

  test('each warning has its own threshold; the level follows MOS and what is raised', () => {
    const w = new Warnings(1, 1);
    assert.deepEqual(w.add(sample({ rttMs: 500, jitterMs: 40, lossPct: 2, mos: 3, packets: 0 })).raised, [
      'high-rtt',
      'high-jitter',
      'high-packet-loss',
      'low-mos',
      'no-audio-received',
    ]);
    assert.equal(levelOf(4.4, []), 'good');
    assert.equal(levelOf(4.4, ['high-rtt']), 'fair');
    assert.equal(levelOf(3.5, []), 'fair');
    assert.equal(levelOf(3.0, []), 'poor');
    assert.equal(levelOf(4.4, ['no-audio-received']), 'poor');
  });
});
