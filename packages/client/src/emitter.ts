/**
 * A small typed event emitter, runtime-neutral (no Node `events`): the
 * listener type of each event comes from a callbacks map, as in livekit's
 * `TypedEventEmitter<RoomEventCallbacks>`.
 */

// `any` parameters let every concrete callback map satisfy the constraint.
// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Callbacks<T> = { [K in keyof T]: (...args: any[]) => void };

interface Entry {
  listener: (...args: unknown[]) => void;
  once: boolean;
}

export class TypedEmitter<Events extends Callbacks<Events>> {
  private readonly entries = new Map<keyof Events, Entry[]>();

  /** Calls `listener` every time `event` is emitted. */
  on<E extends keyof Events>(event: E, listener: Events[E]): this {
    return this.add(event, listener, false);
  }

  /** Calls `listener` the next time `event` is emitted, then forgets it. */
  once<E extends keyof Events>(event: E, listener: Events[E]): this {
    return this.add(event, listener, true);
  }

  /** Removes `listener` (added by `on` or `once`). */
  off<E extends keyof Events>(event: E, listener: Events[E]): this {
    const list = this.entries.get(event);
    if (list) {
      const i = list.findIndex((e) => e.listener === listener);
      if (i >= 0) list.splice(i, 1);
    }
    return this;
  }

  /** Removes every listener of `event`, or of every event. */
  removeAllListeners(event?: keyof Events): this {
    if (event === undefined) this.entries.clear();
    else this.entries.delete(event);
    return this;
  }

  listenerCount(event: keyof Events): number {
    return this.entries.get(event)?.length ?? 0;
  }

  /**
   * Calls each listener in the order added. A listener that throws does not
   * stop the others nor the SDK: its error is rethrown on a fresh task, where
   * the runtime reports it as uncaught (as a DOM `EventTarget` does).
   */
  protected emit<E extends keyof Events>(event: E, ...args: Parameters<Events[E]>): boolean {
    const list = this.entries.get(event);
    if (!list || list.length === 0) return false;
    for (const entry of [...list]) {
      if (entry.once) this.off(event, entry.listener as Events[E]);
      try {
        entry.listener(...args);
      } catch (err) {
        setTimeout(() => {
          throw err;
        }, 0);
      }
    }
    return true;
  }

  private add(event: keyof Events, listener: Events[keyof Events], once: boolean): this {
    const list = this.entries.get(event) ?? [];
    list.push({ listener: listener as (...args: unknown[]) => void, once });
    this.entries.set(event, list);
    return this;
  }
}
