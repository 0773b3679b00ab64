/**
 * Call quality from the numbers a peer connection reports: an estimated MOS
 * (the ITU-T G.107 E-model, simplified as Cole & Rosenbluth did for VoIP),
 * a level, and warnings raised and cleared with hysteresis so that one bad
 * sample never flaps them. Pure: the call samples `getStats()` and feeds it.
 *
 * The E-model:
 *   d      = rttMs / 2 + 2 · jitterMs + CODEC_DELAY_MS     (one-way mouth-to-ear delay, ms;
 *            the jitter buffer holds about two jitters, Opus frames and look-ahead add ~25 ms)
 *   Id     = 0.024 · d + 0.11 · (d − 177.3) · H(d − 177.3) (delay impairment; H = step)
 *   Ie_eff = Ie + (95 − Ie) · Ppl / (Ppl + Bpl)            (loss impairment, Ppl = loss in %)
 *   R      = R0 − Id − Ie_eff,  R0 = 93.2
 *   MOS    = 1 + 0.035 R + 7·10⁻⁶ R (R − 60)(100 − R)       (1 below R = 0, 4.5 above R = 100)
 * Opus has no G.113 values; we take Ie = 0 (transparent at VoIP bitrates on
 * the narrowband scale) and Bpl = 20 (its concealment is at least as robust
 * to random loss as G.711's with PLC, Bpl 25.1, and we stay on the safe side).
 * So a clean call scores 4.4, the ceiling of narrowband telephony.
 */
import type { QualityLevel, QualityWarning } from '@switchboard/protocol/wire';

export const R0 = 93.2;
export const OPUS_IE = 0;
export const OPUS_BPL = 20;
export const CODEC_DELAY_MS = 25;

/** MOS (1–4.5) from the transmission rating R (G.107 Annex B). */
export function mosFromR(r: number): number {
  if (r <= 0) return 1;
  if (r >= 100) return 4.5;
  return 1 + 0.035 * r + 7e-6 * r * (r - 60) * (100 - r);
}

/** The delay impairment Id for a one-way delay of `d` ms. */
export function delayImpairment(d: number): number {
  return 0.024 * d + (d > 177.3 ? 0.11 * (d - 177.3) : 0);
}

/** The effective equipment impairment for `lossPct` % random loss. */
export function lossImpairment(lossPct: number, ie = OPUS_IE, bpl = OPUS_BPL): number {
  return ie + ((95 - ie) * lossPct) / (lossPct + bpl);
}

/** Estimated MOS of the audio a party receives, from its network figures. */
export function estimateMos({ rttMs, jitterMs, lossPct }: { rttMs: number; jitterMs: number; lossPct: number }): number {
  const d = rttMs / 2 + 2 * jitterMs + CODEC_DELAY_MS;
  const r = R0 - delayImpairment(d) - lossImpairment(Math.min(100, Math.max(0, lossPct)));
  return Math.round(mosFromR(r) * 100) / 100;
}

/** One sample of the media a party receives. */
export interface QualitySample {
  rttMs: number;
  jitterMs: number;
  lossPct: number;
  mos: number;
  /** Audio packets received since the previous sample. */
  packets: number;
}

/** When each warning's sample is bad (Twilio's thresholds, a fair start per the contract). */
export const WARNING_THRESHOLDS: Readonly<Record<QualityWarning, (s: QualitySample) => boolean>> = {
  'high-rtt': (s) => s.rttMs > 400,
  'high-jitter': (s) => s.jitterMs > 30,
  'high-packet-loss': (s) => s.lossPct > 1,
  'low-mos': (s) => s.mos < 3.5,
  'no-audio-received': (s) => s.packets === 0,
};

/** Bad samples in a row that raise a warning, and good ones in a row that clear it. */
export const RAISE_AFTER = 3;
export const CLEAR_AFTER = 5;

/** The warnings of one call's received media, with hysteresis. */
export class Warnings {
  private readonly raised = new Set<QualityWarning>();
  private readonly streak = new Map<QualityWarning, number>();

  constructor(
    private readonly raiseAfter = RAISE_AFTER,
    private readonly clearAfter = CLEAR_AFTER,
  ) {}

  get current(): QualityWarning[] {
    return [...this.raised];
  }

  /** Folds in one sample; returns the warnings it raised and cleared. */
  add(sample: QualitySample): { raised: QualityWarning[]; cleared: QualityWarning[] } {
    const raised: QualityWarning[] = [];
    const cleared: QualityWarning[] = [];
    for (const [name, bad] of Object.entries(WARNING_THRESHOLDS) as [QualityWarning, (s: QualitySample) => boolean][]) {
      const isRaised = this.raised.has(name);
      // A streak counts samples that argue for changing the warning's state; one that agrees with it resets it.
      const against = isRaised ? !bad(sample) : bad(sample);
      const streak = against ? (this.streak.get(name) ?? 0) + 1 : 0;
      this.streak.set(name, streak);
      if (!isRaised && streak >= this.raiseAfter) {
        this.raised.add(name);
        this.streak.set(name, 0);
        raised.push(name);
      } else if (isRaised && streak >= this.clearAfter) {
        this.raised.delete(name);
        this.streak.set(name, 0);
        cleared.push(name);
      }
    }
    return { raised, cleared };
  }
}

/** good: MOS ≥ 4 and nothing raised; poor: MOS < 3.1 or no audio; fair otherwise. */
export function levelOf(mos: number, warnings: readonly QualityWarning[]): QualityLevel {
  if (mos < 3.1 || warnings.includes('no-audio-received')) return 'poor';
  if (mos < 4 || warnings.length > 0) return 'fair';
  return 'good';
}
