/**
 * `call:quality` (v1.1): a party's view of the media it receives. Only a
 * bound party of an active call may send it (the relay's check, on the same
 * one-lookup hot path); a report less than a second after the last one is
 * dropped. Each report goes to the peer as `{ callId, userId, level,
 * warnings }` and is folded into this socket's running summary, which is
 * saved into the call's record when it first reports and then every
 * `SAVE_EVERY_MS`, not per report. The node that ends the call adds what its
 * own sockets gathered since their last save (transport/calls.ts), so a call
 * whose parties are on that node loses nothing; a party elsewhere loses at
 * most its last `SAVE_EVERY_MS` of reports.
 */
import { randomUUID } from 'node:crypto';
import { type CallId, type CallQualityPayload, type QualityWarning, addToSummary } from '@switchboard/protocol';
import type { CallRunner } from './calls.js';
import type { Conn, Deps, QualityState } from './context.js';
import { actorOf } from './context.js';
import { SwitchboardError } from './errors.js';
import type { Relay } from './relay.js';

/** Reports closer together than this are dropped ("at most once a second", with room for a client's timer jitter). */
export const MIN_REPORT_INTERVAL_MS = 900;
/** How often a socket's running summary is saved into the call's record. */
export const SAVE_EVERY_MS = 5_000;

export class QualityReports {
  constructor(
    private readonly deps: Deps,
    private readonly relay: Relay,
    private readonly calls: CallRunner,
  ) {}

  /** Takes one report; `dropped` when it came too soon after the last one. */
  report(conn: Conn, report: CallQualityPayload): { callId: string; dropped?: true } | Promise<{ callId: string }> {
    const now = this.deps.now();
    const last = conn.quality;
    if (last !== null && last.callId === report.callId && now - last.lastAt < MIN_REPORT_INTERVAL_MS) {
      return { callId: report.callId, dropped: true };
    }
    const done = { callId: report.callId };
    const sent = this.relay.toPeer(conn, report.callId, (peer) => {
      this.take(conn, report, now);
      const { callId, level, warnings } = report;
      this.deps.delivery.toSession(peer, 'call:quality', { callId: callId as CallId, userId: conn.session!.userId, level, warnings });
    });
    return sent instanceof Promise ? sent.then(() => done) : done;
  }

  /** Folds a report into the socket's summary, counts new warnings, and saves the summary when it is due. */
  private take(conn: Conn, report: CallQualityPayload, now: number): void {
    const prior = conn.quality?.callId === report.callId ? conn.quality : null;
    const summary = addToSummary(prior?.summary, report);
    const state: QualityState = prior ?? { callId: report.callId, segment: randomUUID(), summary, lastAt: now, savedAt: null, warnings: [] };
    state.summary = summary;
    state.lastAt = now;
    for (const warning of report.warnings) if (!state.warnings.includes(warning)) this.deps.metrics.qualityWarning(warning);
    state.warnings = report.warnings as QualityWarning[];
    conn.quality = state;
    if (state.savedAt === null || now - state.savedAt >= SAVE_EVERY_MS) this.save(conn, state, now);
  }

  /** Saves the running summary into the call's record, in the background: no report waits on the store. */
  private save(conn: Conn, state: QualityState, now: number): void {
    state.savedAt = now;
    const session = conn.session!;
    const input = { type: 'quality', callId: state.callId as CallId, by: actorOf(session), segment: state.segment, summary: state.summary } as const;
    this.calls.run(input).catch((err: unknown) => {
      // The call ended meanwhile: the node that ended it took what this socket had gathered, or it is lost with the socket.
      if (err instanceof SwitchboardError) return;
      this.deps.logger.warn({ err, callId: state.callId, session: session.id }, 'could not save a quality summary');
    });
  }
}
