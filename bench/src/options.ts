/** Command-line flags of `npm run bench`, with a full default run (~2–3 min) and `--quick` (seconds). */
import { parseArgs } from 'node:util';
import { join } from 'node:path';
import { ROOT } from './processes.js';

export const MODES = ['saturation', 'load', 'idle', 'redis', 'fanout', 'quality'] as const;
export type Mode = (typeof MODES)[number];
/** What runs without `--modes`: every mode but `quality`, which holds calls for minutes (run it with `--modes quality`). */
export const DEFAULT_MODES: Mode[] = MODES.filter((m) => m !== 'quality');

export interface BenchOptions {
  quick: boolean;
  modes: Mode[];
  /** Saturation: rounds of A B (C) windows. */
  rounds: number;
  /** Saturation: concurrent pairs in the closed loop. */
  pairs: number;
  /** Saturation warm-up: at least `warmupS`, then until the server's CPU per call settles, at most `warmupMaxS`. */
  warmupS: number;
  warmupMaxS: number;
  windowS: number;
  /** Fixed load: offered rates as fractions of Switchboard's saturation. */
  loads: number[];
  loadWindowS: number;
  loadPairs: number;
  /** Fixed load: base rate (calls/s) when saturation is not measured in this run. */
  loadBase: number | null;
  idleLevels: number[];
  idleRounds: number;
  fanout: number[];
  fanoutReps: number;
  /** Quality reports: active calls held per server, seconds each is held and measured (after a lead-in), rounds (the servers swap roles). */
  qualityCalls: number;
  qualityHoldS: number;
  qualityLeadS: number;
  qualityRounds: number;
  /** quality: each party's report interval (the SDK's busiest is 1000; a steady call, 5000). */
  qualityEveryMs: number;
  /** Quality reports: also two Redis-mode clusters (two nodes each). */
  qualityRedis: boolean;
  /** Concurrent session opens while filling idle/fan-out levels. */
  batch: number;
  logLevel: string;
  pin: boolean;
  outDir: string;
  redisUrl: string | null;
  seed: number;
  /** Saturation: also video calls on the memory-mode node (video-sized SDPs), interleaved with the audio ones. */
  video: boolean;
  /** No progress output (tests). */
  quiet: boolean;
}

export const FULL: Omit<BenchOptions, 'modes' | 'quick' | 'outDir' | 'quiet' | 'pin' | 'redisUrl' | 'logLevel' | 'loadBase' | 'seed' | 'qualityRedis' | 'video'> = {
  rounds: 3,
  pairs: 32,
  warmupS: 2,
  warmupMaxS: 20,
  windowS: 4,
  loads: [0.25, 0.5, 0.75],
  loadWindowS: 6,
  loadPairs: 128,
  idleLevels: [2000, 5000, 10000],
  idleRounds: 2,
  fanout: [1000],
  fanoutReps: 5,
  qualityCalls: 200,
  qualityHoldS: 60,
  qualityLeadS: 5,
  qualityRounds: 2,
  qualityEveryMs: 1000,
  batch: 200,
};

export const QUICK: typeof FULL = {
  rounds: 1,
  pairs: 4,
  warmupS: 0.3,
  warmupMaxS: 0.3,
  windowS: 1,
  loads: [0.25, 0.5],
  loadWindowS: 0.7,
  loadPairs: 8,
  idleLevels: [100, 200, 400],
  idleRounds: 1,
  fanout: [20],
  fanoutReps: 2,
  qualityCalls: 6,
  qualityHoldS: 2,
  qualityLeadS: 0.5,
  qualityRounds: 2,
  qualityEveryMs: 1000,
  batch: 50,
};

const HELP = `npm run bench -- [flags]

  --quick                 a few-second smoke run (tiny counts)
  --modes a,b             any of ${MODES.join(', ')} (default: all but quality: ${DEFAULT_MODES.join(',')})
  --rounds N              saturation rounds, each A B (C) interleaved
  --pairs N               concurrent pairs in the saturation closed loop
  --warmup S, --window S  saturation warm-up and window length, seconds
  --warmup-max S          longest warm-up: past --warmup, it goes on in 1 s steps until the server's CPU ms per call stops falling (default 20; --quick 0.3)
  --loads f,f             offered loads as fractions of Switchboard's saturation
  --load-window S         seconds per offered-load point
  --load-pairs N          pairs available to the open loop
  --load-base R           base calls/s for --loads when saturation is not run
  --idle-levels n,n       idle session counts
  --idle-rounds N         idle rounds (fresh processes each)
  --fanout n,n            watcher counts for presence fan-out
  --fanout-reps N         repetitions per watcher count
  --quality-calls N       quality: active calls each server holds at once (default 200; --quick 6)
  --quality-hold S        quality: seconds each call is held and measured, after a lead-in of 5 s (default 60; --quick 2 after 0.5)
  --quality-rounds N      quality: rounds; the reporting and the silent server swap each round (default 2)
  --quality-every MS      quality: each party's report interval (default 1000, the SDK's busiest; 5000 is a steady call)
  --quality-redis         quality: also two Redis-mode clusters of two nodes (caller and callee apart), on the Redis Redis mode takes
  --video                 saturation: also video calls against the same memory-mode node (media.video, SDPs of
                          Chromium's camera-and-microphone size, 5.4 KB), CPU per call next to audio calls'
  --batch N               sessions opened concurrently
  --log-level L           the servers' LOG_LEVEL (default warn)
  --no-pin                do not pin server (CPU 1) and generator (CPU 0) with taskset
  --redis-url URL         Redis for redis mode (default: a private redis-server on the generator's CPU, else 127.0.0.1:6379)
  --out DIR               where results go (default bench/results)
  --seed N                arrival schedule seed
`;

const list = (s: string) => s.split(',').map((x) => x.trim()).filter(Boolean);
const nums = (s: string, name: string) =>
  list(s).map((x) => {
    const n = Number(x);
    if (!Number.isFinite(n) || n <= 0) throw new Error(`--${name}: not a positive number: ${x}`);
    return n;
  });
const num = (s: string | undefined, name: string, fallback: number) => (s === undefined ? fallback : nums(s, name)[0]!);

export function parseOptions(argv: string[]): BenchOptions | 'help' {
  const { values } = parseArgs({
    args: argv,
    strict: true,
    options: {
      help: { type: 'boolean', short: 'h' },
      quick: { type: 'boolean' },
      modes: { type: 'string' },
      rounds: { type: 'string' },
      pairs: { type: 'string' },
      warmup: { type: 'string' },
      'warmup-max': { type: 'string' },
      window: { type: 'string' },
      loads: { type: 'string' },
      'load-window': { type: 'string' },
      'load-pairs': { type: 'string' },
      'load-base': { type: 'string' },
      'idle-levels': { type: 'string' },
      'idle-rounds': { type: 'string' },
      fanout: { type: 'string' },
      'fanout-reps': { type: 'string' },
      'quality-calls': { type: 'string' },
      'quality-hold': { type: 'string' },
      'quality-rounds': { type: 'string' },
      'quality-every': { type: 'string' },
      'quality-redis': { type: 'boolean' },
      video: { type: 'boolean' },
      batch: { type: 'string' },
      'log-level': { type: 'string' },
      'no-pin': { type: 'boolean' },
      'redis-url': { type: 'string' },
      out: { type: 'string' },
      seed: { type: 'string' },
    },
  });
  if (values.help) return 'help';
  const base = values.quick ? QUICK : FULL;
  const modes = values.modes ? list(values.modes) : [...DEFAULT_MODES];
  const warmupS = num(values.warmup, 'warmup', base.warmupS);
  for (const m of modes) if (!(MODES as readonly string[]).includes(m)) throw new Error(`--modes: unknown mode "${m}" (${MODES.join(', ')})`);
  return {
    quick: !!values.quick,
    modes: modes as Mode[],
    rounds: Math.round(num(values.rounds, 'rounds', base.rounds)),
    pairs: Math.round(num(values.pairs, 'pairs', base.pairs)),
    warmupS,
    warmupMaxS: Math.max(num(values['warmup-max'], 'warmup-max', base.warmupMaxS), warmupS),
    windowS: num(values.window, 'window', base.windowS),
    loads: values.loads ? nums(values.loads, 'loads') : base.loads,
    loadWindowS: num(values['load-window'], 'load-window', base.loadWindowS),
    loadPairs: Math.round(num(values['load-pairs'], 'load-pairs', base.loadPairs)),
    loadBase: values['load-base'] ? num(values['load-base'], 'load-base', 0) : null,
    idleLevels: values['idle-levels'] ? nums(values['idle-levels'], 'idle-levels').map(Math.round).sort((a, b) => a - b) : base.idleLevels,
    idleRounds: Math.round(num(values['idle-rounds'], 'idle-rounds', base.idleRounds)),
    fanout: values.fanout ? nums(values.fanout, 'fanout').map(Math.round) : base.fanout,
    fanoutReps: Math.round(num(values['fanout-reps'], 'fanout-reps', base.fanoutReps)),
    qualityCalls: Math.round(num(values['quality-calls'], 'quality-calls', base.qualityCalls)),
    qualityHoldS: num(values['quality-hold'], 'quality-hold', base.qualityHoldS),
    qualityLeadS: base.qualityLeadS,
    qualityRounds: Math.round(num(values['quality-rounds'], 'quality-rounds', base.qualityRounds)),
    qualityEveryMs: Math.round(num(values['quality-every'], 'quality-every', base.qualityEveryMs)),
    qualityRedis: !!values['quality-redis'],
    video: !!values.video,
    batch: Math.round(num(values.batch, 'batch', base.batch)),
    logLevel: values['log-level'] ?? 'warn',
    pin: !values['no-pin'],
    outDir: values.out ?? join(ROOT, 'bench/results'),
    redisUrl: values['redis-url'] ?? null,
    seed: Math.round(num(values.seed, 'seed', 1)),
    quiet: false,
  };
}

export function quickOptions(overrides: Partial<BenchOptions> = {}): BenchOptions {
  return {
    ...QUICK,
    quick: true,
    modes: [...DEFAULT_MODES],
    qualityRedis: false,
    video: false,
    logLevel: 'warn',
    pin: true,
    outDir: join(ROOT, 'bench/results'),
    redisUrl: null,
    loadBase: null,
    seed: 1,
    quiet: false,
    ...overrides,
  };
}

export { HELP };
