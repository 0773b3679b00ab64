/**
 * Generator-side sockets: socket.io-client over WebSocket only, no reconnection,
 * one Manager per socket (as separate browsers would be), opened in batches.
 */
import { io, type Socket } from 'socket.io-client';
import type { ServerKind } from './processes.js';
import { mint } from './tokens.js';

export type { Socket };

export interface SessionSpec {
  userId: string;
  /** Switchboard: the token's tenant claim (a pair per tenant keeps presence out of the call figures). */
  tenant?: string;
  /** Switchboard: the token's contacts claim (CONTACTS=claims); bare relay: the users whose `user:online` to hear. */
  watch?: string[];
}

/** The handshake `auth` for a target: a signed token for Switchboard, a plain user id for the bare relay. */
export async function authFor(kind: ServerKind, spec: SessionSpec): Promise<Record<string, unknown>> {
  if (kind === 'bare') return { userId: spec.userId, ...(spec.watch ? { watch: spec.watch } : {}) };
  return {
    token: await mint({
      userId: spec.userId,
      ...(spec.tenant !== undefined ? { tenant: spec.tenant } : {}),
      ...(spec.watch ? { contacts: spec.watch } : {}),
    }),
  };
}

/** Opens an authenticated session: resolves after `auth:success` (and, for Switchboard, the `user:list` that follows it). */
export function openSession(url: string, kind: ServerKind, auth: Record<string, unknown>, timeoutMs = 20_000): Promise<Socket> {
  const socket = io(url, { transports: ['websocket'], reconnection: false, forceNew: true, auth });
  return new Promise<Socket>((resolve, reject) => {
    let authed = false;
    let listed = kind === 'bare';
    const timer = setTimeout(() => fail(new Error(`session did not open within ${timeoutMs} ms`)), timeoutMs);
    const done = () => {
      if (!authed || !listed) return;
      clearTimeout(timer);
      socket.off('connect_error', fail);
      socket.off('auth:error', authError);
      resolve(socket);
    };
    function fail(err: Error) {
      clearTimeout(timer);
      socket.disconnect();
      reject(err);
    }
    function authError(p: { code?: string; message?: string }) {
      fail(new Error(`auth:error ${p?.code}: ${p?.message}`));
    }
    socket.once('connect_error', fail);
    socket.once('auth:error', authError);
    socket.once('auth:success', () => ((authed = true), done()));
    if (!listed) socket.once('user:list', () => ((listed = true), done()));
  });
}

export async function openSpec(url: string, kind: ServerKind, spec: SessionSpec): Promise<Socket> {
  return openSession(url, kind, await authFor(kind, spec));
}

/** Opens `count` sessions, `concurrency` at a time; `open(i)` opens the i-th. */
export async function openMany<T>(count: number, concurrency: number, open: (i: number) => Promise<T>, onProgress?: (done: number) => void): Promise<T[]> {
  const out = new Array<T>(count);
  let next = 0;
  let done = 0;
  const worker = async () => {
    while (next < count) {
      const i = next++;
      out[i] = await open(i);
      done++;
      if (onProgress && (done % 100 === 0 || done === count)) onProgress(done);
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, count) }, worker));
  return out;
}

export function closeAll(sockets: Iterable<Socket>): void {
  for (const s of sockets) s.disconnect();
}
