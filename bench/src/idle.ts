/**
 * Idle sessions: a fresh server, authenticated sessions opened in batches up to
 * each level (e.g. 2k, 5k, 10k), and the server's RSS and V8 heap at each. The
 * cost per session is the least-squares slope over the levels, so the fixed
 * start-up memory drops out. Each session is its own tenant (no presence fan-out).
 */
import { closeAll, openMany, openSpec, type Socket } from './clients.js';
import { sleep } from './measure.js';
import type { Progress } from './progress.js';
import { median, ratio, slope } from './stats.js';
import type { RatioSummary } from './saturation.js';
import type { ServerKind, ServerProcess } from './processes.js';

export interface IdlePoint {
  sessions: number;
  rssBytes: number;
  heapBytes: number | null;
}

export interface IdleRun {
  target: ServerKind;
  round: number;
  baseline: IdlePoint;
  points: IdlePoint[];
  /** Slope of RSS over the levels, bytes per session. */
  rssPerSession: number;
  heapPerSession: number | null;
  /** Sessions held at once at the end. */
  sessionsHeld: number;
  /** Seconds to open all sessions. */
  openSeconds: number;
  error?: string;
}

export interface IdleResult {
  levels: number[];
  runs: IdleRun[];
  summary: Partial<Record<ServerKind, { rssPerSession: number; heapPerSession: number | null; sessionsHeld: number }>>;
  rssRatio: RatioSummary | null;
  heapRatio: RatioSummary | null;
}

async function sample(server: ServerProcess, sessions: number): Promise<IdlePoint> {
  const rss: number[] = [];
  for (let i = 0; i < 3; i++) {
    rss.push(server.rssBytes());
    await sleep(100);
  }
  return { sessions, rssBytes: median(rss), heapBytes: await server.heapUsedBytes() };
}

export interface IdleInput {
  start: (kind: ServerKind, round: number) => Promise<ServerProcess>;
  levels: number[];
  rounds: number;
  concurrency: number;
  settleMs: number;
  progress: Progress;
}

export async function idleRun(server: ServerProcess, round: number, input: IdleInput): Promise<IdleRun> {
  const { levels, concurrency, settleMs, progress } = input;
  const kind = server.kind;
  await sleep(settleMs);
  const baseline = await sample(server, 0);
  const points: IdlePoint[] = [];
  const sockets: Socket[] = [];
  const started = Date.now();
  let error: string | undefined;
  try {
    for (const level of levels) {
      const from = sockets.length;
      const phase = `idle: round ${round} ${kind} → ${level} sessions`;
      const opened = await openMany(
        level - from,
        concurrency,
        (i) => openSpec(server.url, kind, { userId: `u${from + i}`, tenant: `i${from + i}` }),
        (done) => progress.update(phase, `${from + done}`),
      );
      sockets.push(...opened);
      await sleep(settleMs);
      points.push(await sample(server, level));
      const p = points[points.length - 1]!;
      progress.log(`  ${phase}: RSS ${(p.rssBytes / 2 ** 20).toFixed(1)} MiB, heap ${p.heapBytes === null ? '?' : (p.heapBytes / 2 ** 20).toFixed(1)} MiB`);
    }
  } catch (err) {
    error = `after ${sockets.length} sessions: ${err instanceof Error ? err.message : String(err)}`;
    progress.log(`  idle ${kind}: ${error}`);
  }
  const openSeconds = (Date.now() - started) / 1000;
  const sessionsHeld = sockets.filter((s) => s.connected).length;
  closeAll(sockets);
  const xs = points.map((p) => p.sessions);
  const heaps = points.map((p) => p.heapBytes);
  return {
    target: kind,
    round,
    baseline,
    points,
    rssPerSession: slope(xs, points.map((p) => p.rssBytes)),
    heapPerSession: heaps.every((h) => h !== null) ? slope(xs, heaps as number[]) : null,
    sessionsHeld,
    openSeconds,
    ...(error ? { error } : {}),
  };
}

export async function runIdle(input: IdleInput): Promise<IdleResult> {
  const runs: IdleRun[] = [];
  for (let round = 1; round <= input.rounds; round++) {
    for (const kind of ['switchboard', 'bare'] as const) {
      input.progress.update(`idle: round ${round} starting ${kind}`);
      const server = await input.start(kind, round);
      try {
        runs.push(await idleRun(server, round, input));
      } finally {
        await server.stop();
      }
    }
  }
  const summary: IdleResult['summary'] = {};
  for (const kind of ['switchboard', 'bare'] as const) {
    const mine = runs.filter((r) => r.target === kind);
    if (mine.length === 0) continue;
    const heaps = mine.map((r) => r.heapPerSession);
    summary[kind] = {
      rssPerSession: median(mine.map((r) => r.rssPerSession)),
      heapPerSession: heaps.every((h) => h !== null) ? median(heaps as number[]) : null,
      sessionsHeld: Math.min(...mine.map((r) => r.sessionsHeld)),
    };
  }
  const pairRatio = (pick: (r: IdleRun) => number | null): RatioSummary | null => {
    const values: number[] = [];
    for (let round = 1; round <= input.rounds; round++) {
      const a = runs.find((r) => r.round === round && r.target === 'switchboard');
      const b = runs.find((r) => r.round === round && r.target === 'bare');
      const va = a ? pick(a) : null;
      const vb = b ? pick(b) : null;
      if (va !== null && vb !== null) values.push(ratio(va, vb));
    }
    return values.length ? { perRound: values, median: median(values) } : null;
  };
  return { levels: input.levels, runs, summary, rssRatio: pairRatio((r) => r.rssPerSession), heapRatio: pairRatio((r) => r.heapPerSession) };
}
