/**
 * `call:quality` (v1.1): a party's view of the media it receives. Only a
 * bound party of an active call may send it (the relay's check, on the same
 * one-lookup hot path). At most one a second: a report is due a second after
 * the one before (or later), and one that comes more than `JITTER_MS` early
 * is dropped, so a client that paces itself at a second is never dropped for
 * the jitter of the network or of a busy node, while one that sends faster
 * loses what it sends beyond once a second. The peer gets `{ callId, userId,
 * level, warnings }` when the level or the warnings change (the rest of a
 * report is only for the summary): most reports of a steady call cost a
 * receive and a fold, not a send. Each report is folded into this socket's
 * running summary, which is saved beside the call's record (one HSET on its
 * hash in Redis mode: no read, no version, no lock) when it first reports and
 * then every `SAVE_EVERY_MS`, not per report. The node that ends the call
 * reads the saved summaries once and adds what its own sockets gathered since
 * their last save (transport/calls.ts), so a call whose parties are on that
 * node loses nothing; a party elsewhere loses at most its last
 * `SAVE_EVERY_MS` of reports.
 */
import { randomUUID } from 'node:crypto';
import { type CallId, type CallQualityPayload, type QualityWarning, addToSummary } from '@switchboard/protocol';
import { segmentName } from '../calls/quality.js';
import type { Conn, Deps, QualityState } from './context.js';
import type { Relay } from './relay.js';

/** "At most once a second": each report is due this long after the one before (GCRA, see above). */
export const REPORT_INTERVAL_MS = 1000;
/** How early a report may come and still be taken. */
export const JITTER_MS = 500;
/** How often a socket's running summary is saved into the call's record. */
export const SAVE_EVERY_MS = 5_000;

export class QualityReports {
  constructor(
    private readonly deps: Deps,
    private readonly relay: Relay,
  ) {}

  /** Takes one report; `dropped` when it came too soon after the last one. */
  report(conn: Conn, report: CallQualityPayload): { callId: string; dropped?: true } | Promise<{ callId: string }> {
    const now = this.deps.now();
    const last = conn.quality;
    if (last !== null && last.callId === report.callId && now < last.dueAt - JITTER_MS) {
      return { callId: report.callId, dropped: true };
    }
    const done = { callId: report.callId };
    const sent = this.relay.toPeer(conn, report.callId, (peer) => {
      const state = this.take(conn, report, now);
      const { callId, level, warnings } = report;
      const seen = `${level} ${warnings.join(',')}`;
      if (state.forwarded === seen) return;
      state.forwarded = seen;
      this.deps.delivery.toSession(peer, 'call:quality', { callId: callId as CallId, userId: conn.session!.userId, level, warnings });
    });
    return sent instanceof Promise ? sent.then(() => done) : done;
  }

  /** Folds a report into the socket's summary, counts new warnings, and saves the summary when it is due. */
  private take(conn: Conn, report: CallQualityPayload, now: number): QualityState {
    const prior = conn.quality?.callId === report.callId ? conn.quality : null;
    const summary = addToSummary(prior?.summary, report);
    const state: QualityState = prior ?? { callId: report.callId, segment: segmentName(conn.session!.id, randomUUID()), summary, dueAt: now, savedAt: null, warnings: [], forwarded: null };
    state.summary = summary;
    state.dueAt = Math.max(state.dueAt, now) + REPORT_INTERVAL_MS;
    for (const warning of report.warnings) if (!state.warnings.includes(warning)) this.deps.metrics.qualityWarning(warning);
    state.warnings = report.warnings as QualityWarning[];
    conn.quality = state;
    if (state.savedAt === null || now - state.savedAt >= SAVE_EVERY_MS) this.save(conn, state, now);
    return state;
  }

  /** Saves the running summary beside the call's record, in the background: no report waits on the store. */
  private save(conn: Conn, state: QualityState, now: number): void {
    state.savedAt = now;
    this.deps.store.saveQuality(conn.session!.tenant, state.callId as CallId, state.segment, state.summary).catch((err: unknown) => {
      // Redis away: the next save (or the end, on this node) has it all, since a summary is a running one.
      this.deps.logger.warn({ err, callId: state.callId, session: conn.session?.id }, 'could not save a quality summary');
    });
  }
}
