/** HS256 tokens for Switchboard sessions (sub + exp, as the server requires), signed with jose. */
import { SignJWT } from 'jose';
import { BENCH_SECRET } from './processes.js';

const key = new TextEncoder().encode(BENCH_SECRET);

export interface Claims {
  userId: string;
  tenant?: string;
  contacts?: string[];
}

export function mint(claims: Claims): Promise<string> {
  const payload: Record<string, unknown> = { name: claims.userId };
  if (claims.tenant !== undefined) payload.tenant = claims.tenant;
  if (claims.contacts !== undefined) payload.contacts = claims.contacts;
  return new SignJWT(payload)
    .setProtectedHeader({ alg: 'HS256', typ: 'JWT' })
    .setSubject(claims.userId)
    .setIssuedAt()
    .setExpirationTime(Math.floor(Date.now() / 1000) + 4 * 3600)
    .sign(key);
}
