/**
 * Due timers (ring timeouts, reconnect-grace expiries). The due time lives in
 * the store; this node arms a local timer for what it scheduled, and whoever
 * claims a due timer in the store runs it. A claim is a lease: the timer stays
 * in the store, due again when the lease runs out, until the claimer completes
 * it after its handler has run — so a timer whose claimer died (or took longer
 * than the lease) fires again on some node. Handlers must therefore bear being
 * run twice; they re-read the state they act on.
 */
import type { ClaimedTimer, TimerKind, TimerStore } from '../store/types.js';
import type { Logger } from '../logger.js';

export type DueHandler = (kind: TimerKind, id: string) => Promise<void>;

/** How long a claimed timer is held by its claimer before it is due again for anyone. */
export const TIMER_LEASE_MS = 10_000;

export class DueTimers {
  private readonly local = new Map<string, NodeJS.Timeout>();
  private closed = false;

  constructor(
    private readonly store: TimerStore,
    private readonly logger: Logger,
    private readonly onDue: DueHandler,
    private readonly now: () => number = Date.now,
  ) {}

  async schedule(kind: TimerKind, id: string, dueAt: number): Promise<void> {
    await this.store.schedule(kind, id, dueAt);
    this.arm(kind, id, dueAt);
  }

  async unschedule(kind: TimerKind, id: string): Promise<void> {
    this.disarm(kind, id);
    await this.store.unschedule(kind, id);
  }

  /** Runs every timer the store says is due (a node sweeping for timers another node armed). */
  async sweep(max = 100): Promise<void> {
    const due = await this.store.claimDue(this.now(), max, TIMER_LEASE_MS);
    for (const timer of due) await this.run(timer);
  }

  close(): void {
    this.closed = true;
    for (const t of this.local.values()) clearTimeout(t);
    this.local.clear();
  }

  /** Arms this node's local timer for a due time already in the store (written by a call's commit, say). */
  arm(kind: TimerKind, id: string, dueAt: number): void {
    if (this.closed) return;
    const key = `${kind}:${id}`;
    const previous = this.local.get(key);
    if (previous) clearTimeout(previous);
    const timer = setTimeout(() => {
      this.local.delete(key);
      // A timer may fire a millisecond early by the wall clock; it is due at dueAt all the same.
      void this.store
        .claimTimer(kind, id, Math.max(this.now(), dueAt), TIMER_LEASE_MS)
        .then((lease) => (lease ? this.run(lease) : undefined))
        .catch((err: unknown) => this.logger.error({ err, kind, id }, 'timer claim failed'));
    }, Math.max(0, dueAt - this.now()));
    timer.unref();
    this.local.set(key, timer);
  }

  /** Disarms this node's local timer (the store's entry is removed by whoever removes it). */
  disarm(kind: TimerKind, id: string): void {
    const key = `${kind}:${id}`;
    const timer = this.local.get(key);
    if (timer) clearTimeout(timer);
    this.local.delete(key);
  }

  /**
   * Runs a claimed timer, then completes it whether the handler resolved or
   * threw (a handler that rescheduled the timer keeps its new due time). A
   * failed completion leaves the timer to fire again once the lease runs out.
   */
  private async run(timer: ClaimedTimer): Promise<void> {
    const { kind, id } = timer;
    try {
      await this.onDue(kind, id);
    } catch (err) {
      this.logger.error({ err, kind, id }, 'timer handler failed');
    }
    try {
      await this.store.completeTimer(timer);
    } catch (err) {
      this.logger.error({ err, kind, id, leaseUntil: timer.leaseUntil }, 'timer completion failed');
    }
  }
}
