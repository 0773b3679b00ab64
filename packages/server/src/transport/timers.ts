/**
 * Due timers (ring timeouts, reconnect-grace expiries). The due time lives in
 * the store; this node arms a local timer for what it scheduled, and whoever
 * claims a due timer in the store runs it — exactly once, on exactly one node.
 */
import type { CallStore, TimerKind } from '../store/types.js';
import type { Logger } from '../logger.js';

export type DueHandler = (kind: TimerKind, id: string) => Promise<void>;

export class DueTimers {
  private readonly local = new Map<string, NodeJS.Timeout>();
  private closed = false;

  constructor(
    private readonly store: CallStore,
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
    const due = await this.store.claimDue(this.now(), max);
    for (const timer of due) await this.run(timer.kind, timer.id);
  }

  close(): void {
    this.closed = true;
    for (const t of this.local.values()) clearTimeout(t);
    this.local.clear();
  }

  private arm(kind: TimerKind, id: string, dueAt: number): void {
    if (this.closed) return;
    const key = `${kind}:${id}`;
    const previous = this.local.get(key);
    if (previous) clearTimeout(previous);
    const timer = setTimeout(() => {
      this.local.delete(key);
      // A timer may fire a millisecond early by the wall clock; it is due at dueAt all the same.
      void this.store
        .claimTimer(kind, id, Math.max(this.now(), dueAt))
        .then((mine) => (mine ? this.run(kind, id) : undefined))
        .catch((err: unknown) => this.logger.error({ err, kind, id }, 'timer claim failed'));
    }, Math.max(0, dueAt - this.now()));
    timer.unref();
    this.local.set(key, timer);
  }

  private disarm(kind: TimerKind, id: string): void {
    const key = `${kind}:${id}`;
    const timer = this.local.get(key);
    if (timer) clearTimeout(timer);
    this.local.delete(key);
  }

  private async run(kind: TimerKind, id: string): Promise<void> {
    try {
      await this.onDue(kind, id);
    } catch (err) {
      this.logger.error({ err, kind, id }, 'timer handler failed');
    }
  }
}
