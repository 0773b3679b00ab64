/**
 * Call quality as a call sees it: one `getStats()` reading a second turned
 * into a sample (RTT, jitter, loss over the last second, MOS, level and
 * warnings with hysteresis), and the pacing of the reports the server gets.
 * The reading and the tracker are pure; the call owns the timer.
 */
import type { QualityLevel, QualityReport, QualityWarning } from '@switchboard/protocol/wire';
import { Warnings, estimateMos, levelOf } from './quality-model.js';

/** How often a call samples its peer connection's statistics. */
export const SAMPLE_EVERY_MS = 1000;
/** Reports to the server: at most one a second (on a change of level or warnings), at least one every this long. */
export const REPORT_AT_LEAST_EVERY_MS = 5000;
export const REPORT_AT_MOST_EVERY_MS = 1000;

/** What one `getStats()` says of the received audio and the path, cumulative where the stats are. */
export interface StatsReading {
  /** Epoch ms of the reading. */
  at: number;
  packetsReceived: number;
  packetsLost: number;
  bytesReceived: number;
  /** Interarrival jitter of the received audio, ms (RFC 3550, as the receiver estimates it). */
  jitterMs: number;
  /** Round-trip time of the selected candidate pair (or from RTCP), ms; null before one is measured. */
  rttMs: number | null;
  /** Level of the received audio, 0–1, where the stack reports it. */
  audioLevel: number | null;
  /** The selected pair goes through a TURN relay (either end), when known. */
  relayed: boolean | null;
}

/** One second of a call's received media (the `quality` event). */
export interface QualitySample extends QualityReport {
  /** Audio packets received in the last second. */
  packets: number;
  /** Received bitrate over the last second, kbit/s. */
  bitrateKbps: number;
  /** Level of the received audio, 0–1, where the stack reports it. */
  audioLevel: number | null;
  /** The media goes through a TURN relay, when known. */
  relayed: boolean | null;
}

/** The peer's view of the media it receives, as its last report said (`call.remoteQuality`). */
export interface RemoteQuality {
  level: QualityLevel;
  warnings: QualityWarning[];
}

type Stat = Record<string, unknown> & { type?: string; id?: string };

const num = (v: unknown): number | null => (typeof v === 'number' && Number.isFinite(v) ? v : null);

/** Reads the received audio and the selected path out of an `RTCStatsReport`. */
export function readStats(report: RTCStatsReport, at: number): StatsReading {
  const stats: Stat[] = [];
  report.forEach((s: Stat) => stats.push(s));
  const byId = new Map(stats.map((s) => [s.id, s]));
  const reading: StatsReading = { at, packetsReceived: 0, packetsLost: 0, bytesReceived: 0, jitterMs: 0, rttMs: null, audioLevel: null, relayed: null };
  let remoteRtt: number | null = null;
  for (const s of stats) {
    const kind = s.kind ?? s.mediaType;
    if (s.type === 'inbound-rtp' && kind === 'audio') {
      reading.packetsReceived += num(s.packetsReceived) ?? 0;
      reading.packetsLost += Math.max(0, num(s.packetsLost) ?? 0);
      reading.bytesReceived += num(s.bytesReceived) ?? 0;
      reading.jitterMs = Math.max(reading.jitterMs, (num(s.jitter) ?? 0) * 1000);
      reading.audioLevel = num(s.audioLevel) ?? reading.audioLevel;
    } else if (s.type === 'remote-inbound-rtp' && kind === 'audio') {
      const rtt = num(s.roundTripTime);
      if (rtt !== null) remoteRtt = rtt * 1000;
    }
  }
  const pairId = stats.find((s) => s.type === 'transport' && typeof s.selectedCandidatePairId === 'string')?.selectedCandidatePairId;
  const pair =
    (typeof pairId === 'string' ? byId.get(pairId) : undefined) ??
    stats.find((s) => s.type === 'candidate-pair' && s.nominated === true && s.state === 'succeeded');
  if (pair) {
    const rtt = num(pair.currentRoundTripTime);
    if (rtt !== null) reading.rttMs = rtt * 1000;
    const ends = [byId.get(pair.localCandidateId as string), byId.get(pair.remoteCandidateId as string)];
    if (ends.every((c) => c !== undefined)) reading.relayed = ends.some((c) => c!.candidateType === 'relay');
  }
  reading.rttMs ??= remoteRtt;
  return reading;
}

/**
 * Samples from successive readings: each one after the first gives a second
 * of loss, bitrate and packet count, an estimated MOS, and the warnings it
 * raised and cleared.
 */
export class QualityTracker {
  private previous: StatsReading | null = null;
  private readonly warnings = new Warnings();
  private rttMs = 0;

  /** Folds in a reading; null for the first (nothing to compare with yet). */
  add(reading: StatsReading): { sample: QualitySample; raised: QualityWarning[]; cleared: QualityWarning[] } | null {
    const previous = this.previous;
    this.previous = reading;
    if (reading.rttMs !== null) this.rttMs = reading.rttMs;
    if (!previous) return null;
    const packets = Math.max(0, reading.packetsReceived - previous.packetsReceived);
    const lost = Math.max(0, reading.packetsLost - previous.packetsLost);
    const lossPct = packets + lost === 0 ? 0 : round((100 * lost) / (packets + lost));
    const seconds = Math.max(0.001, (reading.at - previous.at) / 1000);
    const bitrateKbps = round(Math.max(0, reading.bytesReceived - previous.bytesReceived) * 8 / 1000 / seconds);
    const rttMs = round(this.rttMs);
    const jitterMs = round(reading.jitterMs);
    const mos = packets === 0 ? 1 : estimateMos({ rttMs, jitterMs, lossPct });
    const { raised, cleared } = this.warnings.add({ rttMs, jitterMs, lossPct, mos, packets });
    const warnings = this.warnings.current;
    const sample: QualitySample = {
      mos,
      rttMs,
      jitterMs,
      lossPct,
      level: levelOf(mos, warnings),
      warnings,
      packets,
      bitrateKbps,
      audioLevel: reading.audioLevel,
      relayed: reading.relayed,
    };
    return { sample, raised, cleared };
  }
}

/**
 * When to send a sample to the server: at once when its level or warnings
 * differ from the last report sent (but never within a second of it), and
 * otherwise at least every `REPORT_AT_LEAST_EVERY_MS`.
 */
export class ReportPacer {
  private lastAt = -Infinity;
  private lastKey = '';

  due(sample: Pick<QualityReport, 'level' | 'warnings'>, now: number): boolean {
    const key = `${sample.level} ${[...sample.warnings].sort().join(',')}`;
    const since = now - this.lastAt;
    if (since < REPORT_AT_MOST_EVERY_MS) return false;
    if (key === this.lastKey && since < REPORT_AT_LEAST_EVERY_MS) return false;
    this.lastAt = now;
    this.lastKey = key;
    return true;
  }
}

function round(x: number): number {
  return Math.round(x * 100) / 100;
}
