/** The one error type of the server side: a protocol error code and a plain message. */
import type { CallId, ErrorCode } from '@switchboard/protocol';

export class SwitchboardError extends Error {
  constructor(
    readonly code: ErrorCode,
    message: string,
    readonly callId?: CallId,
    /** The client was already told by an event of its own (e.g. `reconnect:failed`): answer an ack, send no `call:error`. */
    readonly notified = false,
  ) {
    super(message);
    this.name = 'SwitchboardError';
  }
}
