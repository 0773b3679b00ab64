/**
 * The log lines of calls, as a `CallHooks` observer: one per committed change
 * (`call event`), one per answered call with its setup time, one per ended
 * call with its outcome. Each is built only when `info` is on.
 */
import type { CallHooks } from './calls/hooks.js';
import type { Logger } from './logger.js';

export function callLog(logger: Logger): CallHooks {
  const on = () => logger.isLevelEnabled('info');
  return {
    changed(call, input, source) {
      if (on()) logger.info({ callId: call.id, event: input.type, state: call.state, user: source?.userId, session: source?.sessionId }, 'call event');
    },
    answered(call) {
      if (!on()) return;
      logger.info(
        {
          callId: call.id,
          tenant: call.tenant,
          user: call.callee.userId,
          session: call.callee.sessionId,
          caller: call.caller.userId,
          setupMs: call.answeredAt === null ? null : call.answeredAt - call.createdAt,
        },
        'call answered',
      );
    },
    ended(call, history) {
      if (!on()) return;
      const { direction: _direction, peer: _peer, ...common } = history.caller;
      logger.info({ caller: call.caller.userId, callee: call.callee.userId, tenant: call.tenant, ...common }, 'call ended');
    },
  };
}
