/**
 * One caller/callee pair driving whole calls, one at a time:
 *
 *   caller  call:request (ack) ───────────────▶ callee  call:incoming
 *   caller  call:accepted ◀─────────────────── callee  call:accept
 *   caller  webrtc:offer + 4 ice-candidate ──▶ callee
 *   caller  ◀── webrtc:answer + 4 ice-candidate callee
 *   caller  call:mute, call:end ─────────────▶ callee  call:mute, call:ended
 *
 * The call is done when the callee has seen `call:ended`. Listeners are set
 * once per pair; every call carries a client-proposed callId so a late event
 * of an earlier call is never taken for the current one.
 */
import { randomUUID } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import type { Socket } from './clients.js';
import { makeCandidates, makeSdp, type IceCandidateInit } from './sdp.js';

export const CANDIDATES_EACH_WAY = 4;

/** What went wrong across many calls: failures by reason, and oddities in what arrived. */
export interface Counters {
  completed: number;
  failed: number;
  /** Failures and protocol errors by reason (`ack:<code>`, `call:error:<event>:<code>`, `call:busy`, `timeout`, …). */
  reasons: Record<string, number>;
  /** A candidate relayed before the offer/answer it follows. */
  outOfOrder: number;
  /** Calls that ended without every relayed message arriving. */
  incomplete: number;
}

export function newCounters(): Counters {
  return { completed: 0, failed: 0, reasons: {}, outOfOrder: 0, incomplete: 0 };
}

export function mergeCounters(into: Counters, from: Counters): void {
  into.completed += from.completed;
  into.failed += from.failed;
  into.outOfOrder += from.outOfOrder;
  into.incomplete += from.incomplete;
  for (const [k, v] of Object.entries(from.reasons)) into.reasons[k] = (into.reasons[k] ?? 0) + v;
}

export interface CallResult {
  ok: boolean;
  /** Scheduled start → callee saw `call:incoming`, ms. */
  incomingMs: number;
  /** Scheduled start → caller received `webrtc:answer`, ms. */
  answerMs: number;
  /** Scheduled start → callee saw `call:ended`, ms. */
  totalMs: number;
  /** Scheduled start → `call:request` actually sent (generator lag), ms. */
  sendLagMs: number;
  endedAt: number;
}

/**
 * A held call (the quality mode): once set up (the caller has the answer and
 * the callee's candidates), `established` is told its callId, and the call is
 * hung up (mute, end) only when `release` resolves. No timeout runs meanwhile;
 * a failure while held (an error, a lost socket, an unexpected end) still
 * fails the call.
 */
export interface Hold {
  established(callId: string): void;
  release: Promise<void>;
}

interface Current {
  callId: string;
  t0: number;
  sentAt: number;
  incomingAt: number;
  answerAt: number;
  accepted: boolean;
  gotAnswer: boolean;
  gotOffer: boolean;
  gotMute: boolean;
  hungUp: boolean;
  callerCandidates: number;
  calleeCandidates: number;
  timer: NodeJS.Timeout;
  hold: Hold | undefined;
  resolve: (r: CallResult) => void;
}

type P = { callId?: string; code?: string; event?: string };

export class Pair {
  private cur: Current | null = null;
  private readonly offer: string;
  private readonly answer: string;
  private readonly callerCandidates: IceCandidateInit[] = makeCandidates(CANDIDATES_EACH_WAY);
  private readonly calleeCandidates: IceCandidateInit[] = makeCandidates(CANDIDATES_EACH_WAY);

  constructor(
    readonly caller: Socket,
    readonly callee: Socket,
    readonly calleeId: string,
    private readonly counters: Counters,
    private readonly timeoutMs = 10_000,
    /** Video calls: `media.video` in the request, and the SDPs of a camera and a microphone. */
    private readonly video = false,
  ) {
    this.offer = makeSdp('offer', { video });
    this.answer = makeSdp('answer', { video });
    this.listenAsCaller();
    this.listenAsCallee();
    this.listenForFailures();
  }

  /** The call under way, if `p` is about it. */
  private mine(p: P | undefined): Current | null {
    const c = this.cur;
    return c && p && p.callId === c.callId ? c : null;
  }

  /** The caller's side: offer and candidates once accepted; the answer and the callee's candidates. */
  private listenAsCaller(): void {
    this.caller.on('call:accepted', (p: P) => {
      const c = this.mine(p);
      if (!c || c.accepted) return;
      c.accepted = true;
      this.caller.emit('webrtc:offer', { callId: c.callId, sdp: this.offer });
      for (const candidate of this.callerCandidates) this.caller.emit('webrtc:ice-candidate', { callId: c.callId, candidate });
    });
    this.caller.on('webrtc:answer', (p: P) => {
      const c = this.mine(p);
      if (!c) return;
      c.gotAnswer = true;
      c.answerAt = performance.now();
      this.maybeHangUp(c);
    });
    this.caller.on('webrtc:ice-candidate', (p: P) => {
      const c = this.mine(p);
      if (!c) return;
      if (!c.gotAnswer) this.counters.outOfOrder++;
      c.callerCandidates++;
      this.maybeHangUp(c);
    });
  }

  /** The callee's side: accept, answer and candidates, the mute, the end. */
  private listenAsCallee(): void {
    this.callee.on('call:incoming', (p: P) => {
      const c = this.mine(p);
      if (!c) return;
      c.incomingAt = performance.now();
      this.callee.emit('call:accept', { callId: c.callId });
    });
    this.callee.on('webrtc:offer', (p: P) => {
      const c = this.mine(p);
      if (!c) return;
      c.gotOffer = true;
      this.callee.emit('webrtc:answer', { callId: c.callId, sdp: this.answer });
      for (const candidate of this.calleeCandidates) this.callee.emit('webrtc:ice-candidate', { callId: c.callId, candidate });
    });
    this.callee.on('webrtc:ice-candidate', (p: P) => {
      const c = this.mine(p);
      if (!c) return;
      if (!c.gotOffer) this.counters.outOfOrder++;
      c.calleeCandidates++;
    });
    this.callee.on('call:mute', (p: P) => {
      const c = this.mine(p);
      if (c) c.gotMute = true;
    });
    this.callee.on('call:ended', (p: P) => {
      const c = this.mine(p);
      if (!c) return;
      if (!c.gotOffer || !c.gotMute || c.calleeCandidates !== CANDIDATES_EACH_WAY) this.counters.incomplete++;
      this.finish(c, true);
    });
  }

  /** Everything that fails the call under way: refusals, errors, a lost socket. */
  private listenForFailures(): void {
    const { caller, callee } = this;
    for (const [socket, event] of [
      [caller, 'call:busy'],
      [caller, 'call:rejected'],
      [caller, 'call:cancelled'],
      [caller, 'call:ended'],
      [callee, 'call:cancelled'],
    ] as const) {
      socket.on(event, (p: P) => {
        const c = this.mine(p);
        if (c) this.fail(c, event);
      });
    }
    for (const socket of [caller, callee]) {
      socket.on('call:error', (p: P) => {
        const c = this.cur;
        const reason = `call:error:${p?.event}:${p?.code}`;
        if (c && (p?.callId === undefined || p.callId === c.callId)) this.fail(c, reason);
        else this.count(reason);
      });
      socket.on('disconnect', (reason: string) => {
        if (reason === 'io client disconnect') return; // the bench closing its own sockets
        this.count(`disconnect:${reason}`);
        if (this.cur) this.fail(this.cur, 'disconnected');
      });
    }
  }

  /** Runs one whole call; `t0` is its scheduled start (performance.now() clock); with `hold`, the call is held once set up. */
  run(t0: number, hold?: Hold): Promise<CallResult> {
    return new Promise<CallResult>((resolve) => {
      const callId = randomUUID();
      const c: Current = {
        callId,
        t0,
        sentAt: performance.now(),
        incomingAt: 0,
        answerAt: 0,
        accepted: false,
        gotAnswer: false,
        gotOffer: false,
        gotMute: false,
        hungUp: false,
        callerCandidates: 0,
        calleeCandidates: 0,
        timer: setTimeout(() => this.fail(c, 'timeout'), this.timeoutMs),
        hold,
        resolve,
      };
      this.cur = c;
      if (this.caller.disconnected) return this.fail(c, 'disconnected');
      const media = this.video ? { media: { audio: true, video: true } } : {};
      this.caller.emit('call:request', { to: this.calleeId, callId, ...media }, (res: { ok: boolean; error?: { code: string } }) => {
        if (!res.ok && this.cur === c) this.fail(c, `ack:${res.error?.code ?? 'unknown'}`);
      });
    });
  }

  private maybeHangUp(c: Current): void {
    if (c.hungUp || !c.gotAnswer || c.callerCandidates < CANDIDATES_EACH_WAY) return;
    c.hungUp = true;
    const hold = c.hold;
    if (!hold) return this.hangUp(c);
    clearTimeout(c.timer);
    hold.established(c.callId);
    void hold.release.then(() => {
      if (this.cur !== c) return;
      c.timer = setTimeout(() => this.fail(c, 'timeout'), this.timeoutMs);
      this.hangUp(c);
    });
  }

  private hangUp(c: Current): void {
    this.caller.emit('call:mute', { callId: c.callId });
    this.caller.emit('call:end', { callId: c.callId });
  }

  private finish(c: Current, ok: boolean): void {
    if (this.cur !== c) return;
    this.cur = null;
    clearTimeout(c.timer);
    const now = performance.now();
    if (ok) this.counters.completed++;
    c.resolve({
      ok,
      incomingMs: c.incomingAt ? c.incomingAt - c.t0 : NaN,
      answerMs: c.answerAt ? c.answerAt - c.t0 : NaN,
      totalMs: now - c.t0,
      sendLagMs: c.sentAt - c.t0,
      endedAt: now,
    });
  }

  private count(reason: string): void {
    this.counters.reasons[reason] = (this.counters.reasons[reason] ?? 0) + 1;
  }

  /** Gives up on the current call: hangs it up (best effort) and frees the pair after a short pause. */
  private fail(c: Current, reason: string): void {
    if (this.cur !== c) return;
    this.cur = null;
    clearTimeout(c.timer);
    this.counters.failed++;
    this.count(reason);
    if (this.caller.connected) this.caller.emit('call:end', { callId: c.callId });
    setTimeout(() => {
      const now = performance.now();
      c.resolve({ ok: false, incomingMs: NaN, answerMs: NaN, totalMs: now - c.t0, sendLagMs: c.sentAt - c.t0, endedAt: now });
    }, 50);
  }
}
