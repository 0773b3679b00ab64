/** The page's few HTTP calls to the server: a dev token, and call history. */
export interface HistoryEntry {
  callId: string;
  direction: 'incoming' | 'outgoing';
  peer: { id: string; name: string };
  outcome: string;
  reason: string;
  createdAt: number;
  answeredAt: number | null;
  endedAt: number;
  durationMs: number;
}

export class SignInError extends Error {}

/** A token handed over in the URL fragment (`#token=…`) by a host app; removed from the address bar. */
export function tokenFromFragment(): string | null {
  const params = new URLSearchParams(location.hash.slice(1));
  const token = params.get('token');
  if (token) history.replaceState(null, '', location.pathname + location.search);
  return token;
}

/** Dev mode: the typed name as both userId and name. */
export async function devToken(name: string): Promise<string> {
  const res = await fetch('/dev/token', {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ userId: name, name }),
  });
  if (res.status === 404) throw new SignInError('This server is not in dev mode: open this page from your app, with #token=… in its address.');
  if (!res.ok) throw new SignInError('Sign-in failed; check the name (letters, digits, . _ -).');
  return ((await res.json()) as { token: string }).token;
}

export async function fetchHistory(token: string): Promise<HistoryEntry[]> {
  const res = await fetch('/api/calls?limit=20', { headers: { authorization: `Bearer ${token}` } });
  if (!res.ok) return [];
  return ((await res.json()) as { calls: HistoryEntry[] }).calls;
}
