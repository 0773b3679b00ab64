/**
 * A browser's word that the device's network changed: the window's `online`
 * and `offline` events and the Network Information API's `change` (Chromium; absent in
 * Firefox and Safari). In Node neither exists and nothing is watched: there,
 * ICE's own loss of the path is the signal.
 */

interface EventSource {
  addEventListener(type: string, listener: () => void): void;
  removeEventListener(type: string, listener: () => void): void;
}

export interface NetworkListener {
  /** The device is online again, or its connection changed (a new network). */
  changed(): void;
  /** The device has no network at all. */
  offline(): void;
}

/** Tells `listener` of every change until the returned function is called. */
export function watchNetwork(listener: NetworkListener): () => void {
  const g = globalThis as { addEventListener?: unknown; navigator?: { connection?: Partial<EventSource> } };
  const watched: [EventSource, string, () => void][] = [];
  if (typeof g.addEventListener === 'function') {
    const window = globalThis as unknown as EventSource;
    watched.push([window, 'online', () => listener.changed()], [window, 'offline', () => listener.offline()]);
  }
  const connection = g.navigator?.connection;
  if (typeof connection?.addEventListener === 'function') watched.push([connection as EventSource, 'change', () => listener.changed()]);
  for (const [source, type, handler] of watched) source.addEventListener(type, handler);
  return () => {
    for (const [source, type, handler] of watched) source.removeEventListener(type, handler);
  };
}
