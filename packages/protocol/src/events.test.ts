/**
 * Type tests of the event maps (checked by `tsc -p tsconfig.test.json` in
 * `npm test`) plus runtime checks of the schemas they describe.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { expectTypeOf } from 'expect-type';
import {
  callIdSchema,
  callRequestSchema,
  CONTROL_EVENTS,
  ERROR_CODES,
  iceCandidateSchema,
  MAX_SDP_LENGTH,
  sdpSchema,
  type Ack,
  type AckResponse,
  type CallId,
  type ClientToServerEvents,
  type ServerPayload,
  type ServerToClientEvents,
  type SessionId,
  type UserId,
} from './index.js';

test('the event maps type each payload and ack', () => {
  expectTypeOf<Parameters<ClientToServerEvents['call:request']>[0]>().toEqualTypeOf<{
    to: string;
    callId?: string | undefined;
    media?: { audio: boolean; video: boolean } | undefined;
  }>();
  expectTypeOf<Parameters<ClientToServerEvents['call:request']>[1]>().toEqualTypeOf<Ack<{ callId: CallId }> | undefined>();
  expectTypeOf<ServerPayload<'call:ended'>['reason']>().toEqualTypeOf<'hangup' | 'connection_lost' | 'ice_failed' | 'media_failed'>();
  expectTypeOf<ServerPayload<'call:cancelled'>['reason']>().toEqualTypeOf<
    'cancelled' | 'timeout' | 'answered_elsewhere' | 'declined_elsewhere' | 'caller_disconnected'
  >();
  expectTypeOf<ServerPayload<'webrtc:offer'>['from']>().toEqualTypeOf<UserId>();
  expectTypeOf<ServerPayload<'auth:success'>['sessionId']>().toEqualTypeOf<SessionId>();
  expectTypeOf<ServerToClientEvents['call:mute']>().parameter(0).toEqualTypeOf<{ callId: CallId; userId: UserId }>();
  expectTypeOf<AckResponse<{ callId: CallId }>>().toMatchTypeOf<{ ok: true; callId: CallId } | { ok: false; error: { code: string } }>();
  // Branded ids do not mix.
  expectTypeOf<CallId>().not.toEqualTypeOf<UserId>();
  expectTypeOf<SessionId>().not.toMatchTypeOf<CallId>();
  assert.equal(CONTROL_EVENTS.length, 6);
});

test('error codes are the contract\'s, stable and lower snake case', () => {
  assert.deepEqual([...ERROR_CODES].sort(), [
    'already_in_call',
    'call_not_found',
    'forbidden',
    'internal',
    'invalid_payload',
    'invalid_state',
    'rate_limited',
    'self_call',
    'unauthenticated',
    'unavailable',
  ]);
});

test('schemas enforce the size limits and strip unknown keys', () => {
  const id = '3b2f7a4e-1c9d-4e8a-9f00-123456789abc';
  assert.equal(sdpSchema.safeParse({ callId: id, sdp: 'x'.repeat(MAX_SDP_LENGTH) }).success, true);
  assert.equal(sdpSchema.safeParse({ callId: id, sdp: 'x'.repeat(MAX_SDP_LENGTH + 1) }).success, false);
  assert.deepEqual(callIdSchema.parse({ callId: id, from: 'mallory' }), { callId: id });
  assert.equal(iceCandidateSchema.safeParse({ callId: id, candidate: null }).success, true);
  assert.equal(callRequestSchema.safeParse({ to: 'bob', callId: 'not-a-uuid' }).success, false);
});

test('every client event has its ack data, and the no-zod entry point exports what the SDK needs', async () => {
  expectTypeOf<keyof import('./index.js').AckData>().toEqualTypeOf<import('./index.js').ClientEventName>();
  expectTypeOf<import('./index.js').AckData['auth:handshake']>().toEqualTypeOf<import('./index.js').AuthSuccess>();
  const wire = await import('./wire.js');
  assert.deepEqual(wire.CONTROL_EVENTS, CONTROL_EVENTS);
  assert.ok(wire.CALL_STATE_EVENTS.includes('call:ended'));
  assert.ok(!('callRequestSchema' in wire), 'no schema, so no zod');
});
