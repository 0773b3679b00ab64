/**
 * The JSON-lines protocol between a lab test (`LabPhone`) and a phone agent
 * (`phone-agent.ts`, one SDK `Phone` on wrtc inside a phone namespace):
 * commands on the agent's stdin, each answered by a reply with its `id`;
 * events on its stdout, each stamped with the agent's `Date.now()` (the same
 * clock as the test's: one machine).
 */

/** Phone options that travel as JSON: passed straight to `new Phone()` (an option the SDK does not know is harmless). */
export interface AgentPhoneOptions {
  requestTimeoutMs?: number;
  rtcConfiguration?: RTCConfiguration;
  /** Added by the SDK's media recovery: how long a call may be without media before it ends. */
  mediaRecoveryTimeoutMs?: number;
  [option: string]: unknown;
}

export interface ConnectCommand {
  cmd: 'connect';
  url: string;
  token: string;
  /** The tone this phone sends, and the one it expects to hear, in Hz. */
  audio: { send: number; expect: number };
  options?: AgentPhoneOptions;
}

export type AgentCommand =
  | ConnectCommand
  /** `video`: a video call (the agent's camera is a fake one, `Camera`). */
  | { cmd: 'call'; userId: string; video?: boolean }
  | { cmd: 'accept' }
  | { cmd: 'hangup' }
  | { cmd: 'stats' }
  /** `phone.preflight(options)`: resolves with its report. */
  | { cmd: 'preflight'; timeoutMs?: number; mediaMs?: number }
  | { cmd: 'disconnect' }
  | { cmd: 'exit' };

/** One end of the selected ICE candidate pair. */
export interface CandidateInfo {
  /** `host`, `srflx`, `prflx` or `relay`. */
  type: string;
  protocol: string;
  address: string;
  port: number;
  /** For a relay candidate: how this side reaches the TURN server. */
  relayProtocol?: string;
}

export interface SelectedPair {
  local: CandidateInfo;
  remote: CandidateInfo;
}

/** Received-audio windows since the call's remote stream arrived. */
export interface AudioCounters {
  windows: number;
  /** Windows that carried the expected tone, audibly. */
  toneWindows: number;
  windowMs: number;
}

export interface StatsResult {
  callState: string | null;
  phoneState: string;
  pair: SelectedPair | null;
  audio: AudioCounters;
  /** Frames of the peer's video received since it first came. */
  videoFrames: number;
}

type Stamped<T> = T & { t: number };

export type AgentEvent = Stamped<
  | { event: 'ready' }
  | { event: 'phone'; state: string; previous: string }
  | { event: 'reconnected'; resumed: boolean; downtimeMs: number }
  | { event: 'incoming'; callId: string; from: string }
  | { event: 'call'; callId: string; state: string; previous: string }
  | { event: 'ended'; callId: string; reason: string; by: string | null }
  | { event: 'remoteStream'; callId: string }
  /** A change of whether the expected tone is heard; `rms`/`frequency` are of the window that changed it. */
  | { event: 'audio'; present: boolean; rms: number; frequency: number }
  /** A change of whether the peer's video frames come (a frame within the last `VIDEO_GAP_MS`). */
  | { event: 'video'; present: boolean; frames: number }
  /** Every 15th frame of the peer's video (about a second's worth), with the count so far. */
  | { event: 'video-frames'; frames: number }
  | { event: 'pair'; pair: SelectedPair }
  /** The call's `quality` sample (about once a second). */
  | { event: 'quality'; mos: number; rttMs: number; jitterMs: number; lossPct: number; level: string; warnings: string[]; packets: number; relayed: boolean | null }
  | { event: 'warning'; name: string }
  | { event: 'warning-cleared'; name: string }
  /** The peer's report, as `call.remoteQuality` now holds it. */
  | { event: 'remote-quality'; level: string; warnings: string[] }
  | { event: 'error'; message: string }
>;

export type AgentReply = { reply: number; ok: true; result: unknown } | { reply: number; ok: false; error: string };

export type AgentMessage = AgentEvent | AgentReply;
