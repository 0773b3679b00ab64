/**
 * Media recovery for one answered call: when to restart ICE and when to give
 * up. It owns timers and nothing else; the call tells it how the media link
 * stands and does the restarts it asks for.
 *
 * - The link lost (`disconnected`) for `lostGraceMs` (a brief loss often
 *   heals by itself), or `failed`: restart ICE, then again after each
 *   back-off step while the link is still down.
 * - A restart is asked of the call only while signalling can carry it (our
 *   socket up, the peer's too); otherwise the resumption that brings
 *   signalling back restarts ICE itself, and recovery just keeps its clock.
 * - Media not connected within `timeoutMs` of the answer, or of the loss:
 *   give up (the call ends with `ice_failed`).
 */
import type { MediaLink } from './negotiation.js';

/** The default of the phone's `mediaRecoveryTimeoutMs`. */
export const DEFAULT_MEDIA_RECOVERY_TIMEOUT_MS = 30_000;
/** How long a `disconnected` link may last before ICE is restarted. */
export const LOST_GRACE_MS = 2000;
/** The wait after each restart before the next one, while the link is still down (the last step repeats). */
export const RESTART_BACKOFF_MS: readonly number[] = [2000, 4000, 5000];

export interface RecoveryActions {
  /** Where the media link stands now. */
  link(): MediaLink;
  /** Signalling can carry an offer now (our socket and the peer's are up). */
  canSignal(): boolean;
  /** Restart ICE (an offer with `iceRestart`). */
  restart(): void;
  /** Media did not come back in time: end the call. */
  giveUp(): void;
}

export interface RecoveryOptions {
  timeoutMs: number;
  lostGraceMs?: number;
  backoffMs?: readonly number[];
}

type Timer = ReturnType<typeof setTimeout>;

export class MediaRecovery {
  private deadline: Timer | null = null;
  /** The next restart: after the grace of a lost link, or the back-off after a restart. */
  private nextTry: Timer | null = null;
  private restarts = 0;
  private stopped = false;
  private readonly lostGraceMs: number;
  private readonly backoffMs: readonly number[];

  constructor(
    private readonly actions: RecoveryActions,
    private readonly options: RecoveryOptions,
  ) {
    this.lostGraceMs = options.lostGraceMs ?? LOST_GRACE_MS;
    this.backoffMs = options.backoffMs ?? RESTART_BACKOFF_MS;
  }

  /** The call was answered: its media must connect within the timeout. */
  begin(): void {
    this.armDeadline();
  }

  /** The media link changed (or may have). */
  update(link: MediaLink): void {
    if (this.stopped) return;
    switch (link) {
      case 'connected':
        this.clear();
        this.restarts = 0;
        return;
      case 'lost':
        this.armDeadline();
        if (!this.nextTry) this.nextTry = setTimeout(() => this.attempt(), this.lostGraceMs);
        return;
      case 'failed':
        this.armDeadline();
        // Straight away, unless a restart is already under way and waiting out its back-off.
        if (this.restarts === 0) this.attempt();
        return;
      default:
        return;
    }
  }

  /**
   * A restart happened that recovery did not ask for (the peer's restart
   * offer answered, or the one that follows a resumption): the next try
   * waits a full back-off from now, so the two sides do not restart in turn.
   */
  restarted(): void {
    if (this.stopped || !this.nextTry) return;
    this.schedule(this.backoffMs[0] ?? this.lostGraceMs);
  }

  /** Restart now, whatever the link says (the device's network changed). */
  kick(): void {
    if (this.stopped) return;
    this.armDeadline();
    this.attempt(true);
  }

  stop(): void {
    this.stopped = true;
    this.clear();
  }

  private attempt(force = false): void {
    if (this.nextTry) clearTimeout(this.nextTry);
    this.nextTry = null;
    if (this.stopped) return;
    if (!force && this.actions.link() === 'connected') return this.update('connected');
    if (this.actions.canSignal()) {
      this.actions.restart();
      this.restarts++;
    }
    const step = this.backoffMs[Math.min(Math.max(this.restarts - 1, 0), this.backoffMs.length - 1)] ?? this.lostGraceMs;
    this.schedule(step);
  }

  private schedule(ms: number): void {
    if (this.nextTry) clearTimeout(this.nextTry);
    this.nextTry = setTimeout(() => this.attempt(), ms);
  }

  private armDeadline(): void {
    if (this.deadline || this.stopped) return;
    this.deadline = setTimeout(() => {
      this.deadline = null;
      if (this.stopped || this.actions.link() === 'connected') return;
      this.stop();
      this.actions.giveUp();
    }, this.options.timeoutMs);
  }

  private clear(): void {
    if (this.deadline) clearTimeout(this.deadline);
    if (this.nextTry) clearTimeout(this.nextTry);
    this.deadline = null;
    this.nextTry = null;
  }
}
