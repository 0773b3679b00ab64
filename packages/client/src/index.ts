/**
 * `@switchboard/client`: the browser (and Node) SDK of Switchboard. A `Phone`
 * connects to the server, shows who is online, places and receives `Call`s,
 * negotiates their WebRTC audio, and resumes its session after a network
 * blip so that calls survive.
 */
export { Phone, DEFAULT_REQUEST_TIMEOUT_MS } from './phone.js';
export { Call } from './call.js';
export { PhoneEvent, CallEvent, type PhoneEventCallbacks, type CallEventCallbacks } from './events.js';
export { SwitchboardError, ClientErrorCode, type SwitchboardErrorCode } from './errors.js';
export {
  DefaultReconnectPolicy,
  DEFAULT_RECONNECT_DELAYS_MS,
  type ReconnectPolicy,
  type ReconnectContext,
  type DefaultReconnectPolicyOptions,
} from './reconnect-policy.js';
export { TypedEmitter } from './emitter.js';
export type * from './types.js';
export type { QualitySample, RemoteQuality } from './quality.js';
export type { QualityLevel, QualityWarning, QualityReport, QualitySummary, CallQuality } from '@switchboard/protocol/wire';
export { estimateMos, WARNING_THRESHOLDS, RAISE_AFTER, CLEAR_AFTER } from './quality-model.js';
export {
  PREFLIGHT_FAILURES,
  type PreflightFailure,
  type PreflightOptions,
  type PreflightReport,
  type PreflightPart,
  type IceServerCheck,
  type IceTransport,
} from './preflight.js';
