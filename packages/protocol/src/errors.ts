/** Error codes carried by `{ ok: false, error: { code } }` acks and `call:error`. Stable, lower snake case. */
export const ErrorCode = {
  /** The payload failed its schema: wrong type, missing field, or a field over its size limit. */
  InvalidPayload: 'invalid_payload',
  /** The socket has not authenticated yet, or its session is gone. */
  Unauthenticated: 'unauthenticated',
  /** The session is authenticated but not a party allowed to do this to the call. */
  Forbidden: 'forbidden',
  /** The callee has no live session, or the caller may not see them. */
  Unavailable: 'unavailable',
  /** The caller tried to call themselves. */
  SelfCall: 'self_call',
  /** The caller is already in a call (ringing or active). */
  AlreadyInCall: 'already_in_call',
  /** No such call: never existed, or ended and forgotten. */
  CallNotFound: 'call_not_found',
  /** The call exists but is not in a state where this event applies (e.g. accept after cancel). */
  InvalidState: 'invalid_state',
  /** The session or user sent more than its limit allows; slow down. */
  RateLimited: 'rate_limited',
  /** The server could not complete the request (e.g. its store did not answer); safe to retry. */
  Internal: 'internal',
} as const;
export type ErrorCode = (typeof ErrorCode)[keyof typeof ErrorCode];
export const ERROR_CODES: readonly ErrorCode[] = Object.values(ErrorCode);

/** Codes of `auth:error`; the server disconnects the socket after sending it. */
export const AuthErrorCode = {
  /** The token is malformed, badly signed, of a refused algorithm, or has the wrong issuer/audience. */
  InvalidToken: 'invalid_token',
  /** The token's `exp` is in the past. */
  TokenExpired: 'token_expired',
  /** No valid authentication arrived within `AUTH_TIMEOUT_MS`. */
  AuthTimeout: 'auth_timeout',
  /** The user already holds `MAX_SESSIONS_PER_USER` sessions, or the user or address signed in too often. */
  RateLimited: 'rate_limited',
  /** The server could not complete the sign-in (its store did not answer); retry later. */
  Internal: 'internal',
} as const;
export type AuthErrorCode = (typeof AuthErrorCode)[keyof typeof AuthErrorCode];

/** Reasons of `reconnect:failed`; the socket stays open and may `auth:handshake` afresh. */
export const ReconnectFailReason = {
  /** The session to be resumed is unknown, or its reconnect grace has run out. */
  SessionExpired: 'session_expired',
  /** The token is not valid, or belongs to another user than the session's. */
  InvalidToken: 'invalid_token',
  /** More than `MAX_RECONNECT_ATTEMPTS` resumptions within one grace window; the session is closed. */
  MaxAttempts: 'max_attempts',
} as const;
export type ReconnectFailReason = (typeof ReconnectFailReason)[keyof typeof ReconnectFailReason];

/** Reasons of `call:rejected`, sent to the caller. */
export type RejectedReason = 'declined' | 'timeout' | 'unavailable';
/** Reasons of `call:cancelled`, sent to the callee's devices. */
export type CancelledReason =
  | 'cancelled'
  | 'timeout'
  | 'answered_elsewhere'
  | 'declined_elsewhere'
  | 'caller_disconnected';
/**
 * Reasons of `call:ended`, sent to the other party of an active call: a
 * hangup, a party lost for good, or (v1.1) the reason the ending party gave:
 * its media never connected or could not be restored (`ice_failed`), or it had
 * no usable microphone or camera (`media_failed`).
 */
export type EndedReason = 'hangup' | 'connection_lost' | 'ice_failed' | 'media_failed';

/** Outcome of a finished call in its history record. */
export type CallOutcome = 'completed' | 'declined' | 'busy' | 'cancelled' | 'missed' | 'unavailable' | 'failed';
