/** Plain words for what the SDK and the server report. */
import type { PreflightFailure, PreflightReport, QualityLevel, QualityWarning } from '@switchboard/client';

/**
 * Why a call ended. `connected`: its audio had connected at some point (so
 * an `ice_failed` is a call that dropped, not one that never started).
 */
export function endedNotice(reason: string, peer: string, connected = false): string {
  switch (reason) {
    case 'hangup':
      return `Call with ${peer} ended.`;
    case 'declined':
      return `${peer} declined the call.`;
    case 'busy':
      return `${peer} is busy on another call.`;
    case 'timeout':
      return `No answer from ${peer}.`;
    case 'unavailable':
      return `${peer} is not available right now.`;
    case 'cancelled':
      return `${peer} hung up before you answered.`;
    case 'caller_disconnected':
      return `${peer} lost their connection before you answered.`;
    case 'answered_elsewhere':
      return 'You answered on another device.';
    case 'declined_elsewhere':
      return 'You declined on another device.';
    case 'connection_lost':
      return `The connection to ${peer} was lost.`;
    case 'ice_failed':
      return connected
        ? `The call with ${peer} dropped: the audio could not get through again. Your network may be blocking it.`
        : 'The call could not connect: your network may be blocking it.';
    case 'media_failed':
      return `The call with ${peer} ended: a microphone or camera could not be used.`;
    case 'failed':
      return `The call with ${peer} failed.`;
    default:
      return `Call with ${peer} ended (${reason}).`;
  }
}

export function errorNotice(code: string | undefined, peer: string): string {
  switch (code) {
    case 'unavailable':
      return `${peer} is not available right now.`;
    case 'self_call':
      return 'You cannot call yourself.';
    case 'already_in_call':
      return 'You are already in a call.';
    case 'rate_limited':
      return 'Too many attempts; wait a moment and try again.';
    case 'media_failed':
      return 'The call could not start: your microphone or camera could not be used. Check that the browser may use them.';
    default:
      return `The call could not be placed${code ? ` (${code})` : ''}.`;
  }
}

/** The camera could not be turned on or switched. */
export function cameraNotice(code: string | undefined, message: string | undefined): string {
  if (code === 'media_failed') return 'Your camera could not be used. Check that it is connected and that the browser may use it.';
  return `The camera could not be changed${message ? `: ${message}` : ''}.`;
}

export function stateWords(state: string, direction: 'incoming' | 'outgoing'): string {
  switch (state) {
    case 'ringing':
      return direction === 'outgoing' ? 'Ringing…' : 'Answering…';
    case 'connecting':
      return 'Connecting…';
    case 'connected':
      return 'Connected';
    case 'reconnecting':
      return 'Reconnecting…';
    case 'ended':
      return 'Call ended';
    default:
      return state;
  }
}

export function outcomeWords(outcome: string, direction: string): string {
  switch (outcome) {
    case 'completed':
      return direction === 'outgoing' ? 'Outgoing' : 'Incoming';
    case 'missed':
      return direction === 'outgoing' ? 'No answer' : 'Missed';
    case 'declined':
      return 'Declined';
    case 'busy':
      return 'Busy';
    case 'cancelled':
      return direction === 'outgoing' ? 'Cancelled' : 'Missed';
    case 'unavailable':
      return 'Unavailable';
    default:
      return 'Failed';
  }
}

export function clock(ms: number): string {
  const s = Math.max(0, Math.floor(ms / 1000));
  const h = Math.floor(s / 3600);
  const mm = String(Math.floor((s % 3600) / 60)).padStart(2, '0');
  const ss = String(s % 60).padStart(2, '0');
  return h > 0 ? `${h}:${mm}:${ss}` : `${mm}:${ss}`;
}

export function initials(name: string): string {
  return name
    .split(/[\s._-]+/)
    .filter(Boolean)
    .slice(0, 2)
    .map((p) => p[0]!.toUpperCase())
    .join('');
}

// ---- call quality -----------------------------------------------------------

/** The warnings in the order they matter to someone talking: the first raised one is the one shown. */
const WARNING_ORDER: readonly QualityWarning[] = ['no-audio-received', 'high-packet-loss', 'low-mos', 'high-jitter', 'high-rtt'];

/** The one warning worth showing of those raised, or null when all is well. */
export function worstWarning(warnings: readonly QualityWarning[]): QualityWarning | null {
  return WARNING_ORDER.find((w) => warnings.includes(w)) ?? null;
}

/**
 * A warning about the audio we receive from `peer`. (Loss and jitter may
 * come from either side's network: the words do not blame one.)
 */
export function localWarning(warning: QualityWarning, peer: string): string {
  switch (warning) {
    case 'no-audio-received':
      return `No sound is reaching you from ${peer}.`;
    case 'high-packet-loss':
      return `Audio from ${peer} is breaking up: some of it is lost on the way.`;
    case 'low-mos':
      return `The connection is poor: ${peer} may be hard to hear.`;
    case 'high-jitter':
      return `Audio from ${peer} is arriving unevenly and may sound choppy.`;
    case 'high-rtt':
      return 'There is a long delay on the line: you may talk over each other.';
  }
}

/** A warning the peer reports about the audio it receives from us. */
export function remoteWarning(warning: QualityWarning, peer: string): string {
  switch (warning) {
    case 'no-audio-received':
      return `${peer} is not receiving your audio.`;
    case 'high-packet-loss':
      return `You are breaking up for ${peer}: some of your audio is lost on the way.`;
    case 'low-mos':
      return `${peer}'s side of the connection is poor: you may be hard to hear.`;
    case 'high-jitter':
      return `Your audio is reaching ${peer} unevenly and may sound choppy.`;
    case 'high-rtt':
      return 'There is a long delay on the line: you may talk over each other.';
  }
}

export function levelWords(level: QualityLevel): string {
  switch (level) {
    case 'good':
      return 'Good';
    case 'fair':
      return 'Fair';
    case 'poor':
      return 'Poor';
  }
}

// ---- preflight --------------------------------------------------------------

/** Why a connection check failed, in plain words. */
export function preflightFailure(reason: PreflightFailure | undefined): string {
  switch (reason) {
    case 'not_connected':
      return 'You are not connected to the server. Check your internet connection and try again.';
    case 'signaling_timeout':
      return 'The server did not answer in time. Your connection may be slow or unstable.';
    case 'no_ice_servers':
      return 'This server has no STUN or TURN server set up, so calls between different networks may not connect. Ask your administrator.';
    case 'no_turn_servers':
      return 'This server has no TURN relay set up, so calls through strict firewalls may not connect. Ask your administrator.';
    case 'stun_unreachable':
      return 'The STUN server could not be reached: your network may be blocking it.';
    case 'turn_unreachable':
      return 'The TURN relay could not be reached: your network may be blocking it.';
    case 'turn_auth_failed':
      return 'The TURN relay refused our sign-in. Ask your administrator to check its secret.';
    case 'no_relay_candidates':
      return 'The TURN relay answered but offered no way through.';
    case 'media_timeout':
      return 'Test audio through the TURN relay did not connect in time: your network may be blocking it.';
    case 'media_failed':
      return 'Test audio could not get through the TURN relay: your network may be blocking it.';
    case 'timeout':
      return 'The check ran out of time. Your connection may be slow; try again.';
    case undefined:
      return 'Calls may not connect from here.';
  }
}

/** The headline of a finished check. */
export function preflightHeadline(report: Pick<PreflightReport, 'ok' | 'warnings'>): string {
  if (!report.ok) return 'Calls may not connect from here.';
  return report.warnings.length > 0 ? 'Calls should connect from here, but may not sound good.' : 'Calls should connect and sound good from here.';
}

/** A figure of a check: which (`key`, for the page), what it is, and what was measured. */
export interface Figure {
  key: string;
  label: string;
  value: string;
}

/** What a check measured, one figure a line, in words and numbers. */
export function preflightFigures(report: PreflightReport): Figure[] {
  const ms = (x: number | null) => (x === null ? '—' : `${Math.round(x)} ms`);
  const notSetUp = (reason: PreflightFailure | undefined) => reason === 'no_ice_servers' || reason === 'no_turn_servers';
  const figures: Figure[] = [
    { key: 'signaling', label: 'Server', value: report.signaling.ok ? `answers in ${ms(report.signaling.rttMs)}` : 'no answer' },
    {
      key: 'turn',
      label: 'TURN relay',
      value: report.turn.ok
        ? `reached over ${(report.turn.transport ?? 'udp').toUpperCase()}${report.turn.rttMs === null ? '' : ` in ${ms(report.turn.rttMs)}`}`
        : notSetUp(report.turn.reason)
          ? 'none set up'
          : 'not reached',
    },
    {
      key: 'stun',
      label: 'STUN',
      value: report.stun.ok ? `reached in ${ms(report.stun.rttMs)}` : notSetUp(report.stun.reason) ? 'none set up' : 'not reached',
    },
  ];
  const m = report.media;
  if (m && m.ok) {
    figures.push(
      { key: 'mos', label: 'Test audio', value: `${levelWords(mosLevel(m.mos))} (MOS ${m.mos.toFixed(1)} of 5)` },
      { key: 'rtt', label: 'Round trip', value: ms(m.rttMs) },
      { key: 'jitter', label: 'Jitter', value: ms(m.jitterMs) },
      { key: 'loss', label: 'Audio lost', value: `${m.lossPct > 0 && m.lossPct < 1 ? m.lossPct.toFixed(1) : Math.round(m.lossPct)}%` },
    );
  } else if (m || report.turn.ok) {
    figures.push({ key: 'mos', label: 'Test audio', value: 'did not get through' });
  }
  for (const w of report.warnings) figures.push({ key: 'warning', label: 'Warning', value: preflightWarning(w) });
  return figures;
}

/** A warning the check's test audio would raise in a call. */
export function preflightWarning(warning: QualityWarning): string {
  switch (warning) {
    case 'no-audio-received':
      return 'no audio got through';
    case 'high-packet-loss':
      return 'audio is being lost on the way';
    case 'low-mos':
      return 'calls may be hard to hear';
    case 'high-jitter':
      return 'audio arrives unevenly and may sound choppy';
    case 'high-rtt':
      return 'a long delay: you may talk over each other';
  }
}

/** A MOS (1–5) as the call's quality levels name it: good from 4, fair from 3.1, else poor. */
export function mosLevel(mos: number): QualityLevel {
  if (mos >= 4) return 'good';
  if (mos >= 3.1) return 'fair';
  return 'poor';
}
