/** A party's quality summary: reports folded one by one into counts, means, extremes and the worst level. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { type QualityReport, addToSummary } from './quality.js';

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
