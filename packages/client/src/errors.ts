/**
 * The SDK's one error type. Every promise the SDK rejects and every `error`
 * event it emits carries a `SwitchboardError`, whose `code` is either a wire
 * code (an ack's `error.code`, an `auth:error` code, a `reconnect:failed`
 * reason) or one of the SDK's own {@link ClientErrorCode}s.
 */
import type { AuthErrorCode, ErrorBody, ErrorCode, ReconnectFailReason } from '@switchboard/protocol/wire';

/** Codes the SDK raises by itself, with no server answer behind them. */
export const ClientErrorCode = {
  /** The phone is not connected (never was, gave up, or is between sockets): nothing was sent. */
  NotConnected: 'not_connected',
  /** The server did not answer a request within `requestTimeoutMs`. */
  Timeout: 'timeout',
  /** The socket could not be opened (server down, wrong URL, refused origin). */
  ConnectionFailed: 'connection_failed',
  /** The socket closed while a request was waiting for its answer, or `disconnect()` was called. */
  Disconnected: 'disconnected',
  /** The `token` function threw or rejected. */
  TokenUnavailable: 'token_unavailable',
  /** `media()` (by default `getUserMedia`) failed: no microphone, permission denied, no media API. */
  MediaFailed: 'media_failed',
  /** This runtime has no `RTCPeerConnection` and none was passed as `rtc`. */
  Unsupported: 'unsupported',
  /** Creating or applying an SDP offer or answer failed in the local WebRTC stack. */
  NegotiationFailed: 'negotiation_failed',
} as const;
export type ClientErrorCode = (typeof ClientErrorCode)[keyof typeof ClientErrorCode];

/** Every code a {@link SwitchboardError} may carry. */
export type SwitchboardErrorCode = ErrorCode | AuthErrorCode | ReconnectFailReason | ClientErrorCode;

/**
 * An error of the Switchboard SDK: `code` is stable and meant for programs,
 * `message` for people.
 *
 * @example
 * ```ts
 * try {
 *   await phone.call('bob');
 * } catch (err) {
 *   if (err instanceof SwitchboardError && err.code === 'unavailable') showOffline('bob');
 *   else throw err;
 * }
 * ```
 */
export class SwitchboardError extends Error {
  override readonly name = 'SwitchboardError';

  /**
   * The server had already said why by an event of its own (`auth:error`,
   * `reconnect:failed`) before this answer: the event is the verdict.
   */
  readonly told: boolean;

  constructor(
    readonly code: SwitchboardErrorCode,
    message: string,
    options?: { cause?: unknown; told?: boolean },
  ) {
    super(message, options);
    this.told = options?.told ?? false;
  }

  /** The error of a failed ack (`{ ok: false, error }`) or of a `call:error` event. */
  static fromBody(body: ErrorBody): SwitchboardError {
    return new SwitchboardError(body.code, body.message, { told: body.told === true });
  }

  /** `auth:error`: the token was refused; the server closed the socket. */
  static auth(code: AuthErrorCode, message: string): SwitchboardError {
    return new SwitchboardError(code, message);
  }

  /** `reconnect:failed`: the session could not be resumed. */
  static resumeFailed(reason: ReconnectFailReason, message?: string): SwitchboardError {
    return new SwitchboardError(reason, message ?? `the session could not be resumed: ${reason}`);
  }

  static notConnected(what = 'this'): SwitchboardError {
    return new SwitchboardError(ClientErrorCode.NotConnected, `cannot do ${what}: the phone is not connected`);
  }

  static timeout(what: string, ms: number): SwitchboardError {
    return new SwitchboardError(ClientErrorCode.Timeout, `no answer to ${what} within ${ms} ms`);
  }

  static connectionFailed(cause?: unknown): SwitchboardError {
    const detail = cause instanceof Error ? `: ${cause.message}` : '';
    return new SwitchboardError(ClientErrorCode.ConnectionFailed, `could not reach the server${detail}`, { cause });
  }

  static disconnected(what = 'the request'): SwitchboardError {
    return new SwitchboardError(ClientErrorCode.Disconnected, `the socket closed before ${what} was answered`);
  }

  static token(cause: unknown): SwitchboardError {
    if (cause instanceof SwitchboardError) return cause;
    const detail = cause instanceof Error ? `: ${cause.message}` : '';
    return new SwitchboardError(ClientErrorCode.TokenUnavailable, `the token function failed${detail}`, { cause });
  }

  static media(cause?: unknown): SwitchboardError {
    const detail = cause instanceof Error ? `: ${cause.message}` : '';
    return new SwitchboardError(ClientErrorCode.MediaFailed, `could not get the local audio${detail}`, { cause });
  }

  static unsupported(what: string): SwitchboardError {
    return new SwitchboardError(ClientErrorCode.Unsupported, `${what} is not available here; pass it in the phone's options`);
  }

  static negotiation(cause: unknown): SwitchboardError {
    const detail = cause instanceof Error ? `: ${cause.message}` : '';
    return new SwitchboardError(ClientErrorCode.NegotiationFailed, `WebRTC negotiation failed${detail}`, { cause });
  }

  /** A call method used in a state where it does not apply (checked before anything is sent). */
  static invalidState(message: string): SwitchboardError {
    return new SwitchboardError('invalid_state', message);
  }
}
