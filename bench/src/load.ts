/**
 * Fixed offered load: open-loop Poisson arrivals at set rates (fractions of the
 * measured saturation), each taken by a free pair. Latency is measured from
 * the *scheduled* arrival time, so a stall (in the server or the generator)
 * shows up in the figures instead of silently delaying the schedule.
 */
import { performance } from 'node:perf_hooks';
import type { Pair } from './call.js';
import { delta, sleep, snapshot, within } from './measure.js';
import type { Progress } from './progress.js';
import { warmEach, type WarmUp } from './saturation.js';
import { percentiles, ratio, type Percentiles } from './stats.js';
import type { Target, TargetName } from './targets.js';

export interface LoadPoint {
  target: TargetName;
  /** Offered rate as a fraction of the base (saturation) rate. */
  fraction: number;
  offeredRate: number;
  /** Arrivals scheduled per second of the window. */
  arrivalRate: number;
  /** Calls completed per second of the window. */
  achievedRate: number;
  arrivals: number;
  calls: number;
  failed: number;
  /** Arrivals that found every pair busy and waited for one (their wait counts in their latency). */
  queued: number;
  incoming: Percentiles;
  answer: Percentiles;
  /** Scheduled time → `call:request` sent: how late the generator itself was. */
  sendLag: Percentiles;
  serverCpuPct: number;
  /** Server CPU in the window / arrivals in the window, ms. */
  serverCpuMsPerCall: number;
  generatorCpuPct: number;
  cpuPressurePct: number;
  /** The server's longest event-loop delay in the window, ms (the largest over its nodes); null if unread. */
  eventLoopMaxMs: number | null;
}

export interface LoadResult {
  baseRate: number;
  baseFrom: 'saturation' | 'option';
  windowS: number;
  pairs: number;
  /** Present when saturation did not run first: each target's own warm-up before the first point. */
  warmups?: Partial<Record<TargetName, WarmUp>>;
  points: LoadPoint[];
  /** Switchboard / bare server CPU per call at the same offered rate. */
  cpuPerCallRatios: { fraction: number; ratio: number }[];
}

/** The longest event-loop delay any node of `target` saw since the last read (null when one cannot say). */
async function eventLoopMax(target: Target): Promise<number | null> {
  const read = await Promise.all(target.nodes.map((n) => n.eventLoopMaxMs()));
  return read.some((v) => v === null) ? null : Math.max(...(read as number[]));
}

export async function openLoop(target: Target, pairs: Pair[], rate: number, windowMs: number, random: () => number, drainMs = 15_000): Promise<Omit<LoadPoint, 'target' | 'fraction' | 'offeredRate'>> {
  const free = pairs.slice();
  const queue: number[] = [];
  const incoming: number[] = [];
  const answer: number[] = [];
  const sendLag: number[] = [];
  let inflight = 0;
  let arrivals = 0;
  let queued = 0;
  let calls = 0;
  let failed = 0;
  let scheduling = true;
  let drained: () => void = () => undefined;
  const allDone = new Promise<void>((r) => (drained = r));
  const maybeDone = () => {
    if (!scheduling && inflight === 0 && queue.length === 0) drained();
  };
  const launch = (pair: Pair, t0: number) => {
    inflight++;
    void pair.run(t0).then((r) => {
      inflight--;
      sendLag.push(r.sendLagMs);
      if (r.ok) {
        calls++;
        incoming.push(r.incomingMs);
        answer.push(r.answerMs);
      } else failed++;
      const waiting = queue.shift();
      if (waiting !== undefined) launch(pair, waiting);
      else free.push(pair);
      maybeDone();
    });
  };
  const loopMax = () => eventLoopMax(target);
  await loopMax(); // reads reset it: what comes next is this window's
  const a = snapshot(target);
  const start = a.at + 2;
  const end = start + windowMs;
  let next = start;
  await new Promise<void>((resolve) => {
    const tick = () => {
      const now = performance.now();
      while (next <= now && next < end) {
        arrivals++;
        const pair = free.pop();
        if (pair) launch(pair, next);
        else {
          queued++;
          queue.push(next);
        }
        next += (-Math.log(1 - random()) * 1000) / rate;
      }
      if (next < end) setTimeout(tick, Math.max(0, Math.floor(next - performance.now())));
      else resolve();
    };
    setTimeout(tick, 2);
  });
  const b = snapshot(target);
  const eventLoopMaxMs = await loopMax();
  scheduling = false;
  maybeDone();
  await within(allDone, drainMs);
  const d = delta(a, b);
  return {
    arrivalRate: (arrivals * 1000) / windowMs,
    achievedRate: (calls * 1000) / windowMs,
    arrivals,
    calls,
    failed: failed + inflight + queue.length,
    queued,
    incoming: percentiles(incoming),
    answer: percentiles(answer),
    sendLag: percentiles(sendLag),
    serverCpuPct: d.serverCpuPct,
    serverCpuMsPerCall: arrivals > 0 ? d.serverCpuMs / arrivals : NaN,
    generatorCpuPct: d.generatorCpuPct,
    cpuPressurePct: d.cpuPressurePct,
    eventLoopMaxMs,
  };
}

export interface LoadInput {
  targets: { target: Target; pairs: Pair[] }[];
  fractions: number[];
  baseRate: number;
  baseFrom: LoadResult['baseFrom'];
  windowS: number;
  random: () => number;
  progress: Progress;
  /** Warm each target first (closed loop of `pairs` pairs, as saturation's warm-up), when nothing else has. */
  warmUp?: { pairs: number; minS: number; maxS: number };
}

export async function runLoad(input: LoadInput): Promise<LoadResult> {
  const { targets, fractions, baseRate, windowS, random, progress } = input;
  const points: LoadPoint[] = [];
  // Without a saturation run before, the servers are cold: the first point would measure the JIT.
  const { warmUp } = input;
  const warmups = warmUp
    ? await warmEach(targets.map(({ target, pairs }) => ({ target, pairs: pairs.slice(0, warmUp.pairs) })), warmUp.minS, warmUp.maxS, progress, 'load')
    : undefined;
  for (const fraction of fractions) {
    const rate = Math.max(1, fraction * baseRate);
    for (const { target, pairs } of targets) {
      const phase = `load: ${(fraction * 100).toFixed(0)}% = ${rate.toFixed(0)} calls/s on ${target.name}`;
      progress.update(phase);
      const r = await openLoop(target, pairs, rate, windowS * 1000, random);
      points.push({ target: target.name, fraction, offeredRate: rate, ...r });
      progress.log(
        `  ${phase}: request→incoming p50 ${r.incoming.p50.toFixed(2)} p99 ${r.incoming.p99.toFixed(2)} ms, request→answer p99 ${r.answer.p99.toFixed(2)} ms, server event-loop max delay ${r.eventLoopMaxMs === null ? 'n/a' : `${r.eventLoopMaxMs.toFixed(0)} ms`}, generator ${r.generatorCpuPct.toFixed(0)}%, CPU pressure ${r.cpuPressurePct.toFixed(0)}%${r.failed ? `, ${r.failed} failed` : ''}`,
      );
      await sleep(100);
    }
  }
  const cpuPerCallRatios = fractions.map((fraction) => {
    const of = (t: TargetName) => points.find((p) => p.fraction === fraction && p.target === t)?.serverCpuMsPerCall ?? NaN;
    return { fraction, ratio: ratio(of('switchboard'), of('bare')) };
  });
  return { baseRate, baseFrom: input.baseFrom, windowS, pairs: targets[0]?.pairs.length ?? 0, ...(warmups ? { warmups } : {}), points, cpuPerCallRatios };
}
