/**
 * One bench run: starts the processes each mode needs, runs the modes, stops
 * everything, and returns the report (main.ts writes it out).
 */
import { cpus, loadavg } from 'node:os';
import { performance } from 'node:perf_hooks';
import { newCounters, type Counters, type Pair } from './call.js';
import { runFanout, type FanoutResult } from './fanout.js';
import { runIdle, type IdleResult } from './idle.js';
import { runLoad, type LoadResult } from './load.js';
import { sleep } from './measure.js';
import type { BenchOptions } from './options.js';
import { cpuCount, hasTaskset, pinSelf, startProcess, type ServerKind, type ServerProcess } from './processes.js';
import { Progress } from './progress.js';
import { findRedis, startCluster, type RedisHandle } from './redis.js';
import { runQuality, type QualityResult, type QualityServer } from './quality.js';
import { closedLoop, GENERATOR_SATURATED_PCT, runSaturation, type SaturationResult } from './saturation.js';
import { median, rng } from './stats.js';
import { closePairs, connectPairs, crashedNodes, makeTarget, type Target, type TargetName } from './targets.js';
import { checkTargets, type TargetCheck } from './targets-check.js';

export interface ServerReport {
  label: string;
  kind: ServerKind;
  warnings: number;
  errors: number;
  samples: string[];
  crashed: string | null;
  /** Switchboard's `switchboard_errors_total` / `switchboard_rate_limited_total` at the end. */
  errorCounters: Record<string, number>;
}

export interface BenchReport {
  meta: {
    startedAt: string;
    finishedAt: string;
    durationS: number;
    command: string;
    quick: boolean;
    modes: string[];
    node: string;
    cpuModel: string;
    cores: number;
    loadAvgStart: number[];
    loadAvgEnd: number[];
    pinned: boolean;
    serverCpu: number | null;
    generatorCpu: number | null;
    logLevel: string;
    options: BenchOptions;
  };
  saturation: SaturationResult | null;
  load: LoadResult | null;
  idle: IdleResult | null;
  redis: { available: boolean; reason?: string; source?: string; nodes?: number; cluster?: { available: boolean; reason?: string; masters?: number; nodes?: number } } | null;
  fanout: FanoutResult | null;
  /** Quality reports: server CPU per call-minute with and without `call:quality`, against a call's setup. */
  quality: QualityResult | null;
  /** Per target: calls completed/failed and what went wrong, over the whole run. */
  counters: Partial<Record<TargetName, Counters>>;
  servers: ServerReport[];
  checks: TargetCheck[];
  notes: string[];
}

/** The server processes of a run: started pinned as asked, stopped with a report each. */
class Fleet {
  readonly all: ServerProcess[] = [];
  readonly reports: ServerReport[] = [];

  constructor(private readonly options: BenchOptions, private readonly serverCpu: number | null) {}

  async start(label: string, kind: ServerKind, env: Record<string, string> = {}): Promise<ServerProcess> {
    const p = await startProcess({ label, kind, env, cpu: this.serverCpu, logLevel: this.options.logLevel });
    this.all.push(p);
    return p;
  }

  /** Stops `which`, keeping what each logged and counted. */
  async stop(which: ServerProcess[]): Promise<void> {
    for (const p of which) {
      this.reports.push({
        label: p.label,
        kind: p.kind,
        warnings: p.log.warnings,
        errors: p.log.errors,
        samples: p.log.samples,
        crashed: p.crashed,
        errorCounters: p.crashed ? {} : await p.errorCounters(),
      });
    }
    await Promise.all(which.map((p) => p.stop()));
  }
}

/** What the call modes (saturation, offered load, Redis mode) measured. */
interface CallResults {
  saturation: SaturationResult | null;
  load: LoadResult | null;
  redis: BenchReport['redis'];
}

interface CallTargets {
  memory: Target;
  bare: Target;
  redisTarget: Target | null;
  clusterTarget: Target | null;
  /** What to let go afterwards: the Redis and the cluster the bench used. */
  handles: RedisHandle[];
  info: BenchReport['redis'];
}

/**
 * Memory mode, the bare relay and, when asked, Redis mode: two nodes on one
 * Redis, and two nodes on a Redis Cluster of three masters the bench starts.
 * Connects the pairs each needs.
 */
async function startCallTargets(options: BenchOptions, fleet: Fleet, has: (mode: string) => boolean, notes: string[], started: ServerProcess[]): Promise<CallTargets> {
  const [sb, bare] = await Promise.all([fleet.start('switchboard', 'switchboard'), fleet.start('bare', 'bare')]);
  started.push(sb, bare);
  const base = { memory: makeTarget('switchboard', [sb]), bare: makeTarget('bare', [bare]), redisTarget: null, clusterTarget: null, handles: [] };
  if (!has('redis')) return { ...base, info: null };
  const found = await findRedis(options.redisUrl);
  if ('reason' in found) {
    notes.push(`Redis mode skipped: ${found.reason}`);
    return { ...base, info: { available: false, reason: found.reason } };
  }
  const twoNodes = async (name: string, env: Record<string, string>) => {
    const nodes = await Promise.all([fleet.start(`${name}-a`, 'switchboard', env), fleet.start(`${name}-b`, 'switchboard', env)]);
    started.push(...nodes);
    return nodes;
  };
  const redisTarget = makeTarget('switchboard-redis', await twoNodes('switchboard-redis', { REDIS_URL: found.url, REDIS_PREFIX: found.prefix }), found);
  const info: NonNullable<BenchReport['redis']> = { available: true, source: found.source, nodes: 2 };
  const cluster = await startCluster();
  if ('reason' in cluster) {
    notes.push(`Redis Cluster mode skipped: ${cluster.reason}`);
    return { ...base, redisTarget, handles: [found], info: { ...info, cluster: { available: false, reason: cluster.reason } } };
  }
  const clusterTarget = makeTarget('switchboard-cluster', await twoNodes('switchboard-cluster', cluster.env), cluster);
  return { ...base, redisTarget, clusterTarget, handles: [found, cluster], info: { ...info, cluster: { available: true, masters: 3, nodes: 2 } } };
}

/** Fixed offered load against memory mode and the bare relay, at fractions of Switchboard's saturation (probed when not measured). */
async function runLoadMode(
  options: BenchOptions,
  progress: Progress,
  memory: Target,
  bare: Target,
  pairsOf: Map<TargetName, Pair[]>,
  saturation: SaturationResult | null,
): Promise<LoadResult> {
  let baseRate = saturation?.summary.switchboard?.callsPerSec ?? options.loadBase ?? NaN;
  let baseFrom: LoadResult['baseFrom'] = saturation?.summary.switchboard ? 'saturation' : 'option';
  if (!Number.isFinite(baseRate)) {
    progress.update('load: probing Switchboard saturation');
    const probe = await closedLoop(memory, pairsOf.get('switchboard')!.slice(0, options.pairs), options.windowS * 1000);
    baseRate = probe.callsPerSec;
    baseFrom = 'saturation';
  }
  const loadPairs = (name: TargetName) => pairsOf.get(name)!.slice(0, options.loadPairs);
  return runLoad({
    targets: [
      { target: memory, pairs: loadPairs('switchboard') },
      { target: bare, pairs: loadPairs('bare') },
    ],
    fractions: options.loads,
    baseRate,
    baseFrom,
    windowS: options.loadWindowS,
    random: rng(options.seed),
    progress,
    ...(saturation ? {} : { warmUp: { pairs: options.pairs, minS: options.warmupS, maxS: options.warmupMaxS } }),
  });
}

/** Saturation (memory, bare, and Redis mode when asked) and fixed offered load, on one set of servers. */
async function runCallModes(
  options: BenchOptions,
  fleet: Fleet,
  progress: Progress,
  has: (mode: string) => boolean,
  counters: BenchReport['counters'],
  notes: string[],
): Promise<CallResults> {
  progress.update('starting servers');
  const started: ServerProcess[] = [];
  const allPairs: Pair[][] = [];
  const handles: RedisHandle[] = [];
  try {
    const targets = await startCallTargets(options, fleet, has, notes, started);
    handles.push(...targets.handles);
    const { memory, bare, redisTarget, clusterTarget } = targets;
    const shared = [...(redisTarget ? [redisTarget] : []), ...(clusterTarget ? [clusterTarget] : [])];
    // Video calls on the memory-mode node itself: the same process, other users, video-sized SDPs.
    const video = options.video && has('saturation') ? makeTarget('switchboard-video', memory.nodes) : null;
    const needed = Math.max(has('saturation') || has('redis') ? options.pairs : 0, has('load') ? options.loadPairs : 0);
    const pairsOf = new Map<TargetName, Pair[]>();
    for (const target of [memory, bare, ...(video ? [video] : []), ...shared]) {
      const c = newCounters();
      counters[target.name] = c;
      const n = shared.includes(target) || target === video ? options.pairs : needed;
      const pairs = await connectPairs(target, n, c, (d) => progress.update(`connecting ${n} pairs to ${target.name}`, `${d}`));
      allPairs.push(pairs);
      pairsOf.set(target.name, pairs);
    }
    const satTargets = [
      ...(has('saturation') || has('redis') ? [{ target: memory, pairs: pairsOf.get('switchboard')!.slice(0, options.pairs) }] : []),
      ...(has('saturation') ? [{ target: bare, pairs: pairsOf.get('bare')!.slice(0, options.pairs) }] : []),
      ...(video ? [{ target: video, pairs: pairsOf.get('switchboard-video')! }] : []),
      ...shared.map((target) => ({ target, pairs: pairsOf.get(target.name)! })),
    ];
    const saturation =
      satTargets.length > 1 || has('saturation')
        ? await runSaturation({ targets: satTargets, rounds: options.rounds, windowS: options.windowS, warmupS: options.warmupS, warmupMaxS: options.warmupMaxS, progress })
        : null;
    const load = has('load') ? await runLoadMode(options, progress, memory, bare, pairsOf, saturation) : null;
    for (const t of [memory, bare, ...shared]) {
      for (const c of crashedNodes(t)) notes.push(`server crashed during the call modes: ${c}`);
    }
    return { saturation, load, redis: targets.info };
  } finally {
    allPairs.forEach(closePairs);
    await sleep(200);
    await fleet.stop(started);
    for (const handle of handles) await handle.release();
  }
}

/** Presence fan-out: one user's status to N watchers, on fresh servers. */
async function runFanoutMode(options: BenchOptions, fleet: Fleet, progress: Progress): Promise<FanoutResult> {
  progress.update('fan-out: starting servers');
  const [sb, bare] = await Promise.all([fleet.start('switchboard-fanout', 'switchboard', { CONTACTS: 'claims' }), fleet.start('bare-fanout', 'bare')]);
  try {
    return await runFanout({ servers: { switchboard: sb, bare }, watchers: options.fanout, reps: options.fanoutReps, concurrency: options.batch, timeoutMs: 20_000, progress });
  } finally {
    await fleet.stop([sb, bare]);
  }
}

/**
 * Quality reports: two memory-mode servers (and, with --quality-redis, two
 * Redis-mode clusters of two nodes, each with its own key prefix), N pairs
 * connected to each; see quality.ts.
 */
async function runQualityMode(options: BenchOptions, fleet: Fleet, progress: Progress, notes: string[]): Promise<QualityResult> {
  progress.update('quality: starting servers');
  const started: ServerProcess[] = [];
  const allPairs: Pair[][] = [];
  let redis: RedisHandle | null = null;
  let redisInfo: QualityResult['redis'];
  try {
    const [a, b] = await Promise.all([fleet.start('switchboard-quality-a', 'switchboard'), fleet.start('switchboard-quality-b', 'switchboard')]);
    started.push(a, b);
    const specs: Omit<QualityServer, 'pairs'>[] = [
      { label: 'memory-a', kind: 'memory', target: makeTarget('switchboard', [a]) },
      { label: 'memory-b', kind: 'memory', target: makeTarget('switchboard', [b]) },
    ];
    if (options.qualityRedis) {
      const found = await findRedis(options.redisUrl);
      if ('reason' in found) {
        notes.push(`quality: Redis mode skipped: ${found.reason}`);
        redisInfo = { skipped: found.reason };
      } else {
        redis = found;
        redisInfo = { source: found.source, nodes: 2 };
        for (const side of ['a', 'b'] as const) {
          const env = { REDIS_URL: found.url, REDIS_PREFIX: `${found.prefix}${side}:` };
          const nodes = await Promise.all([1, 2].map((n) => fleet.start(`switchboard-quality-redis-${side}${n}`, 'switchboard', env)));
          started.push(...nodes);
          specs.push({ label: `redis-${side}`, kind: 'redis', target: makeTarget('switchboard-redis', nodes) });
        }
      }
    }
    const counters: Record<string, Counters> = {};
    const servers: QualityServer[] = [];
    for (const spec of specs) {
      const c = (counters[spec.label] = newCounters());
      const n = options.qualityCalls;
      const pairs = await connectPairs(spec.target, n, c, (d) => progress.update(`quality: connecting ${n} pairs to ${spec.label}`, `${d}`));
      allPairs.push(pairs);
      servers.push({ ...spec, pairs });
    }
    const result = await runQuality({
      servers,
      holdS: options.qualityHoldS,
      leadS: options.qualityLeadS,
      rounds: options.qualityRounds,
      everyMs: options.qualityEveryMs,
      concurrency: Math.min(options.pairs, options.qualityCalls),
      warmupS: options.warmupS,
      warmupMaxS: options.warmupMaxS,
      random: rng(options.seed),
      progress,
      counters,
    });
    for (const s of servers) for (const c of crashedNodes(s.target)) notes.push(`server crashed during the quality mode: ${c}`);
    return redisInfo ? { ...result, redis: redisInfo } : result;
  } finally {
    allPairs.forEach(closePairs);
    await sleep(200);
    await fleet.stop(started);
    if (redis) await redis.release();
  }
}

/** What a reader of the numbers must know: a saturated generator, a contended machine, servers that crashed or complained. */
function noticesOf(saturation: SaturationResult | null, load: LoadResult | null, reports: ServerReport[]): string[] {
  const notes: string[] = [];
  for (const [name, s] of Object.entries(saturation?.summary ?? {})) {
    if (s.generatorSaturated) {
      notes.push(
        `generator saturated while driving ${name} (${s.generatorCpuPct.toFixed(0)}% of its core ≥ ${GENERATOR_SATURATED_PCT}%): its calls/s is the generator's limit, not the server's; CPU ms per call (the server's own CPU time) still holds`,
      );
    }
  }
  const busy = load?.points.filter((p) => p.generatorCpuPct >= GENERATOR_SATURATED_PCT) ?? [];
  if (busy.length) notes.push(`generator saturated at offered load: ${busy.map((p) => `${p.target} ${(p.fraction * 100).toFixed(0)}%`).join(', ')} — latencies there include generator queueing`);
  const lagging = load?.points.filter((p) => p.sendLag.p99 > 5) ?? [];
  if (lagging.length) {
    notes.push(
      `the generator itself sent late (p99 of scheduled → sent > 5 ms) at: ${lagging.map((p) => `${p.target} ${(p.fraction * 100).toFixed(0)}% (${p.sendLag.p99.toFixed(1)} ms)`).join(', ')} — those latencies measure a starved generator or an exhausted pair pool as much as the server`,
    );
  }
  const pressures = [...(saturation?.windows.map((w) => w.cpuPressurePct) ?? []), ...(load?.points.map((p) => p.cpuPressurePct) ?? [])].filter(Number.isFinite);
  if (pressures.length && Math.max(...pressures) >= 10) {
    notes.push(
      `the machine was contended: in the measuring windows some task waited for a CPU ${median(pressures).toFixed(0)}% of the time (median; worst ${Math.max(...pressures).toFixed(0)}%, Linux PSI). calls/s and latencies are then partly the machine's; CPU ms per call (each process's own CPU time) is the sturdier figure`,
    );
  }
  for (const r of reports) {
    if (r.crashed) notes.push(`${r.label} crashed: ${r.crashed}`);
    if (r.errors || r.warnings) notes.push(`${r.label} logged ${r.errors} error and ${r.warnings} warning lines (see servers[].samples)`);
  }
  return notes;
}

/** The quality mode's own warnings: reports that never arrived (then nothing was measured), reports where none were sent, failed calls. */
function qualityNotices(q: QualityResult | null): string[] {
  const notes: string[] = [];
  for (const s of q?.summary ?? []) {
    if (s.reportsReceived === 0) notes.push(`quality (${s.kind}): no call:quality report reached a peer: the difference measures nothing`);
    else if (s.reportsReceived < 0.99 * s.changesSent) {
      notes.push(
        `quality (${s.kind}): ${s.reportsReceived} reports reached the peer of the ${s.changesSent} that changed a party's level (the server forwards only changes)` +
          (s.reportsAtServer === null ? '' : `; the server received ${s.reportsAtServer} of ${s.reportsSent} sent: a report it dropped as early, or that was in flight at a window's edge, is missing`),
      );
    }
    if (s.silentReceived) notes.push(`quality (${s.kind}): ${s.silentReceived} reports reached a peer on the silent server`);
    if (s.strayReports) notes.push(`quality (${s.kind}): ${s.strayReports} call:quality events that were not a held call's peer report`);
    if (s.failed) notes.push(`quality (${s.kind}): ${s.failed} held calls failed (see quality.counters)`);
  }
  const pressures = q?.arms.map((a) => a.cpuPressurePct).filter(Number.isFinite) ?? [];
  if (pressures.length && Math.max(...pressures) >= 10) {
    notes.push(`quality: the machine was contended in the holding windows (CPU pressure median ${median(pressures).toFixed(0)}%, worst ${Math.max(...pressures).toFixed(0)}%); each server's CPU is its own, but a busy core slows what it does`);
  }
  return notes;
}

export async function runBench(options: BenchOptions): Promise<BenchReport> {
  const t0 = performance.now();
  const startedAt = new Date();
  const progress = new Progress(options.quiet ? null : process.stdout);
  const loadAvgStart = loadavg();
  const notes: string[] = [];
  const pinned = options.pin && cpuCount() >= 2 && pinSelf(0);
  const serverCpu = pinned ? 1 : null;
  if (options.pin && !pinned) notes.push(hasTaskset() ? 'fewer than 2 cores: nothing pinned' : 'taskset not available: nothing pinned');
  const fleet = new Fleet(options, serverCpu);
  const has = (m: string) => options.modes.includes(m as never);
  const counters: BenchReport['counters'] = {};
  let calls: CallResults = { saturation: null, load: null, redis: null };
  let idle: IdleResult | null = null;
  let fanout: FanoutResult | null = null;
  let quality: QualityResult | null = null;
  try {
    if (has('saturation') || has('load') || has('redis')) calls = await runCallModes(options, fleet, progress, has, counters, notes);
    if (has('idle')) {
      idle = await runIdle({
        levels: options.idleLevels,
        rounds: options.idleRounds,
        concurrency: options.batch,
        settleMs: options.quick ? 300 : 1500,
        progress,
        start: async (kind, round) => {
          const p = await fleet.start(`${kind}-idle-${round}`, kind);
          return { ...p, stop: () => fleet.stop([p]) };
        },
      });
    }
    if (has('fanout')) fanout = await runFanoutMode(options, fleet, progress);
    if (has('quality')) quality = await runQualityMode(options, fleet, progress, notes);
  } finally {
    progress.done();
    await Promise.all(fleet.all.map((p) => p.stop()));
  }
  notes.push(...noticesOf(calls.saturation, calls.load, fleet.reports), ...qualityNotices(quality));
  const report: BenchReport = {
    meta: {
      startedAt: startedAt.toISOString(),
      finishedAt: new Date().toISOString(),
      durationS: (performance.now() - t0) / 1000,
      command: ['npm run bench', ...(process.argv.slice(2).length ? ['--', ...process.argv.slice(2)] : [])].join(' '),
      quick: options.quick,
      modes: options.modes,
      node: process.version,
      cpuModel: cpus()[0]?.model ?? 'unknown',
      cores: cpuCount(),
      loadAvgStart,
      loadAvgEnd: loadavg(),
      pinned,
      serverCpu,
      generatorCpu: pinned ? 0 : null,
      logLevel: options.logLevel,
      options,
    },
    saturation: calls.saturation,
    load: calls.load,
    idle,
    redis: calls.redis,
    fanout,
    quality,
    counters,
    servers: fleet.reports,
    checks: [],
    notes,
  };
  report.checks = checkTargets(report);
  return report;
}
