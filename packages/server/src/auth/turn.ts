/**
 * ICE servers handed to clients: STUN as configured, and TURN with
 * time-limited credentials in the TURN REST form that coturn's
 * `use-auth-secret` checks — username `"<expiry epoch s>:<userId>"`,
 * credential `base64(HMAC-SHA1(secret, username))`.
 */
import { createHmac } from 'node:crypto';
import type { IceServer } from '@switchboard/protocol';
import type { Config } from '../config.js';

export function turnCredential(secret: string, username: string): string {
  return createHmac('sha1', secret).update(username).digest('base64');
}

export function iceServersFor(
  config: Pick<Config, 'stunUrls' | 'turnUrls' | 'turnSecret' | 'turnTtlS'>,
  userId: string,
  nowMs = Date.now(),
): IceServer[] {
  const servers: IceServer[] = [];
  if (config.stunUrls.length > 0) servers.push({ urls: config.stunUrls });
  if (config.turnUrls.length > 0 && config.turnSecret) {
    const username = `${Math.floor(nowMs / 1000) + config.turnTtlS}:${userId}`;
    // With several secrets (rotation), sign with the first; coturn accepts any it lists.
    const secret = config.turnSecret.split(',')[0]!.trim();
    servers.push({ urls: config.turnUrls, username, credential: turnCredential(secret, username) });
  }
  return servers;
}
