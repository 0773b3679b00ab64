/**
 * Schemas of every client → server payload. The server runs each inbound
 * payload through one of these at the edge; types alone validate nothing.
 * Objects strip unknown keys, so nothing a client adds reaches the state.
 */
import { z } from 'zod';
import {
  MAX_CANDIDATE_LENGTH,
  MAX_SDP_LENGTH,
  MAX_SESSION_ID_LENGTH,
  MAX_TOKEN_LENGTH,
  MAX_USER_ID_LENGTH,
} from './limits.js';
import { QUALITY_LEVELS, QUALITY_RANGES, QUALITY_WARNINGS } from './quality.js';

const token = z.string().min(1).max(MAX_TOKEN_LENGTH);
const callId = z.guid();

export const authHandshakeSchema = z.object({ token });
export const reconnectAttemptSchema = z.object({
  token,
  sessionId: z.string().min(1).max(MAX_SESSION_ID_LENGTH),
});

export const mediaSchema = z.object({ audio: z.boolean(), video: z.boolean() });
export const callRequestSchema = z.object({
  to: z.string().min(1).max(MAX_USER_ID_LENGTH),
  callId: callId.optional(),
  media: mediaSchema.optional(),
});
/** `call:accept`, `call:reject`, `call:cancel` and every in-call control. */
export const callIdSchema = z.object({ callId });
/** Why a client ends a call (v1.1): `hangup` (the default), or media that never connected or could not be restored, or no usable microphone/camera. */
export const END_REASONS = ['hangup', 'ice_failed', 'media_failed'] as const;
/** `call:end`: the call, and why (v1.1). */
export const callEndSchema = z.object({ callId, reason: z.enum(END_REASONS).optional() });

export const sdpSchema = z.object({ callId, sdp: z.string().min(1).max(MAX_SDP_LENGTH) });
export const iceCandidateInitSchema = z.object({
  candidate: z.string().max(MAX_CANDIDATE_LENGTH),
  sdpMid: z.string().max(64).nullable().optional(),
  sdpMLineIndex: z.number().int().min(0).max(1024).nullable().optional(),
  usernameFragment: z.string().max(256).nullable().optional(),
});
export const iceCandidateSchema = z.object({ callId, candidate: iceCandidateInitSchema.nullable() });

const inRange = ([min, max]: readonly [number, number]) => z.number().finite().min(min).max(max);
/** `call:quality` (v1.1): a party's view of the media it receives; each number within `QUALITY_RANGES`, each warning named once. */
export const callQualitySchema = z.object({
  callId,
  mos: inRange(QUALITY_RANGES.mos),
  rttMs: inRange(QUALITY_RANGES.rttMs),
  jitterMs: inRange(QUALITY_RANGES.jitterMs),
  lossPct: inRange(QUALITY_RANGES.lossPct),
  level: z.enum(QUALITY_LEVELS),
  warnings: z
    .array(z.enum(QUALITY_WARNINGS))
    .max(QUALITY_WARNINGS.length)
    .refine((w) => new Set(w).size === w.length, 'each warning at most once'),
});

export type AuthHandshakePayload = z.infer<typeof authHandshakeSchema>;
export type ReconnectAttemptPayload = z.infer<typeof reconnectAttemptSchema>;
export type Media = z.infer<typeof mediaSchema>;
export type CallRequestPayload = z.infer<typeof callRequestSchema>;
export type CallIdPayload = z.infer<typeof callIdSchema>;
export type CallEndPayload = z.infer<typeof callEndSchema>;
export type EndReason = (typeof END_REASONS)[number];
export type CallQualityPayload = z.infer<typeof callQualitySchema>;
export type SdpPayload = z.infer<typeof sdpSchema>;
export type IceCandidateInit = z.infer<typeof iceCandidateInitSchema>;
export type IceCandidatePayload = z.infer<typeof iceCandidateSchema>;
