/**
 * A session as the transport holds it, and as a client is told of it: made
 * from a token's identity, read back from a stored record, and a call as its
 * resumed party sees it (`CallSnapshot`).
 */
import { randomBytes } from 'node:crypto';
import type { CallSnapshot, SessionId } from '@switchboard/protocol';
import type { Identity } from '../auth/tokens.js';
import { peerOf, roleOf } from '../calls/parties.js';
import type { CallRecord } from '../calls/types.js';
import { userKey } from '../calls/types.js';
import type { Config } from '../config.js';
import { sessionIdPrefix } from '../store/redis-keys.js';
import type { SessionRecord } from '../store/types.js';
import type { SessionInfo } from './context.js';

/** 144 random bits, URL-safe, after the key group of its tenant (which lets a store find it by id alone). */
function newSessionId(tenant: string): SessionId {
  return `${sessionIdPrefix(tenant)}${randomBytes(18).toString('base64url')}` as SessionId;
}

/** A new session of `identity` on this node, connected (with a new id, unless it is one being written again). */
export function newSessionRecord(
  identity: Pick<Identity, 'userId' | 'name' | 'tenant' | 'contacts'>,
  config: Pick<Config, 'contacts' | 'nodeId'>,
  now: number,
  id: SessionId = newSessionId(identity.tenant),
): SessionRecord {
  return {
    id,
    tenant: identity.tenant,
    userId: identity.userId,
    name: identity.name,
    contacts: config.contacts === 'claims' ? (identity.contacts ?? []) : null,
    nodeId: config.nodeId,
    connected: true,
    graceUntil: null,
    resumes: 0,
    resumeWindowStart: now,
    createdAt: now,
  };
}

export function infoOf(record: SessionRecord): SessionInfo {
  return {
    id: record.id,
    userId: record.userId,
    name: record.name,
    tenant: record.tenant,
    key: userKey(record.tenant, record.userId),
    contacts: record.contacts === null ? null : new Set(record.contacts),
  };
}

export function snapshotOf(call: CallRecord, sessionId: SessionId): CallSnapshot | undefined {
  const role = roleOf(call, sessionId);
  if (!role || call.state === 'ended') return undefined;
  const self = call[role];
  const peer = peerOf(call, role);
  return {
    callId: call.id,
    state: call.state,
    role,
    peer: { id: peer.userId, name: peer.name },
    media: call.media,
    createdAt: call.createdAt,
    answeredAt: call.answeredAt,
    self: { ...self.flags },
    remote: { ...peer.flags },
    peerReconnecting: peer.reconnecting,
  };
}
