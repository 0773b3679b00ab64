/** A party's quality summary: reports folded one by one into counts, means, extremes and the worst level. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { type QualityReport, type QualitySummary, addToSummary, mergeSummaries } from './quality.js';

test('addToSummary keeps the count, MOS min and mean, the means and maxima, and the worst level', () => {
  const reports: QualityReport[] = [
    { mos: 4.4, rttMs: 40, jitterMs: 2, lossPct: 0, level: 'good', warnings: [] },
    { mos: 3.2, rttMs: 60, jitterMs: 10, lossPct: 6, level: 'poor', warnings: ['high-packet-loss'] },
    { mos: 4.0, rttMs: 50, jitterMs: 3, lossPct: 0, level: 'fair', warnings: [] },
  ];
  const summary = reports.reduce<ReturnType<typeof addToSummary> | undefined>((s, r) => addToSummary(s, r), undefined)!;
  assert.equal(summary.samples, 3);
  assert.equal(summary.mos.min, 3.2);
  assert.ok(Math.abs(summary.mos.mean - (4.4 + 3.2 + 4.0) / 3) < 1e-12, `MOS mean ${summary.mos.mean}`);
  assert.deepEqual(summary.rttMs, { mean: 50, max: 60 });
  assert.deepEqual(summary.lossPct, { mean: 2, max: 6 });
  assert.equal(summary.jitterMs.max, 10);
  assert.equal(summary.worstLevel, 'poor');
});

test('mergeSummaries of two stretches equals the summary of all their reports, in either order', () => {
  const reports: QualityReport[] = Array.from({ length: 7 }, (_, i) => ({
    mos: 4.4 - i * 0.2,
    rttMs: 30 + ((i * 37) % 50),
    jitterMs: (i * 13) % 20,
    lossPct: i === 4 ? 8 : i % 2,
    level: i === 4 ? 'poor' : i > 2 ? 'fair' : 'good',
    warnings: [],
  }));
  const fold = (rs: QualityReport[]) => rs.reduce<QualitySummary | undefined>((s, r) => addToSummary(s, r), undefined);
  const whole = fold(reports)!;
  for (const cut of [1, 3, 6]) {
    for (const merged of [mergeSummaries(fold(reports.slice(0, cut)), fold(reports.slice(cut))), mergeSummaries(fold(reports.slice(cut)), fold(reports.slice(0, cut)))]) {
      assert.ok(merged);
      assert.equal(merged.samples, whole.samples);
      assert.equal(merged.worstLevel, 'poor');
      assert.equal(merged.mos.min, whole.mos.min);
      for (const k of ['rttMs', 'jitterMs', 'lossPct'] as const) {
        assert.equal(merged[k].max, whole[k].max, k);
        assert.ok(Math.abs(merged[k].mean - whole[k].mean) < 1e-9, `${k} mean ${merged[k].mean} vs ${whole[k].mean}`);
      }
      assert.ok(Math.abs(merged.mos.mean - whole.mos.mean) < 1e-9);
    }
  }
  assert.equal(mergeSummaries(undefined, whole), whole);
  assert.equal(mergeSummaries(whole, undefined), whole);
  assert.equal(mergeSummaries(undefined, undefined), undefined);
});
