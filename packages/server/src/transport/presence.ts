/**
 * Presence and visibility. A may see (and call) B when both are in the same
 * tenant and, with CONTACTS=claims, B is in A's contacts. A user A may not see
 * is, to A, exactly an offline one.
 */
import type { PresenceStatus, PresenceUser, ServerToClientEvents, UserId } from '@switchboard/protocol';
import { userKey } from '../calls/types.js';
import type { Deps, SbSocket, SessionInfo } from './context.js';
import { tellLocal } from './delivery.js';
import { rooms } from './context.js';

export class Presence {
  constructor(private readonly deps: Deps) {}

  canSee(viewer: SessionInfo, target: string): boolean {
    return viewer.contacts === null || viewer.contacts.has(target);
  }

  /** Joins the rooms through which this socket hears about the users it may see. */
  joinRooms(socket: SbSocket, session: SessionInfo): void {
    const joined = [rooms.session(session.id), rooms.user(session.key)];
    if (session.contacts === null) joined.push(rooms.tenant(session.tenant));
    else for (const contact of session.contacts) joined.push(rooms.watchers(userKey(session.tenant, contact)));
    void socket.join(joined);
  }

  /** The visible users online now, without the viewer, each `available` or `busy`. */
  async list(viewer: SessionInfo): Promise<PresenceUser[]> {
    const online = (await this.deps.store.onlineUsers(viewer.tenant)).filter(
      (u) => u.id !== viewer.userId && this.canSee(viewer, u.id),
    );
    const claims = await this.deps.store.getClaims(online.map((u) => userKey(viewer.tenant, u.id)));
    return online.map((u, i) => ({ id: u.id, name: u.name, status: claims[i] ? 'busy' : 'available' }));
  }

  announceOnline(session: SessionInfo): void {
    const [target, except] = this.audience(session);
    this.announce(target, [except], 'user:online', { user: { id: session.userId, name: session.name } });
  }

  announceOffline(session: Pick<SessionInfo, 'tenant' | 'key' | 'userId'>, lastSeen: number): void {
    const [target, except] = this.audience(session);
    this.announce(target, [except], 'user:offline', { userId: session.userId as UserId, lastSeen });
  }

  /**
   * Whether a status announcement could be sent to other nodes (Redis mode,
   * statuses on): then the call's commit counts who else is online, so that
   * `announceStatus` knows whether to.
   */
  reachesOtherNodes(): boolean {
    return this.deps.config.presenceStatus && this.deps.delivery.crossesNodes;
  }

  /**
   * Tells the users who may see the two parties of a call that each became
   * busy or available. The parties themselves (all their devices) are left out:
   * they know. With `othersOnline` false (the call's commit found no other user
   * of the tenant online; see `CallStore.commitCallCounting`) nobody on
   * another node could hear it, and it is not published.
   */
  announceStatus(tenant: string, parties: [UserId, UserId], status: PresenceStatus, othersOnline = true): void {
    if (!this.deps.config.presenceStatus) return;
    const keys = parties.map((p) => userKey(tenant, p));
    const except = keys.map(rooms.user);
    parties.forEach((userId, i) => {
      const target = this.deps.config.contacts === 'all' ? rooms.tenant(tenant) : rooms.watchers(keys[i]!);
      if (othersOnline) this.announce(target, except, 'user:status', { userId, status });
      else tellLocal(this.deps.io, target, except, 'user:status', { userId, status });
    });
  }

  /** Everyone who may see `session`'s user, on every node, but that user's own devices: the room, and the room left out. */
  private audience(session: Pick<SessionInfo, 'tenant' | 'key'>): [string, string] {
    const target = this.deps.config.contacts === 'all' ? rooms.tenant(session.tenant) : rooms.watchers(session.key);
    return [target, rooms.user(session.key)];
  }

  /** Tells the sockets of `target`, on every node, but those in any room of `except` (see `Delivery.announce`). */
  private announce<E extends 'user:online' | 'user:offline' | 'user:status'>(
    target: string,
    except: string[],
    event: E,
    payload: Parameters<ServerToClientEvents[E]>[0],
  ): void {
    this.deps.delivery.announce(target, except, event, payload);
  }
}
