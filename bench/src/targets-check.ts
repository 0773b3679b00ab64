/** The project's performance targets, and where this run stands against each. */
import type { BenchReport } from './run.js';

export interface TargetCheck {
  name: string;
  target: string;
  /** The measured figure, as text. */
  value: string;
  /** null: not measured in this run. */
  ok: boolean | null;
  detail?: string;
}

const x = (n: number) => (Number.isFinite(n) ? `${n.toFixed(2)}×` : 'n/a');

export function checkTargets(r: BenchReport): TargetCheck[] {
  const checks: TargetCheck[] = [];
  const cpu = r.saturation?.cpuPerCallRatio;
  checks.push({
    name: 'server CPU per whole call',
    target: '≤ 1.3× bare',
    value: cpu ? x(cpu.median) : 'not measured',
    ok: cpu && Number.isFinite(cpu.median) ? cpu.median <= 1.3 : null,
    ...(cpu
      ? {
          detail:
            `at saturation, per round: ${cpu.perRound.map(x).join(', ')}` +
            (r.load?.cpuPerCallRatios.length ? `; at equal offered load: ${r.load.cpuPerCallRatios.map((q) => `${x(q.ratio)} at ${(q.fraction * 100).toFixed(0)}%`).join(', ')}` : ''),
        }
      : {}),
  });
  const rss = r.idle?.rssRatio;
  checks.push({
    name: 'RSS per idle authenticated session',
    target: '≤ 1.3× bare',
    value: rss ? x(rss.median) : 'not measured',
    ok: rss && Number.isFinite(rss.median) ? rss.median <= 1.3 : null,
    ...(rss ? { detail: `per round: ${rss.perRound.map(x).join(', ')}` } : {}),
  });
  const top = r.idle ? Math.max(...r.idle.levels) : 0;
  const held = r.idle?.summary.switchboard?.sessionsHeld;
  checks.push({
    name: 'sessions held by one process',
    target: '10,000',
    value: held === undefined ? 'not measured' : `${held} of ${top}`,
    ok: held === undefined || top < 10_000 ? null : held >= 10_000,
    ...(held !== undefined && top < 10_000 ? { detail: `levels stop at ${top}` } : {}),
  });
  const half = r.load?.points.find((p) => p.target === 'switchboard' && Math.abs(p.fraction - 0.5) < 1e-9);
  checks.push({
    name: 'p99 request→incoming at half of saturation (memory mode)',
    target: '≤ 10 ms',
    value: half ? `${half.incoming.p99.toFixed(2)} ms at ${half.offeredRate.toFixed(0)} calls/s` : 'not measured',
    ok: half && Number.isFinite(half.incoming.p99) ? half.incoming.p99 <= 10 : null,
  });
  const redis = r.saturation?.redisVsMemory;
  checks.push({
    name: 'Redis mode calls/s (2 nodes, caller and callee apart)',
    target: '≥ 0.5× memory mode',
    value: redis ? x(redis.median) : r.redis?.available === false ? `skipped: ${r.redis.reason}` : 'not measured',
    ok: redis && Number.isFinite(redis.median) ? redis.median >= 0.5 : null,
    ...(redis ? { detail: `per round: ${redis.perRound.map(x).join(', ')}` } : {}),
  });
  const cluster = r.saturation?.clusterVsMemory;
  checks.push({
    name: 'Redis Cluster mode calls/s (2 nodes, 3 masters, caller and callee apart)',
    target: '≥ 0.4× memory mode',
    value: cluster ? x(cluster.median) : r.redis?.cluster?.available === false ? `skipped: ${r.redis.cluster.reason}` : 'not measured',
    ok: cluster && Number.isFinite(cluster.median) ? cluster.median >= 0.4 : null,
    ...(cluster ? { detail: `per round: ${cluster.perRound.map(x).join(', ')}` } : {}),
  });
  checks.push(qualityCheck(r));
  return checks;
}

/** Issue 18: what `call:quality` (each party once a second) adds per call-minute, against one call's setup, both from this run. */
export const QUALITY_TARGET_PCT = 5;

function qualityCheck(r: BenchReport): TargetCheck {
  const every = r.quality?.reportEveryMs ?? 1000;
  const name = `server CPU of call:quality reports (each party every ${every / 1000} s) per call-minute, memory mode`;
  const target = `≤ ${QUALITY_TARGET_PCT}% of one call's setup ("a few percent")`;
  const q = r.quality?.summary.find((s) => s.kind === 'memory');
  if (!q) return { name, target, value: 'not measured', ok: null };
  if (q.reportsReceived === 0) return { name, target, value: 'no report reached a peer: nothing measured', ok: false };
  const pct = (n: number) => (Number.isFinite(n) ? `${n.toFixed(1)}%` : 'n/a');
  const rounds = r.quality!.perRound.filter((p) => p.kind === 'memory');
  const redis = r.quality!.summary.find((s) => s.kind === 'redis');
  return {
    name,
    target,
    value: pct(q.diffPctOfSetup),
    ok: Number.isFinite(q.diffPctOfSetup) ? q.diffPctOfSetup <= QUALITY_TARGET_PCT : null,
    detail:
      `${q.diffMs.toFixed(3)} ms per call-minute against a setup of ${q.setupMs.toFixed(3)} ms; per round: ${rounds.map((p) => pct(p.diffPctOfSetup)).join(', ')}` +
      (redis ? `; Redis mode ${pct(redis.diffPctOfSetup)} (${redis.diffMs.toFixed(3)} of ${redis.setupMs.toFixed(3)} ms)` : ''),
  };
}
