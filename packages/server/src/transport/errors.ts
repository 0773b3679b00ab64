/**
 * The one error type of the server side: a protocol error code and a plain
 * message, and the refusals the transport makes, each message written beside
 * its code (`refusals`). The machine's own refusals carry their code and
 * message from `calls/machine.ts`.
 */
import type { CallId, ErrorBody, ErrorCode } from '@switchboard/protocol';

export interface ErrorOptions {
  /** The call the refused event was about, named in `call:error`. */
  callId?: CallId | undefined;
  /** The client was told why by an event of its own (`auth:error`, `reconnect:failed`): the ack says so, and no `call:error` follows. */
  told?: boolean;
}

export class SwitchboardError<C extends ErrorCode = ErrorCode> extends Error {
  readonly callId: CallId | undefined;
  readonly told: boolean;

  constructor(
    readonly code: C,
    message: string,
    options: ErrorOptions = {},
  ) {
    super(message);
    this.name = 'SwitchboardError';
    this.callId = options.callId;
    this.told = options.told ?? false;
  }

  /** The `error` of a failed ack, or of `call:error`. */
  toBody(): ErrorBody {
    return this.told ? { code: this.code, message: this.message, told: true } : { code: this.code, message: this.message };
  }
}

const refuse = <C extends ErrorCode>(code: C, message: string, options?: ErrorOptions) => new SwitchboardError(code, message, options);

/** Every refusal the transport makes (the call machine's are its own). */
export const refusals = {
  /** Anything before sign-in but signing in. */
  authenticateFirst: () => refuse('unauthenticated', 'authenticate first'),
  alreadySignedIn: () => refuse('invalid_state', 'this socket is already authenticated'),
  signInRunning: () => refuse('invalid_state', 'authentication is already in progress'),
  /** The socket closed (or was refused) while its sign-in ran. */
  socketClosed: () => refuse('unauthenticated', 'the socket closed', { told: true }),
  /** The token was refused: `auth:error` or `reconnect:failed` said why. */
  tokenRefused: (message: string) => refuse('unauthenticated', message, { told: true }),
  /** The store failed during a sign-in: `auth:error { internal }` said so. */
  signInFailed: () => refuse('internal', 'the sign-in could not be completed; try again later', { told: true }),
  /** A sign-in over the user's or the address's rate; `told` when `auth:error` said so (a sign-in, not a resume). */
  signInRate: (told: boolean) => refuse('rate_limited', 'too many sign-ins for this user or address; try again in a few seconds', { told }),
  sessionCap: (max: number) => refuse('rate_limited', `this user already has ${max} sessions, the most allowed`, { told: true }),
  tooManyEvents: () => refuse('rate_limited', 'too many events; slow down'),
  pairRate: (limit: number) => refuse('rate_limited', `at most ${limit} calls to the same user within a minute`),
  unknownEvent: (event: string) => refuse('invalid_payload', `unknown event "${event}"`),
  badPayload: (where: string, message: string) => refuse('invalid_payload', `${where}: ${message}`),
  noSuchCall: (callId: CallId) => refuse('call_not_found', 'no such call', { callId }),
  callEnded: (callId: CallId) => refuse('invalid_state', 'the call is ended', { callId }),
  callChangedTooOften: (callId: CallId) => refuse('internal', 'the call changed too often; try again', { callId }),
};
