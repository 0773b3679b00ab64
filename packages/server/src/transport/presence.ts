/**
 * Presence and visibility. A may see (and call) B when both are in the same
 * tenant and, with CONTACTS=claims, B is in A's contacts. A user A may not see
 * is, to A, exactly an offline one.
 */
import type { PresenceStatus, PresenceUser, ServerToClientEvents, UserId } from '@switchboard/protocol';
import { userKey } from '../calls/types.js';
import type { Deps, SbSocket, SessionInfo, UntypedEmit } from './context.js';
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
    return this.deps.config.presenceStatus && this.deps.mail !== undefined;
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
      else this.tellLocal(target, except, 'user:status', { userId, status });
    });
  }

  /** Everyone who may see `session`'s user, on every node, but that user's own devices: the room, and the room left out. */
  private audience(session: Pick<SessionInfo, 'tenant' | 'key'>): [string, string] {
    const target = this.deps.config.contacts === 'all' ? rooms.tenant(session.tenant) : rooms.watchers(session.key);
    return [target, rooms.user(session.key)];
  }

  /**
   * Tells the sockets of `target`, on every node, but those in any room of
   * `except`: this node's at once — not even encoding an announcement none of
   * them would receive (two users alone in their tenant, say) — and in Redis
   * mode the other nodes' by the session mail, which sends what one tick
   * announces to one room as one message.
   */
  private announce<E extends 'user:online' | 'user:offline' | 'user:status'>(
    target: string,
    except: string[],
    event: E,
    payload: Parameters<ServerToClientEvents[E]>[0],
  ): void {
    this.tellLocal(target, except, event, payload);
    this.deps.mail?.announce(target, except, event, payload);
  }

  /**
   * Tells this node's sockets of `target` but those in any room of `except`;
   * an announcement none of them would receive is not even encoded. Also how
   * an announcement from another node reaches this node's sockets.
   */
  tellLocal(target: string, except: string[], event: string, payload: unknown): void {
    if (this.anyoneIn(target, except)) (this.deps.io.local.to(target).except(except).emit as UntypedEmit)(event, payload);
  }

  /** Whether an emit to `target` without `except` could reach a socket of this node. */
  private anyoneIn(target: string, except: string[]): boolean {
    const local = this.deps.io.of('/').adapter.rooms;
    const members = local.get(target);
    if (!members) return false;
    const left = except.map((room) => local.get(room));
    for (const socketId of members) if (!left.some((room) => room?.has(socketId))) return true;
    return false;
  }
}
