/**
 * Both parties' quality summaries over a call: what their sockets saved
 * beside the call's record (one running summary per socket, `segment` named
 * `<sessionId> <id>`), with what this node holds that is fresher. Pure.
 */
import { type CallQuality, type QualitySummary, mergeSummaries } from '@switchboard/protocol';
import { roleOf } from './parties.js';
import type { CallRecord } from './types.js';
import type { SessionId } from '@switchboard/protocol';

/** A socket's segment: `<sessionId> <random id>`, so the summary says whose it is. */
export function segmentName(sessionId: SessionId, id: string): string {
  return `${sessionId} ${id}`;
}

/**
 * The call's quality: each saved segment is a running summary of one socket,
 * the newest save of it replacing the older ones, so per segment the one with
 * the most reports counts (a save still in flight, or this node's fresher
 * copy, may hold more); the segments of a party are merged. A segment of a
 * session that is neither party's is ignored.
 */
export function callQualityOf(call: CallRecord, saved: ReadonlyMap<string, QualitySummary>, local: ReadonlyMap<string, QualitySummary>): CallQuality | undefined {
  const latest = new Map(saved);
  for (const [segment, summary] of local) {
    const known = latest.get(segment);
    if (!known || summary.samples >= known.samples) latest.set(segment, summary);
  }
  const quality: CallQuality = {};
  for (const [segment, summary] of latest) {
    const role = roleOf(call, segment.slice(0, segment.indexOf(' ')) as SessionId);
    if (role) quality[role] = mergeSummaries(quality[role], summary);
  }
  return quality.caller || quality.callee ? quality : undefined;
}
