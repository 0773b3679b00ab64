/**
 * Saturation: a closed loop of N concurrent pairs, each starting its next call
 * as soon as the last one ended. Gives calls/s and the server's own CPU time
 * per call (from /proc, before/after the window). Windows are interleaved
 * between targets, A B A B …, so a noisy machine hits every target alike.
 */
import { performance } from 'node:perf_hooks';
import type { Pair } from './call.js';
import { delta, sleep, snapshot } from './measure.js';
import type { Progress } from './progress.js';
import { median, percentiles, ratio, type Percentiles } from './stats.js';
import type { Target, TargetName } from './targets.js';

/** Generator CPU at or above this share of one core: the figures may be the generator's limit, not the server's. */
export const GENERATOR_SATURATED_PCT = 90;

export interface LoopWindow {
  pairs: number;
  elapsedMs: number;
  calls: number;
  failed: number;
  callsPerSec: number;
  serverCpuMs: number;
  serverCpuMsPerCall: number;
  serverCpuPct: number;
  generatorCpuPct: number;
  /** Machine-wide CPU pressure during the window, % (see measure.ts). */
  cpuPressurePct: number;
  incoming: Percentiles;
  answer: Percentiles;
  /** Redis mode: Redis server CPU ms and commands per call (on a shared Redis, other clients' too). */
  redisCpuMsPerCall?: number;
  redisCommandsPerCall?: number;
  /** Redis mode: the commands behind redisCommandsPerCall, per call, busiest first. */
  redisCommandMix?: Record<string, number>;
}

export interface SaturationWindow extends LoopWindow {
  round: number;
  target: TargetName;
}

export interface TargetSummary {
  callsPerSec: number;
  serverCpuMsPerCall: number;
  serverCpuPct: number;
  generatorCpuPct: number;
  generatorSaturated: boolean;
  cpuPressurePct: number;
  failed: number;
  redisCpuMsPerCall?: number;
  redisCommandsPerCall?: number;
  /** From the last window. */
  redisCommandMix?: Record<string, number>;
}

export interface RatioSummary {
  perRound: number[];
  median: number;
}

/** How a target's warm-up went. */
export interface WarmUp {
  seconds: number;
  firstCpuMsPerCall: number;
  lastCpuMsPerCall: number;
}

export interface SaturationResult {
  pairs: number;
  windowS: number;
  /** The least warm-up; each target's own is in `warmups`. */
  warmupS: number;
  warmups?: Partial<Record<TargetName, WarmUp>>;
  windows: SaturationWindow[];
  summary: Partial<Record<TargetName, TargetSummary>>;
  /** Switchboard / bare, per round and their median. */
  cpuPerCallRatio: RatioSummary | null;
  callsPerSecRatio: RatioSummary | null;
  /** Redis mode (2 nodes) calls/s / memory mode calls/s. */
  redisVsMemory: RatioSummary | null;
  /** Redis mode server CPU per call / memory mode's (both nodes summed). */
  redisCpuPerCallRatio: RatioSummary | null;
  /** Redis Cluster mode (2 nodes, 3 masters) calls/s / memory mode calls/s, and / one Redis's. */
  clusterVsMemory?: RatioSummary | null;
  clusterVsRedis?: RatioSummary | null;
  /** Redis Cluster mode server CPU per call / one Redis's (both nodes summed). */
  clusterCpuPerCallVsRedis?: RatioSummary | null;
  /** `--video`: video calls' server CPU per call / audio calls', and calls/s likewise, on the same memory-mode node. */
  videoCpuPerCallVsAudio?: RatioSummary | null;
  videoVsAudio?: RatioSummary | null;
}

/** Runs every pair back to back for `windowMs` and measures the window. */
export async function closedLoop(target: Target, pairs: Pair[], windowMs: number, tick?: (calls: number, elapsedMs: number) => void): Promise<LoopWindow> {
  let stop = false;
  let measuring = false;
  let calls = 0;
  let failed = 0;
  const incoming: number[] = [];
  const answer: number[] = [];
  const loops = pairs.map(async (pair) => {
    while (!stop) {
      const r = await pair.run(performance.now());
      if (!measuring) continue;
      if (r.ok) {
        calls++;
        incoming.push(r.incomingMs);
        answer.push(r.answerMs);
      } else failed++;
    }
  });
  const redisBefore = target.redis ? await target.redis.stats() : null;
  measuring = true;
  const a = snapshot(target);
  const deadline = a.at + windowMs;
  while (performance.now() < deadline) {
    await sleep(Math.min(250, Math.max(1, deadline - performance.now())));
    tick?.(calls, performance.now() - a.at);
  }
  const b = snapshot(target);
  const counted = calls;
  measuring = false;
  const redisAfter = target.redis ? await target.redis.stats() : null;
  stop = true;
  await Promise.all(loops);
  const d = delta(a, b);
  return {
    pairs: pairs.length,
    elapsedMs: d.elapsedMs,
    calls: counted,
    failed,
    callsPerSec: (counted * 1000) / d.elapsedMs,
    serverCpuMs: d.serverCpuMs,
    serverCpuMsPerCall: counted > 0 ? d.serverCpuMs / counted : NaN,
    serverCpuPct: d.serverCpuPct,
    generatorCpuPct: d.generatorCpuPct,
    cpuPressurePct: d.cpuPressurePct,
    incoming: percentiles(incoming),
    answer: percentiles(answer),
    ...(redisBefore && redisAfter && counted > 0
      ? {
          redisCpuMsPerCall: (redisAfter.cpuMs - redisBefore.cpuMs) / counted,
          redisCommandsPerCall: (redisAfter.commands - redisBefore.commands - 1) / counted,
          redisCommandMix: commandMix(redisBefore.byCommand, redisAfter.byCommand, counted),
        }
      : {}),
  };
}

function commandMix(before: Record<string, number>, after: Record<string, number>, calls: number): Record<string, number> {
  const rows = Object.entries(after)
    .map(([name, n]) => [name, (n - (before[name] ?? 0)) / calls] as const)
    .filter(([, perCall]) => perCall >= 0.05)
    .sort((a, b) => b[1] - a[1]);
  return Object.fromEntries(rows.map(([name, perCall]) => [name, Math.round(perCall * 100) / 100]));
}

export interface SaturationInput {
  targets: { target: Target; pairs: Pair[] }[];
  rounds: number;
  windowS: number;
  warmupS: number;
  warmupMaxS: number;
  progress: Progress;
}

/** A warm-up step after the minimum; settled when CPU per call falls by less than this from one step to the next. */
const WARMUP_STEP_MS = 1000;
const SETTLED = 0.05;

/**
 * Drives calls for at least `minS`, then in 1 s steps until the server's CPU
 * per call stops falling (the JIT has compiled what it will; two processes
 * sharing one pinned core take longer), for at most `maxS`. Every target gets
 * the same rule, so each is measured in its steady state. Returns how long it
 * took and the CPU per call of the first and last step.
 */
export async function warmUp(target: Target, pairs: Pair[], minS: number, maxS: number): Promise<WarmUp> {
  const first = await closedLoop(target, pairs, minS * 1000);
  let spentMs = first.elapsedMs;
  let last = first.serverCpuMsPerCall;
  while (spentMs + WARMUP_STEP_MS <= maxS * 1000) {
    const step = await closedLoop(target, pairs, WARMUP_STEP_MS);
    spentMs += step.elapsedMs;
    const now = step.serverCpuMsPerCall;
    const settled = !(now < last * (1 - SETTLED));
    last = now;
    if (settled) break;
  }
  return { seconds: spentMs / 1000, firstCpuMsPerCall: first.serverCpuMsPerCall, lastCpuMsPerCall: last };
}

/** Warms each target in turn (`warmUp`), saying how each went under `phase`. */
export async function warmEach(targets: { target: Target; pairs: Pair[] }[], minS: number, maxS: number, progress: Progress, phase: string): Promise<Partial<Record<TargetName, WarmUp>>> {
  const warmups: Partial<Record<TargetName, WarmUp>> = {};
  for (const { target, pairs } of targets) {
    progress.update(`${phase}: warm-up ${target.name}`);
    const w = (warmups[target.name] = await warmUp(target, pairs, minS, maxS));
    if (maxS > minS) {
      progress.log(`  ${phase}: warm-up ${target.name}: ${w.seconds.toFixed(0)} s, server CPU ms per call ${w.firstCpuMsPerCall.toFixed(3)} → ${w.lastCpuMsPerCall.toFixed(3)}`);
    }
    await sleep(100);
  }
  return warmups;
}

/** `target 5 s, target 4 s`: how long each warm-up took, for a report. */
export function warmUpTimes(warmups: Partial<Record<string, WarmUp>>): string {
  return Object.entries(warmups)
    .map(([target, w]) => `${target} ${(w?.seconds ?? 0).toFixed(0)} s`)
    .join(', ');
}

export async function runSaturation(input: SaturationInput): Promise<SaturationResult> {
  const { targets, rounds, windowS, warmupS, warmupMaxS, progress } = input;
  const warmups = await warmEach(targets, warmupS, warmupMaxS, progress, 'saturation');
  const windows: SaturationWindow[] = [];
  for (let round = 1; round <= rounds; round++) {
    for (const { target, pairs } of targets) {
      const phase = `saturation: round ${round}/${rounds} ${target.name} (${pairs.length} pairs)`;
      const w = await closedLoop(target, pairs, windowS * 1000, (calls, ms) =>
        progress.update(phase, `${((calls * 1000) / ms).toFixed(0)} calls/s`),
      );
      windows.push({ round, target: target.name, ...w });
      progress.log(
        `  ${phase}: ${w.callsPerSec.toFixed(0)} calls/s, server ${w.serverCpuMsPerCall.toFixed(3)} ms CPU/call (${w.serverCpuPct.toFixed(0)}% of a core), generator ${w.generatorCpuPct.toFixed(0)}%, CPU pressure ${w.cpuPressurePct.toFixed(0)}%${w.failed ? `, ${w.failed} failed` : ''}`,
      );
      await sleep(100);
    }
  }
  const summary = summariseSaturation(windows, targets[0]?.pairs.length ?? 0, windowS, warmupS);
  return warmupMaxS > warmupS ? { ...summary, warmups } : summary;
}

function perRound(windows: SaturationWindow[], a: TargetName, b: TargetName, pick: (w: SaturationWindow) => number): RatioSummary | null {
  const rounds = [...new Set(windows.map((w) => w.round))];
  const values: number[] = [];
  for (const r of rounds) {
    const wa = windows.find((w) => w.round === r && w.target === a);
    const wb = windows.find((w) => w.round === r && w.target === b);
    if (wa && wb) values.push(ratio(pick(wa), pick(wb)));
  }
  return values.length ? { perRound: values, median: median(values) } : null;
}

export function summariseSaturation(windows: SaturationWindow[], pairs: number, windowS: number, warmupS: number): SaturationResult {
  const summary: SaturationResult['summary'] = {};
  for (const name of [...new Set(windows.map((w) => w.target))]) {
    const mine = windows.filter((w) => w.target === name);
    const generatorCpuPct = median(mine.map((w) => w.generatorCpuPct));
    summary[name] = {
      callsPerSec: median(mine.map((w) => w.callsPerSec)),
      serverCpuMsPerCall: median(mine.map((w) => w.serverCpuMsPerCall)),
      serverCpuPct: median(mine.map((w) => w.serverCpuPct)),
      generatorCpuPct,
      generatorSaturated: generatorCpuPct >= GENERATOR_SATURATED_PCT,
      cpuPressurePct: median(mine.map((w) => w.cpuPressurePct)),
      failed: mine.reduce((s, w) => s + w.failed, 0),
      ...(mine.some((w) => w.redisCpuMsPerCall !== undefined)
        ? {
            redisCpuMsPerCall: median(mine.map((w) => w.redisCpuMsPerCall ?? NaN)),
            redisCommandsPerCall: median(mine.map((w) => w.redisCommandsPerCall ?? NaN)),
            ...(mine[mine.length - 1]?.redisCommandMix ? { redisCommandMix: mine[mine.length - 1]!.redisCommandMix! } : {}),
          }
        : {}),
    };
  }
  return {
    pairs,
    windowS,
    warmupS,
    windows,
    summary,
    cpuPerCallRatio: perRound(windows, 'switchboard', 'bare', (w) => w.serverCpuMsPerCall),
    callsPerSecRatio: perRound(windows, 'switchboard', 'bare', (w) => w.callsPerSec),
    redisVsMemory: perRound(windows, 'switchboard-redis', 'switchboard', (w) => w.callsPerSec),
    redisCpuPerCallRatio: perRound(windows, 'switchboard-redis', 'switchboard', (w) => w.serverCpuMsPerCall),
    clusterVsMemory: perRound(windows, 'switchboard-cluster', 'switchboard', (w) => w.callsPerSec),
    clusterVsRedis: perRound(windows, 'switchboard-cluster', 'switchboard-redis', (w) => w.callsPerSec),
    clusterCpuPerCallVsRedis: perRound(windows, 'switchboard-cluster', 'switchboard-redis', (w) => w.serverCpuMsPerCall),
    videoCpuPerCallVsAudio: perRound(windows, 'switchboard-video', 'switchboard', (w) => w.serverCpuMsPerCall),
    videoVsAudio: perRound(windows, 'switchboard-video', 'switchboard', (w) => w.callsPerSec),
  };
}
