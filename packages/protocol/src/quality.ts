/**
 * Call quality (v1.1): the names a party's report uses, the ranges the server
 * accepts, and the per-party summary a call's history keeps. Plain data, so a
 * client gets them without the schemas.
 */

/** How a party hears the call: from its estimated MOS and its raised warnings. */
export const QUALITY_LEVELS = ['good', 'fair', 'poor'] as const;
export type QualityLevel = (typeof QUALITY_LEVELS)[number];

export const QUALITY_WARNINGS = ['high-rtt', 'high-jitter', 'high-packet-loss', 'low-mos', 'no-audio-received'] as const;
export type QualityWarning = (typeof QUALITY_WARNINGS)[number];

/** The accepted range of each number in a `call:quality` report; outside it → `invalid_payload`. */
export const QUALITY_RANGES = {
  mos: [1, 5],
  rttMs: [0, 60_000],
  jitterMs: [0, 60_000],
  lossPct: [0, 100],
} as const;

/** A party's view of the media it receives, about once a second (`call:quality` C→S). */
export interface QualityReport {
  mos: number;
  rttMs: number;
  jitterMs: number;
  lossPct: number;
  level: QualityLevel;
  warnings: QualityWarning[];
}

/** A mean and an extreme of one measure over a call. */
export interface QualityStat {
  mean: number;
  max: number;
}

/** One party's reports over a call, as its history record and the `call.ended` webhook carry it. */
export interface QualitySummary {
  /** Reports received. */
  samples: number;
  mos: { min: number; mean: number };
  rttMs: QualityStat;
  jitterMs: QualityStat;
  lossPct: QualityStat;
  /** The worst level reported. */
  worstLevel: QualityLevel;
}

/** Both parties' summaries; a party that sent no report has none. */
export interface CallQuality {
  caller?: QualitySummary;
  callee?: QualitySummary;
}

const LEVEL_RANK: Record<QualityLevel, number> = { good: 0, fair: 1, poor: 2 };

function worse(a: QualityLevel, b: QualityLevel): QualityLevel {
  return LEVEL_RANK[b] > LEVEL_RANK[a] ? b : a;
}

/** `summary` with one more report folded in (a new summary when there was none). */
export function addToSummary(summary: QualitySummary | undefined, r: QualityReport): QualitySummary {
  if (!summary) {
    return {
      samples: 1,
      mos: { min: r.mos, mean: r.mos },
      rttMs: { mean: r.rttMs, max: r.rttMs },
      jitterMs: { mean: r.jitterMs, max: r.jitterMs },
      lossPct: { mean: r.lossPct, max: r.lossPct },
      worstLevel: r.level,
    };
  }
  const n = summary.samples + 1;
  const fold = (s: QualityStat, x: number): QualityStat => ({ mean: s.mean + (x - s.mean) / n, max: Math.max(s.max, x) });
  return {
    samples: n,
    mos: { min: Math.min(summary.mos.min, r.mos), mean: summary.mos.mean + (r.mos - summary.mos.mean) / n },
    rttMs: fold(summary.rttMs, r.rttMs),
    jitterMs: fold(summary.jitterMs, r.jitterMs),
    lossPct: fold(summary.lossPct, r.lossPct),
    worstLevel: worse(summary.worstLevel, r.level),
  };
}

/**
 * Two summaries of one party's reports over disjoint stretches of a call, as
 * one: what a node had already saved and what it gathered since (or what two
 * nodes gathered when the party moved between them).
 */
export function mergeSummaries(a: QualitySummary | undefined, b: QualitySummary | undefined): QualitySummary | undefined {
  if (!a || a.samples === 0) return b;
  if (!b || b.samples === 0) return a;
  const n = a.samples + b.samples;
  const mean = (x: number, y: number) => (x * a.samples + y * b.samples) / n;
  const stat = (x: QualityStat, y: QualityStat): QualityStat => ({ mean: mean(x.mean, y.mean), max: Math.max(x.max, y.max) });
  return {
    samples: n,
    mos: { min: Math.min(a.mos.min, b.mos.min), mean: mean(a.mos.mean, b.mos.mean) },
    rttMs: stat(a.rttMs, b.rttMs),
    jitterMs: stat(a.jitterMs, b.jitterMs),
    lossPct: stat(a.lossPct, b.lossPct),
    worstLevel: worse(a.worstLevel, b.worstLevel),
  };
}
