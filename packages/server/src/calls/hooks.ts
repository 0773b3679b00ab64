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
  unreachable?(info: UnreachableCall): void;
  /**
   * `RING_OFFLINE=webhook`: the same news, for a call that now rings with no
   * device, delivered at once: true when the host app took it (and will
   * push), false when it refused or did not answer in time. Bounded: it
   * resolves within a few seconds, whatever the receiver does.
   */
  push?(info: UnreachableCall): Promise<boolean>;
}

/** A call to a visible user with no live session. */
export interface UnreachableCall {
  callId: CallId;
  tenant: string;
  caller: UserRef;
  callee: UserId;
}

type Notification = { [K in Exclude<keyof CallHooks, 'push'>]-?: [K, ...Parameters<NonNullable<CallHooks[K]>>] }[Exclude<keyof CallHooks, 'push'>];

/** Every observer, told in turn; one that throws is reported to `onError` and the others are still told. */
export class CallObservers {
  constructor(
    private readonly hooks: readonly CallHooks[],
    private readonly onError: (err: unknown, hook: keyof CallHooks) => void,
  ) {}

  /** Asks every observer that pushes to push `info`: true when one took it; false when none did, or none pushes. */
  async push(info: UnreachableCall): Promise<boolean> {
    const answers = await Promise.all(
      this.hooks.map(async (observer) => {
        try {
          return observer.push ? await observer.push(info) : false;
        } catch (err) {
          this.onError(err, 'push');
          return false;
        }
      }),
    );
    return answers.some(Boolean);
  }

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
