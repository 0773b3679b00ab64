/**
 * The one way anything observes calls: logs (call-log.ts), metrics
 * (metrics.ts), webhooks (webhooks.ts) and a host's own audit all implement
 * `CallHooks`, and the call runner tells every one of them, after each change
 * is committed, through `CallObservers`.
 */
import type { CallId, UserId, UserRef } from '@switchboard/protocol';
import type { HistoryEntry } from '../store/types.js';
import type { CallInput, CallRecord } from './types.js';

/** Who sent the input that changed a call, as its log line names them (a timer has nobody). */
export interface InputSource {
  userId?: string;
  sessionId?: string;
}

/**
 * Observers of what happens to calls, called after each change is committed.
 * They must not throw or block: signalling never waits on them.
 */
export interface CallHooks {
  /** Any committed change of a call, with the input that made it. */
  changed?(call: CallRecord, input: CallInput, source: InputSource | undefined): void;
  /** A call started ringing. */
  started?(call: CallRecord): void;
  /** A call was answered (`answeredAt` is set). */
  answered?(call: CallRecord): void;
  /** A call ended (any outcome, busy included); `history` is the caller's and the callee's record. */
  ended?(call: CallRecord, history: { caller: HistoryEntry; callee: HistoryEntry }): void;
  /** A visible user was called while they had no live session: a host app may push a notification. */
  unreachable?(info: { callId: CallId; tenant: string; caller: UserRef; callee: UserId }): void;
}

type Notification = { [K in keyof CallHooks]-?: [K, ...Parameters<NonNullable<CallHooks[K]>>] }[keyof CallHooks];

/** Every observer, told in turn; one that throws is reported to `onError` and the others are still told. */
export class CallObservers {
  constructor(
    private readonly hooks: readonly CallHooks[],
    private readonly onError: (err: unknown, hook: keyof CallHooks) => void,
  ) {}

  tell(...[hook, ...args]: Notification): void {
    for (const observer of this.hooks) {
      const handler = observer[hook] as ((...a: typeof args) => void) | undefined;
      if (!handler) continue;
      try {
        handler.apply(observer, args);
      } catch (err) {
        this.onError(err, hook);
      }
    }
  }
}
