/**
 * Quality reports (issue 18): what `call:quality` costs a server while calls
 * are held. Two servers of the same kind (two memory-mode processes; with
 * `--quality-redis` also two Redis-mode clusters of two nodes) each set up N
 * calls and hold them, all at once, through the same window. On one server
 * of each kind both parties of every call send `call:quality` once a second
 * without an ack (as the SDK sends it; the SDK sends less often once a call's
 * level is steady, so this is its busiest case), the level dipping every
 * tenth report so that a fifth of them change it and are forwarded to the
 * peer (the server forwards only changes); on the other nobody reports.
 * The two swap roles every round, so whatever differs between the two
 * processes themselves cancels out over the rounds.
 *
 * Per server and round: the server CPU of setting the N calls up (the call of
 * the other modes up to the answer and the candidates: request, ring,
 * accept, offer, answer, 4 candidates each way) per call, the server CPU
 * through the window per call-minute, the reports sent and those that
 * reached the peer, and the CPU of hanging the calls up (mute, end) per call.
 * CPU is each process's own (/proc, `measure.ts`), so two servers sharing a
 * core do not blur each other's figures.
 */
import { performance } from 'node:perf_hooks';
import type { CallResult, Counters, Pair } from './call.js';
import { delta, sleep, snapshot, type CpuDelta } from './measure.js';
import type { Progress } from './progress.js';
import { warmUp, type WarmUp } from './saturation.js';
import { median } from './stats.js';
import type { Target } from './targets.js';

/** Every this many reports a party's level dips to fair for one report: the server sends the peer only changes, so these are what it forwards. */
export const CHANGE_EVERY = 10;

export type QualityKind = 'memory' | 'redis';

/** A server (one process, or a two-node Redis-mode cluster) and the caller/callee pairs connected to it. */
export interface QualityServer {
  /** `memory-a`, `memory-b`, `redis-a`, `redis-b`. */
  label: string;
  kind: QualityKind;
  target: Target;
  pairs: Pair[];
}

/** One server in one round. */
export interface QualityArm {
  round: number;
  kind: QualityKind;
  label: string;
  reporting: boolean;
  /** Calls set up and held through the window. */
  calls: number;
  /** Calls that failed to set up. */
  setupFailed: number;
  setupCpuMsPerCall: number;
  setupSeconds: number;
  /** The measuring window, ms (after the lead-in). */
  windowMs: number;
  callMinutes: number;
  windowCpuMs: number;
  cpuMsPerCallMinute: number;
  /** Reports sent in the window (both parties of every call). */
  reportsSent: number;
  /** Reports the server received in the window (its `switchboard_events_total`, every node); null when unread. */
  reportsAtServer: number | null;
  /** Reports that reached the peer in the window, as `call:quality { callId, userId, level, warnings }`. */
  reportsReceived: number;
  /** Reports sent in the window that changed the party's level (the server forwards only those). */
  changesSent: number;
  /** `call:quality` events that were not a held call's peer report (a wrong callId or userId, or after the call). */
  strayReports: number;
  hangUpCpuMsPerCall: number;
  /** Held calls that ended as the bench hung them up / that failed (while set up, held or hung up). */
  ended: number;
  failed: number;
  serverCpuPct: number;
  generatorCpuPct: number;
  cpuPressurePct: number;
}

/** One kind of server in one round: the reporting server against the silent one. */
export interface QualityRound {
  round: number;
  kind: QualityKind;
  reporting: string;
  silent: string;
  withMs: number;
  withoutMs: number;
  /** Server CPU ms per call-minute, with − without. */
  diffMs: number;
  /** Server CPU ms of one call's setup: the mean of both servers' in this round. */
  setupMs: number;
  /** `diffMs` as a percentage of `setupMs`. */
  diffPctOfSetup: number;
  /** `diffMs` per report sent, µs. */
  perReportUs: number;
}

export interface QualityKindSummary {
  kind: QualityKind;
  rounds: number;
  /** Medians over the rounds. */
  withMs: number;
  withoutMs: number;
  diffMs: number;
  setupMs: number;
  hangUpMs: number;
  diffPctOfSetup: number;
  perReportUs: number;
  reportsPerCallMinute: number;
  /** Over every round. */
  reportsSent: number;
  reportsAtServer: number | null;
  reportsReceived: number;
  changesSent: number;
  /** Reports that reached a peer of a silent server (must be 0). */
  silentReceived: number;
  strayReports: number;
  failed: number;
}

export interface QualityResult {
  calls: number;
  holdS: number;
  leadS: number;
  rounds: number;
  concurrency: number;
  reportEveryMs: number;
  warmups: Record<string, WarmUp>;
  arms: QualityArm[];
  perRound: QualityRound[];
  summary: QualityKindSummary[];
  /** Per server: calls completed/failed over the mode, warm-up included. */
  counters: Record<string, Counters>;
  redis?: { source: string; nodes: number } | { skipped: string };
}

interface Held {
  pair: Pair;
  callId: string;
  release: () => void;
  result: Promise<CallResult>;
}

/** A server's held calls and what reached their parties. */
class Holder {
  held: Held[] = [];
  private readonly callIdOf = new Map<Pair, string>();
  counting = false;
  sent = 0;
  /** Reports sent that changed their party's level from its report before. */
  changes = 0;
  received = 0;
  stray = 0;

  constructor(readonly server: QualityServer) {
    for (const pair of server.pairs) {
      // The caller hears the callee's reports, the callee the caller's: the callee's user id is the one the caller must see.
      pair.caller.on('call:quality', (p: unknown) => this.take(pair, p, (userId) => userId === pair.calleeId));
      pair.callee.on('call:quality', (p: unknown) => this.take(pair, p, (userId) => userId !== pair.calleeId));
    }
  }

  private take(pair: Pair, p: unknown, fromPeer: (userId: string) => boolean): void {
    const r = p as { callId?: unknown; userId?: unknown; level?: unknown; warnings?: unknown } | null;
    const ok =
      !!r &&
      r.callId === this.callIdOf.get(pair) &&
      typeof r.userId === 'string' &&
      fromPeer(r.userId) &&
      typeof r.level === 'string' &&
      Array.isArray(r.warnings);
    if (!ok) this.stray++;
    else if (this.counting) this.received++;
  }

  hold(h: Held): void {
    this.held.push(h);
    this.callIdOf.set(h.pair, h.callId);
  }

  clear(): void {
    this.held = [];
    this.callIdOf.clear();
    this.sent = this.changes = this.received = this.stray = 0;
  }
}

/**
 * A report as a client would send it: a good call, the numbers wandering a
 * little; the `n`th report of a party is fair with high jitter when `n` is a
 * multiple of `CHANGE_EVERY` (so a fifth of reports change the level, and
 * reach the peer).
 */
function report(callId: string, random: () => number, n: number) {
  const dip = n % CHANGE_EVERY === 0;
  return {
    callId,
    mos: Math.round((dip ? 3.8 : 4.2 + 0.2 * random()) * 100) / 100,
    rttMs: Math.round(20 + 40 * random()),
    jitterMs: dip ? 35 : Math.round((1 + 4 * random()) * 10) / 10,
    lossPct: Math.round(random() * 100) / 100,
    level: dip ? ('fair' as const) : ('good' as const),
    warnings: dip ? ['high-jitter'] : ([] as string[]),
  };
}

/** Sets up every pair's call (at most `concurrency` at a time) and holds it; the setup's CPU per call. */
async function setUp(holder: Holder, concurrency: number, onProgress: (done: number) => void): Promise<{ failed: number; cpu: CpuDelta }> {
  const { target, pairs } = holder.server;
  let next = 0;
  let failed = 0;
  const a = snapshot(target);
  const worker = async () => {
    while (next < pairs.length) {
      const pair = pairs[next++]!;
      let release!: () => void;
      const released = new Promise<void>((r) => (release = r));
      let established!: (callId: string) => void;
      const up = new Promise<string>((r) => (established = r));
      const result = pair.run(performance.now(), { established, release: released });
      const first = await Promise.race([up, result]);
      if (typeof first === 'string') holder.hold({ pair, callId: first, release, result });
      else failed++;
      onProgress(holder.held.length + failed);
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, pairs.length) }, worker));
  return { failed, cpu: delta(a, snapshot(target)) };
}

/**
 * Both parties of every held call report once a second, each party's first
 * report at a random point of the first second, and never two within a
 * second (as the SDK paces them): a timer that fires late pushes that party's
 * next report back, so a starved generator sends somewhat fewer than one a
 * second (the report gives the rate reached). Catching up instead (reports
 * less than a second apart after a late one) made an earlier server, which
 * dropped any report within 900 ms of the last, drop several percent of them.
 */
function startReports(holder: Holder, random: () => number, everyMs: number): () => void {
  const timers = new Set<NodeJS.Timeout>();
  for (const h of holder.held) {
    for (const socket of [h.pair.caller, h.pair.callee]) {
      let due = performance.now() + random() * everyMs;
      let timer: NodeJS.Timeout;
      // Each party starts at a random point of the cycle, so the dips do not all come at once.
      let n = Math.floor(random() * CHANGE_EVERY);
      let level: string | null = null;
      const send = () => {
        timers.delete(timer);
        const now = performance.now();
        const r = report(h.callId, random, n++);
        socket.emit('call:quality', r);
        if (holder.counting) {
          holder.sent++;
          if (r.level !== level) holder.changes++;
        }
        level = r.level;
        due = Math.max(due + everyMs, now + everyMs);
        timers.add((timer = setTimeout(send, due - now)));
      };
      timers.add((timer = setTimeout(send, due - performance.now())));
    }
  }
  return () => {
    for (const t of timers) clearTimeout(t);
    timers.clear();
  };
}

/** `call:quality` events every node of the target has received so far (null when a node cannot say). */
async function reportsAtServer(target: Target): Promise<number | null> {
  const counts = await Promise.all(target.nodes.map((n) => n.eventsReceived('call:quality')));
  return counts.some((c) => c === null) ? null : (counts as number[]).reduce((a, b) => a + b, 0);
}

/** Hangs every held call up; the CPU per call of doing so, and how the calls ended. */
async function hangUp(holder: Holder): Promise<{ cpu: CpuDelta; ended: number; failed: number }> {
  const a = snapshot(holder.server.target);
  for (const h of holder.held) h.release();
  const results = await Promise.all(holder.held.map((h) => h.result));
  const cpu = delta(a, snapshot(holder.server.target));
  const ended = results.filter((r) => r.ok).length;
  return { cpu, ended, failed: results.length - ended };
}

export interface QualityInput {
  /** Two servers of each kind measured: `-a` and `-b`. */
  servers: QualityServer[];
  holdS: number;
  leadS: number;
  rounds: number;
  /** Each party's report interval (ms). */
  everyMs: number;
  /** Calls set up at once (and pairs in the warm-up's closed loop). */
  concurrency: number;
  warmupS: number;
  warmupMaxS: number;
  random: () => number;
  progress: Progress;
  counters: Record<string, Counters>;
}

export async function runQuality(input: QualityInput): Promise<QualityResult> {
  const { servers, holdS, leadS, rounds, concurrency, random, progress } = input;
  const holders = servers.map((s) => new Holder(s));
  const warmups: Record<string, WarmUp> = {};
  // The setup figures must be a warm server's: each is first warmed as saturation warms one (whole calls until CPU per call settles).
  for (const s of servers) {
    progress.update(`quality: warm-up ${s.label}`);
    const w = (warmups[s.label] = await warmUp(s.target, s.pairs.slice(0, concurrency), input.warmupS, input.warmupMaxS));
    progress.log(`  quality: warm-up ${s.label}: ${w.seconds.toFixed(0)} s, server CPU ms per call ${w.firstCpuMsPerCall.toFixed(3)} → ${w.lastCpuMsPerCall.toFixed(3)}`);
    await sleep(100);
  }
  const arms: QualityArm[] = [];
  for (let round = 1; round <= rounds; round++) {
    // Odd rounds: the `-a` server of each kind reports; even rounds: the `-b`.
    const reporting = (s: QualityServer) => s.label.endsWith(round % 2 === 1 ? '-a' : '-b');
    const setups = new Map<Holder, { failed: number; cpu: CpuDelta }>();
    for (const h of holders) {
      const phase = `quality: round ${round}/${rounds} setting up ${h.server.pairs.length} calls on ${h.server.label}`;
      progress.update(phase);
      const s = await setUp(h, concurrency, (done) => progress.update(phase, `${done}/${h.server.pairs.length}`));
      setups.set(h, s);
      progress.log(`  quality: round ${round} ${h.server.label}: ${h.held.length} calls set up in ${(s.cpu.elapsedMs / 1000).toFixed(1)} s, server ${(h.held.length ? s.cpu.serverCpuMs / h.held.length : NaN).toFixed(3)} ms CPU per call${s.failed ? `, ${s.failed} failed` : ''}`);
    }
    const stops = holders.filter((h) => reporting(h.server)).map((h) => startReports(h, random, input.everyMs));
    const heldNow = holders.reduce((n, h) => n + h.held.length, 0);
    const phase = `quality: round ${round}/${rounds} holding ${heldNow} calls on ${holders.length} servers (${holders
      .filter((h) => reporting(h.server))
      .map((h) => h.server.label)
      .join(', ')} reporting)`;
    const leadEnd = performance.now() + leadS * 1000;
    while (performance.now() < leadEnd) {
      progress.update(phase, `lead-in ${Math.max(0, (leadEnd - performance.now()) / 1000).toFixed(0)} s`);
      await sleep(Math.min(1000, Math.max(1, leadEnd - performance.now())));
    }
    // The event counters are read just outside the CPU window, so reading them costs the window nothing.
    const atServerBefore = await Promise.all(holders.map((h) => reportsAtServer(h.server.target)));
    for (const h of holders) h.counting = true;
    const before = holders.map((h) => snapshot(h.server.target));
    const deadline = before[0]!.at + holdS * 1000;
    while (performance.now() < deadline) {
      await sleep(Math.min(1000, Math.max(1, deadline - performance.now())));
      const sent = holders.reduce((n, h) => n + h.sent, 0);
      const got = holders.reduce((n, h) => n + h.received, 0);
      progress.update(phase, `${((performance.now() - before[0]!.at) / 1000).toFixed(0)}/${holdS} s · reports sent ${sent}, reached the peer ${got}`);
    }
    const after = holders.map((h) => snapshot(h.server.target));
    for (const h of holders) h.counting = false;
    const atServerAfter = await Promise.all(holders.map((h) => reportsAtServer(h.server.target)));
    for (const stop of stops) stop();
    await sleep(200); // reports in flight land (they are no longer counted) before the hang-up
    for (const [i, h] of holders.entries()) {
      progress.update(`quality: round ${round}/${rounds} hanging up ${h.held.length} calls on ${h.server.label}`);
      const window = delta(before[i]!, after[i]!);
      const setup = setups.get(h)!;
      const calls = h.held.length;
      const down = await hangUp(h);
      const callMinutes = (calls * window.elapsedMs) / 60_000;
      const arm: QualityArm = {
        round,
        kind: h.server.kind,
        label: h.server.label,
        reporting: reporting(h.server),
        calls,
        setupFailed: setup.failed,
        setupCpuMsPerCall: calls ? setup.cpu.serverCpuMs / calls : NaN,
        setupSeconds: setup.cpu.elapsedMs / 1000,
        windowMs: window.elapsedMs,
        callMinutes,
        windowCpuMs: window.serverCpuMs,
        cpuMsPerCallMinute: callMinutes ? window.serverCpuMs / callMinutes : NaN,
        reportsSent: h.sent,
        reportsAtServer: atServerBefore[i] === null || atServerAfter[i] === null ? null : atServerAfter[i]! - atServerBefore[i]!,
        reportsReceived: h.received,
        changesSent: h.changes,
        strayReports: h.stray,
        hangUpCpuMsPerCall: calls ? down.cpu.serverCpuMs / calls : NaN,
        ended: down.ended,
        failed: down.failed + setup.failed,
        serverCpuPct: window.serverCpuPct,
        generatorCpuPct: window.generatorCpuPct,
        cpuPressurePct: window.cpuPressurePct,
      };
      arms.push(arm);
      progress.log(
        `  quality: round ${round} ${arm.label} ${arm.reporting ? 'reporting' : 'silent   '}: ${arm.cpuMsPerCallMinute.toFixed(3)} ms CPU per call-minute (${arm.serverCpuPct.toFixed(1)}% of a core), reports sent ${arm.reportsSent}, at the server ${arm.reportsAtServer ?? 'n/a'}, reached the peer ${arm.reportsReceived}, hang-up ${arm.hangUpCpuMsPerCall.toFixed(3)} ms/call, generator ${arm.generatorCpuPct.toFixed(0)}%, CPU pressure ${arm.cpuPressurePct.toFixed(0)}%${arm.failed ? `, ${arm.failed} failed` : ''}`,
      );
      h.clear();
      await sleep(100);
    }
  }
  const perRound = comparePerRound(arms);
  return {
    calls: servers[0]?.pairs.length ?? 0,
    holdS,
    leadS,
    rounds,
    concurrency,
    reportEveryMs: input.everyMs,
    warmups,
    arms,
    perRound,
    summary: summarise(arms, perRound),
    counters: input.counters,
  };
}

/** Per round and kind: the reporting server against the silent one. */
export function comparePerRound(arms: QualityArm[]): QualityRound[] {
  const out: QualityRound[] = [];
  for (const round of [...new Set(arms.map((a) => a.round))]) {
    for (const kind of ['memory', 'redis'] as const) {
      const on = arms.find((a) => a.round === round && a.kind === kind && a.reporting);
      const off = arms.find((a) => a.round === round && a.kind === kind && !a.reporting);
      if (!on || !off) continue;
      const diffMs = on.cpuMsPerCallMinute - off.cpuMsPerCallMinute;
      const setupMs = (on.setupCpuMsPerCall + off.setupCpuMsPerCall) / 2;
      const reportsPerCallMinute = on.callMinutes ? on.reportsSent / on.callMinutes : NaN;
      out.push({
        round,
        kind,
        reporting: on.label,
        silent: off.label,
        withMs: on.cpuMsPerCallMinute,
        withoutMs: off.cpuMsPerCallMinute,
        diffMs,
        setupMs,
        diffPctOfSetup: (100 * diffMs) / setupMs,
        perReportUs: (1000 * diffMs) / reportsPerCallMinute,
      });
    }
  }
  return out;
}

function summarise(arms: QualityArm[], perRound: QualityRound[]): QualityKindSummary[] {
  const out: QualityKindSummary[] = [];
  for (const kind of ['memory', 'redis'] as const) {
    const rounds = perRound.filter((r) => r.kind === kind);
    if (!rounds.length) continue;
    const mine = arms.filter((a) => a.kind === kind);
    const on = mine.filter((a) => a.reporting);
    const sent = on.reduce((n, a) => n + a.reportsSent, 0);
    const minutes = on.reduce((n, a) => n + a.callMinutes, 0);
    out.push({
      kind,
      rounds: rounds.length,
      withMs: median(rounds.map((r) => r.withMs)),
      withoutMs: median(rounds.map((r) => r.withoutMs)),
      diffMs: median(rounds.map((r) => r.diffMs)),
      setupMs: median(rounds.map((r) => r.setupMs)),
      hangUpMs: median(mine.map((a) => a.hangUpCpuMsPerCall)),
      diffPctOfSetup: median(rounds.map((r) => r.diffPctOfSetup)),
      perReportUs: median(rounds.map((r) => r.perReportUs)),
      reportsPerCallMinute: minutes ? sent / minutes : NaN,
      reportsSent: sent,
      reportsAtServer: on.some((a) => a.reportsAtServer === null) ? null : on.reduce((n, a) => n + a.reportsAtServer!, 0),
      reportsReceived: on.reduce((n, a) => n + a.reportsReceived, 0),
      changesSent: on.reduce((n, a) => n + a.changesSent, 0),
      silentReceived: mine.filter((a) => !a.reporting).reduce((n, a) => n + a.reportsReceived, 0),
      strayReports: mine.reduce((n, a) => n + a.strayReports, 0),
      failed: mine.reduce((n, a) => n + a.failed, 0),
    });
  }
  return out;
}
