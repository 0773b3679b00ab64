/** Plain words for what the SDK and the server report. */
export function endedNotice(reason: string, peer: string): string {
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
    default:
      return `The call could not be placed${code ? ` (${code})` : ''}.`;
  }
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
