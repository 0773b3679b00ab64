/**
 * Steps the network-lab tests share: place a call between two phone agents
 * and wait until both hear each other, wait for a stretch of received audio,
 * hang up, and describe a selected candidate pair. Every wait is on events or
 * on measured audio, bounded by a timeout.
 */
import assert from 'node:assert/strict';
import { pollUntil } from '../support/wait.js';
import type { AudioCounters, SelectedPair, StatsResult } from './agent-protocol.js';
import type { LabPhone } from './lab-phone.js';
import { LAB, type NetLab } from './netlab.js';

/** Setting up a call through TURN (gathering, checks, DTLS) on a loaded 2-core machine. */
export const CONNECT_TIMEOUT_MS = 20_000;
export const AUDIO_TIMEOUT_MS = 10_000;

export interface PlacedCall {
  callId: string;
  /** Epoch ms: when `call()` was sent to the caller's agent. */
  requestedAt: number;
  /** Milliseconds from `call()` to both sides `connected`. */
  connectMs: number;
  /** Milliseconds from `call()` to the tone heard at the callee and at the caller. */
  firstAudioMs: { callee: number; caller: number };
}

/**
 * `caller` calls `callee`, which accepts; resolves once both are connected
 * and each hears the other's tone (and, for a `video` call, sees its camera).
 */
export async function connectedCall(caller: LabPhone, callee: LabPhone, { video = false }: { video?: boolean } = {}): Promise<PlacedCall> {
  const marks = { caller: caller.mark(), callee: callee.mark() };
  const requestedAt = Date.now();
  const { callId } = await caller.call(callee.name, { video });
  await callee.waitFor('incoming', (e) => e.callId === callId, { since: marks.callee });
  await callee.accept();
  const connected = await Promise.all([
    caller.callState('connected', { since: marks.caller, timeoutMs: CONNECT_TIMEOUT_MS }),
    callee.callState('connected', { since: marks.callee, timeoutMs: CONNECT_TIMEOUT_MS }),
  ]);
  const [atCallee, atCaller] = await Promise.all([
    callee.audio(true, { since: marks.callee, timeoutMs: AUDIO_TIMEOUT_MS }),
    caller.audio(true, { since: marks.caller, timeoutMs: AUDIO_TIMEOUT_MS }),
  ]);
  if (video) {
    await Promise.all([
      callee.video(true, { since: marks.callee, timeoutMs: AUDIO_TIMEOUT_MS }),
      caller.video(true, { since: marks.caller, timeoutMs: AUDIO_TIMEOUT_MS }),
    ]);
  }
  return {
    callId,
    requestedAt,
    connectMs: Math.max(...connected.map((e) => e.t)) - requestedAt,
    firstAudioMs: { callee: atCallee.t - requestedAt, caller: atCaller.t - requestedAt },
  };
}

/** `phone` hangs up; resolves once both sides have ended, with the end the peer heard. */
export async function hangUp(phone: LabPhone, peer: LabPhone): Promise<{ reason: string; by: string | null }> {
  const marks = { phone: phone.mark(), peer: peer.mark() };
  await phone.hangup();
  const [, heard] = await Promise.all([phone.waitFor('ended', () => true, { since: marks.phone }), peer.waitFor('ended', () => true, { since: marks.peer })]);
  return { reason: heard.reason, by: heard.by };
}

/**
 * Resolves once every phone has measured `ms` more of received audio than
 * `from` says (the counters of a `stats()` taken before), with the counters
 * then: a wait on audio actually received, not on a clock.
 */
export async function receivedAudio(phones: readonly LabPhone[], from: readonly StatsResult[], ms: number, timeoutMs = ms * 2 + 5000): Promise<AudioCounters[]> {
  const delta = (now: StatsResult, before: StatsResult): AudioCounters => ({
    windows: now.audio.windows - before.audio.windows,
    toneWindows: now.audio.toneWindows - before.audio.toneWindows,
    windowMs: now.audio.windowMs,
  });
  // pollUntil resolves only with a truthy answer: the counters.
  const counters = await pollUntil(
    `${ms} ms of received audio at ${phones.map((p) => p.name).join(' and ')}`,
    async () => {
      const now = await Promise.all(phones.map((p) => p.stats()));
      const deltas = now.map((s, i) => delta(s, from[i]!));
      return deltas.every((d) => d.windows * d.windowMs >= ms) ? deltas : null;
    },
    timeoutMs,
    250,
  );
  return counters!;
}

/** Asserts that the pair goes through coturn: one of its ends is a relay candidate on the lab's TURN address. */
export function assertRelayed(pair: SelectedPair | null, turnAddress: string, who: string): void {
  assert.ok(pair, `${who} has a selected candidate pair`);
  const relay = [pair.local, pair.remote].find((c) => c.type === 'relay');
  assert.ok(relay, `${who}'s selected pair involves a relay candidate: ${describePair(pair)}`);
  assert.equal(relay.address, turnAddress, `${who}'s relay candidate is on coturn`);
}

export function describePair(pair: SelectedPair | null): string {
  if (!pair) return 'none';
  const end = (c: SelectedPair['local']) => `${c.type} ${c.protocol} ${c.address}:${c.port}${c.relayProtocol ? ` (via ${c.relayProtocol})` : ''}`;
  return `${end(pair.local)} ⇄ ${end(pair.remote)}`;
}

/** The tones alice and bob send (each expects the other's). */
export const ALICE_HZ = 440;
export const BOB_HZ = 880;

/** Alice and bob, each a phone agent in its own namespace of `lab`. */
export function startPair(lab: NetLab): Promise<[LabPhone, LabPhone]> {
  return Promise.all([
    lab.phone('alice', { audio: { send: ALICE_HZ, expect: BOB_HZ } }),
    lab.phone('bob', { audio: { send: BOB_HZ, expect: ALICE_HZ } }),
  ]);
}

/** Both phones' selected pairs go through the lab's coturn; returns the pairs, described. */
export async function assertBothRelayed(alice: LabPhone, bob: LabPhone): Promise<string> {
  const [atAlice, atBob] = await Promise.all([alice.stats(), bob.stats()]);
  assertRelayed(atAlice.pair, LAB.services, 'alice');
  assertRelayed(atBob.pair, LAB.services, 'bob');
  return `alice: ${describePair(atAlice.pair)}; bob: ${describePair(atBob.pair)}`;
}

/** Resolves once the tone, gone since `since`, is heard again at `phone`: with when it came back (epoch ms). */
export async function audioBack(phone: LabPhone, since: number, timeoutMs = 30_000): Promise<number> {
  const gone = await phone.audio(false, { since, timeoutMs });
  return (await phone.waitFor('audio', (e) => e.present && e.t >= gone.t, { since, timeoutMs })).t;
}

/** Resolves once the peer's video, stopped since `since`, comes again at `phone`: with when it came back (epoch ms). */
export async function videoBack(phone: LabPhone, since: number, timeoutMs = 30_000): Promise<number> {
  const gone = await phone.video(false, { since, timeoutMs });
  return (await phone.waitFor('video', (e) => e.present && e.t >= gone.t, { since, timeoutMs })).t;
}

/** Resolves once both phones' calls have ended (from their marks on), with how each ended. */
export async function bothEnded([a, b]: readonly [LabPhone, LabPhone], [markA, markB]: readonly [number, number], timeoutMs: number) {
  return Promise.all([a.waitFor('ended', () => true, { since: markA, timeoutMs }), b.waitFor('ended', () => true, { since: markB, timeoutMs })]);
}
