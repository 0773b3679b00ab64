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
import { findRedis, type RedisHandle } from './redis.js';
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
  redis: { available: boolean; reason?: string; source?: string; nodes?: number } | null;
  fanout: FanoutResult | null;
  /** Per target: calls completed/failed and what went wrong, over the whole run. */
  counters: Partial<Record<TargetName, Counters>>;
  servers: ServerReport[];
  checks: TargetCheck[];
  notes: string[];
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

  const servers: ServerProcess[] = [];
  const reports: ServerReport[] = [];
  const start = async (label: string, kind: ServerKind, env: Record<string, string> = {}) => {
    const p = await startProcess({ label, kind, env, cpu: serverCpu, logLevel: options.logLevel });
    servers.push(p);
    return p;
  };
  const stopAll = async (which: ServerProcess[]) => {
    for (const p of which) {
      reports.push({
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
  };

  const has = (m: string) => options.modes.includes(m as never);
  const counters: BenchReport['counters'] = {};
  let saturation: SaturationResult | null = null;
  let load: LoadResult | null = null;
  let idle: IdleResult | null = null;
  let fanout: FanoutResult | null = null;
  let redisInfo: BenchReport['redis'] = null;
  let redis: RedisHandle | null = null;

  try {
    // Calls: saturation (memory, bare, and Redis mode when asked) and fixed offered load.
    if (has('saturation') || has('load') || has('redis')) {
      progress.update('starting servers');
      const phaseServers: ServerProcess[] = [];
      const allPairs: Pair[][] = [];
      try {
        const [sb, bare] = await Promise.all([start('switchboard', 'switchboard'), start('bare', 'bare')]);
        phaseServers.push(sb, bare);
        const memory = makeTarget('switchboard', [sb]);
        const bareTarget = makeTarget('bare', [bare]);
        let redisTarget: Target | null = null;
        if (has('redis')) {
          const found = await findRedis(options.redisUrl);
          if ('reason' in found) {
            redisInfo = { available: false, reason: found.reason };
            notes.push(`Redis mode skipped: ${found.reason}`);
          } else {
            redis = found;
            const env = { REDIS_URL: found.url, REDIS_PREFIX: found.prefix };
            const nodes = await Promise.all([start('switchboard-redis-a', 'switchboard', env), start('switchboard-redis-b', 'switchboard', env)]);
            phaseServers.push(...nodes);
            redisTarget = makeTarget('switchboard-redis', nodes, found);
            redisInfo = { available: true, source: found.source, nodes: 2 };
          }
        }
        const needed = Math.max(has('saturation') || has('redis') ? options.pairs : 0, has('load') ? options.loadPairs : 0);
        const pairsOf = new Map<TargetName, Pair[]>();
        for (const target of [memory, bareTarget, ...(redisTarget ? [redisTarget] : [])]) {
          const c = newCounters();
          counters[target.name] = c;
          const n = target === redisTarget ? options.pairs : needed;
          const pairs = await connectPairs(target, n, c, (d) => progress.update(`connecting ${n} pairs to ${target.name}`, `${d}`));
          allPairs.push(pairs);
          pairsOf.set(target.name, pairs);
        }
        const satTargets = [
          ...(has('saturation') || has('redis') ? [{ target: memory, pairs: pairsOf.get('switchboard')!.slice(0, options.pairs) }] : []),
          ...(has('saturation') ? [{ target: bareTarget, pairs: pairsOf.get('bare')!.slice(0, options.pairs) }] : []),
          ...(redisTarget ? [{ target: redisTarget, pairs: pairsOf.get('switchboard-redis')! }] : []),
        ];
        if (satTargets.length > 1 || has('saturation')) {
          saturation = await runSaturation({ targets: satTargets, rounds: options.rounds, windowS: options.windowS, warmupS: options.warmupS, warmupMaxS: options.warmupMaxS, progress });
        }
        if (has('load')) {
          let baseRate = saturation?.summary.switchboard?.callsPerSec ?? options.loadBase ?? NaN;
          let baseFrom: LoadResult['baseFrom'] = saturation?.summary.switchboard ? 'saturation' : 'option';
          if (!Number.isFinite(baseRate)) {
            progress.update('load: probing Switchboard saturation');
            const probe = await closedLoop(memory, pairsOf.get('switchboard')!.slice(0, options.pairs), options.windowS * 1000);
            baseRate = probe.callsPerSec;
            baseFrom = 'saturation';
          }
          const loadPairs = (name: TargetName) => pairsOf.get(name)!.slice(0, options.loadPairs);
          load = await runLoad({
            targets: [
              { target: memory, pairs: loadPairs('switchboard') },
              { target: bareTarget, pairs: loadPairs('bare') },
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
        for (const t of [memory, bareTarget, ...(redisTarget ? [redisTarget] : [])]) {
          for (const c of crashedNodes(t)) notes.push(`server crashed during the call modes: ${c}`);
        }
      } finally {
        allPairs.forEach(closePairs);
        await sleep(200);
        await stopAll(phaseServers);
        if (redis) await redis.release();
      }
    }

    if (has('idle')) {
      idle = await runIdle({
        levels: options.idleLevels,
        rounds: options.idleRounds,
        concurrency: options.batch,
        settleMs: options.quick ? 300 : 1500,
        progress,
        start: async (kind, round) => {
          const p = await start(`${kind}-idle-${round}`, kind);
          return {
            ...p,
            stop: async () => {
              await stopAll([p]);
            },
          };
        },
      });
    }

    if (has('fanout')) {
      progress.update('fan-out: starting servers');
      const [sb, bare] = await Promise.all([start('switchboard-fanout', 'switchboard', { CONTACTS: 'claims' }), start('bare-fanout', 'bare')]);
      try {
        fanout = await runFanout({
          servers: { switchboard: sb, bare },
          watchers: options.fanout,
          reps: options.fanoutReps,
          concurrency: options.batch,
          timeoutMs: 20_000,
          progress,
        });
      } finally {
        await stopAll([sb, bare]);
      }
    }
  } finally {
    progress.done();
    await Promise.all(servers.map((p) => p.stop()));
  }

  if (saturation) {
    for (const [name, s] of Object.entries(saturation.summary)) {
      if (s.generatorSaturated) {
        notes.push(
          `generator saturated while driving ${name} (${s.generatorCpuPct.toFixed(0)}% of its core ≥ ${GENERATOR_SATURATED_PCT}%): its calls/s is the generator's limit, not the server's; CPU ms per call (the server's own CPU time) still holds`,
        );
      }
    }
  }
  if (load) {
    const busy = load.points.filter((p) => p.generatorCpuPct >= GENERATOR_SATURATED_PCT);
    if (busy.length) notes.push(`generator saturated at offered load: ${busy.map((p) => `${p.target} ${(p.fraction * 100).toFixed(0)}%`).join(', ')} — latencies there include generator queueing`);
  }
  const lagging = load?.points.filter((p) => p.sendLag.p99 > 5) ?? [];
  if (lagging.length) {
    notes.push(
      `the generator itself sent late (p99 of scheduled → sent > 5 ms) at: ${lagging.map((p) => `${p.target} ${(p.fraction * 100).toFixed(0)}% (${p.sendLag.p99.toFixed(1)} ms)`).join(', ')} — those latencies measure a starved generator or an exhausted pair pool as much as the server`,
    );
  }
  const pressures = [...(saturation?.windows.map((w) => w.cpuPressurePct) ?? []), ...(load?.points.map((p) => p.cpuPressurePct) ?? [])].filter(Number.isFinite);
  if (pressures.length) {
    const worst = Math.max(...pressures);
    const typical = median(pressures);
    if (worst >= 10) {
      notes.push(
        `the machine was contended: in the measuring windows some task waited for a CPU ${typical.toFixed(0)}% of the time (median; worst ${worst.toFixed(0)}%, Linux PSI). calls/s and latencies are then partly the machine's; CPU ms per call (each process's own CPU time) is the sturdier figure`,
      );
    }
  }
  for (const r of reports) {
    if (r.crashed) notes.push(`${r.label} crashed: ${r.crashed}`);
    if (r.errors || r.warnings) notes.push(`${r.label} logged ${r.errors} error and ${r.warnings} warning lines (see servers[].samples)`);
  }

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
    saturation,
    load,
    idle,
    redis: redisInfo,
    fanout,
    counters,
    servers: reports,
    checks: [],
    notes,
  };
  report.checks = checkTargets(report);
  return report;
}
