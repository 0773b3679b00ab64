/**
 * A party's quality summary over a call, from the segments its sockets saved
 * (see `PartyQuality`) and what this node gathered since the last save. Pure.
 */
import { type CallQuality, type QualitySummary, mergeSummaries } from '@switchboard/protocol';
import type { CallRecord, PartyQuality, Role } from './types.js';

/**
 * `saved` with a segment's running summary saved into it. A save of the same
 * segment keeps whichever summary holds more reports (saves may land out of
 * order); a new segment closes the one before. Returns `saved` itself when
 * nothing changes.
 */
export function saveSegment(saved: PartyQuality | undefined, segment: string, summary: QualitySummary): PartyQuality | undefined {
  if (saved === undefined) return { segment, summary };
  if (saved.segment === segment) {
    if (summary.samples <= saved.summary.samples) return saved;
    return saved.earlier ? { earlier: saved.earlier, segment, summary } : { segment, summary };
  }
  const earlier = mergeSummaries(saved.earlier, saved.summary);
  return earlier ? { earlier, segment, summary } : { segment, summary };
}

/** A running summary a node holds for one party's socket, not yet saved (or saved less fresh). */
export interface LocalSegment {
  segment: string;
  summary: QualitySummary;
}

/** One party's summary over the whole call: what the record saved, with what this node holds that is fresher. */
export function partySummary(saved: PartyQuality | undefined, local: LocalSegment | undefined): QualitySummary | undefined {
  const latest = local ? saveSegment(saved, local.segment, local.summary) : saved;
  return latest ? mergeSummaries(latest.earlier, latest.summary) : undefined;
}

/** Both parties' summaries over the call, or undefined when neither reported. */
export function callQualityOf(call: CallRecord, local: Partial<Record<Role, LocalSegment>>): CallQuality | undefined {
  const caller = partySummary(call.quality?.caller, local.caller);
  const callee = partySummary(call.quality?.callee, local.callee);
  if (!caller && !callee) return undefined;
  return { ...(caller ? { caller } : {}), ...(callee ? { callee } : {}) };
}
