/**
 * Smoke test of the bench: the quick mode end to end (memory mode only, tiny
 * counts), both targets. Asserts the figures exist and are positive, never a
 * threshold: the numbers depend on the machine.
 */
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { quickOptions } from '../src/options.js';
import { writeResults } from '../src/output.js';
import { runBench } from '../src/run.js';

const positive = (value: number | null | undefined, what: string) =>
  assert.ok(typeof value === 'number' && Number.isFinite(value) && value > 0, `${what} should be a positive number, got ${value}`);

test('quick bench run: saturation (with video calls), offered load, idle and fan-out for Switchboard and the bare relay', async () => {
  const outDir = mkdtempSync(join(tmpdir(), 'sb-bench-'));
  try {
    const report = await runBench(
      quickOptions({
        modes: ['saturation', 'load', 'idle', 'fanout'],
        quiet: true,
        pin: false,
        pairs: 3,
        warmupS: 0.2,
        windowS: 0.5,
        loads: [0.5],
        loadWindowS: 0.5,
        loadPairs: 6,
        idleLevels: [50, 100],
        fanout: [10],
        fanoutReps: 1,
        video: true,
        outDir,
      }),
    );

    for (const target of ['switchboard', 'bare'] as const) {
      const sat = report.saturation?.summary[target];
      positive(sat?.callsPerSec, `${target} calls/s`);
      positive(sat?.serverCpuMsPerCall, `${target} server CPU ms per call`);
      positive(report.counters[target]?.completed, `${target} completed calls`);

      const point = report.load?.points.find((p) => p.target === target);
      positive(point?.calls, `${target} calls at offered load`);
      positive(point?.incoming.p50, `${target} request→incoming p50`);
      positive(point?.incoming.p99, `${target} request→incoming p99`);
      positive(point?.answer.p99, `${target} request→answer p99`);
      const loopMax = point?.eventLoopMaxMs;
      assert.ok(typeof loopMax === 'number' && Number.isFinite(loopMax) && loopMax >= 0, `${target} event-loop max delay read (${loopMax})`);

      const idle = report.idle?.runs.find((r) => r.target === target);
      assert.equal(idle?.sessionsHeld, 100, `${target} holds every idle session`);
      positive(idle?.baseline.rssBytes, `${target} baseline RSS`);
      positive(idle?.points.at(-1)?.rssBytes, `${target} RSS with sessions`);
      positive(idle?.points.at(-1)?.heapBytes, `${target} heap with sessions`);
      assert.ok(Number.isFinite(idle?.rssPerSession), `${target} RSS per session is a number`);

      const fan = report.fanout?.summary.find((r) => r.target === target);
      positive(fan?.allMs, `${target} fan-out time`);
    }
    positive(report.saturation?.cpuPerCallRatio?.median, 'CPU per call ratio');
    positive(report.counters['switchboard-video']?.completed, 'video calls completed');
    assert.equal(report.counters['switchboard-video']?.failed ?? 0, 0, 'no video call failed (the SDPs pass the server’s limits)');
    positive(report.saturation?.videoCpuPerCallVsAudio?.median, 'video / audio CPU per call');
    assert.deepEqual(
      report.servers.filter((s) => s.crashed).map((s) => s.label),
      [],
      'no server process crashed',
    );
    assert.equal(report.checks.length, 7);

    const written = writeResults(report, outDir);
    assert.ok(existsSync(written.json) && existsSync(written.markdown) && written.svg && existsSync(written.svg));
    assert.match(readFileSync(written.markdown, 'utf8'), /## Targets/);
    assert.match(readFileSync(written.markdown, 'utf8'), /video calls \(SDPs of 5,396\/5,102 bytes/);
    assert.match(readFileSync(written.svg, 'utf8'), /^<svg /);
    assert.equal(JSON.parse(readFileSync(written.json, 'utf8')).meta.quick, true);
  } finally {
    rmSync(outDir, { recursive: true, force: true });
  }
});

test('offered load alone first warms each server, and the report says so', async () => {
  const outDir = mkdtempSync(join(tmpdir(), 'sb-bench-'));
  try {
    const report = await runBench(
      quickOptions({ modes: ['load'], quiet: true, pin: false, pairs: 3, warmupS: 0.2, warmupMaxS: 0.2, loads: [0.5], loadWindowS: 0.5, loadPairs: 6, loadBase: 40, outDir }),
    );
    assert.equal(report.saturation, null, 'no saturation run');
    for (const target of ['switchboard', 'bare'] as const) {
      const warmed = report.load?.warmups?.[target];
      positive(warmed?.seconds, `${target} warm-up seconds`);
      positive(warmed?.lastCpuMsPerCall, `${target} CPU per call at the end of its warm-up`);
      positive(report.load?.points.find((p) => p.target === target)?.calls, `${target} calls at offered load`);
    }
    const written = writeResults(report, outDir);
    assert.match(readFileSync(written.markdown, 'utf8'), /each server first warmed until CPU per call settled \(switchboard \d+ s, bare \d+ s\)/);
  } finally {
    rmSync(outDir, { recursive: true, force: true });
  }
});
