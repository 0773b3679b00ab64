/**
 * Presence and visibility. A may see (and call) B when both are in the same
 * tenant and, with CONTACTS=claims, B is in A's contacts. A user A may not see
 * is, to A, exactly an offline one.
 */
import type { PresenceStatus, PresenceUser, ServerToClientEvents, UserId } from '@switchboard/protocol';
import { userKey, type UserKey } from '../calls/types.js';
import type { Deps, SbSocket, SessionInfo } from './context.js';
import { tellLocal } from './delivery.js';
import { rooms } from './context.js';
import type { RoomEntry } from './session-mail.js';

export class Presence {
  /** Announcements from other nodes being checked against the store; those that came after wait behind them. */
  private tail: Promise<void> | null = null;

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
    this.announce(target, [except], 'user:online', { user: { id: session.userId, name: session.name } }, session.key);
  }

  announceOffline(session: Pick<SessionInfo, 'tenant' | 'key' | 'userId'>, lastSeen: number): void {
    const [target, except] = this.audience(session);
    this.announce(target, [except], 'user:offline', { userId: session.userId as UserId, lastSeen }, session.key);
  }

  /**
   * Tells this node's sockets in `room` what another node announced to it,
   * in the order it came. A user's `user:online` or `user:offline` is told
   * only if the store still says so when it arrives: two nodes' announcements
   * of one user (the last session gone on one, a first new one on another)
   * can reach a third in either order, and the stale one, told last, would
   * show watchers the user wrong until their next `user:list`. The store's
   * answer is read after the announcement arrived, and the last change of a
   * user's presence is announced after it was made, so what watchers are
   * told last agrees with the store. Should the store not answer, everything
   * is told as it came.
   */
  receive(room: string, entries: readonly RoomEntry[]): void {
    if (this.tail === null && !entries.some((entry) => subjectOf(entry) !== undefined)) {
      this.tellAll(room, entries, null);
      return;
    }
    const next = (this.tail ?? Promise.resolve())
      .then(() => this.tellChecked(room, entries))
      .catch((err: unknown) => this.deps.logger.warn({ err, room }, 'presence from another node could not be told'));
    this.tail = next;
    void next.finally(() => {
      if (this.tail === next) this.tail = null;
    });
  }

  private async tellChecked(room: string, entries: readonly RoomEntry[]): Promise<void> {
    const subjects = [...new Set(entries.map(subjectOf).filter((s) => s !== undefined))];
    let online: Map<UserKey, boolean> | null = null;
    try {
      const found = await this.deps.store.areOnline(subjects);
      online = new Map(subjects.map((s, i) => [s, found[i]!]));
    } catch (err) {
      this.deps.logger.warn({ err }, 'presence from another node told unchecked: the store did not answer');
    }
    this.tellAll(room, entries, online);
  }

  /** Each entry to this node's sockets of `room`, but a presence that `online` (the store, just read) contradicts. */
  private tellAll(room: string, entries: readonly RoomEntry[], online: ReadonlyMap<UserKey, boolean> | null): void {
    for (const entry of entries) {
      const [except, event, payload] = entry;
      const subject = subjectOf(entry);
      if (online && subject !== undefined && online.get(subject) !== (event === 'user:online')) continue;
      tellLocal(this.deps.io, room, except, event, payload);
    }
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
    subject?: UserKey,
  ): void {
    this.deps.delivery.announce(target, except, event, payload, subject);
  }
}

/** The user whose presence an announcement from another node is about, if it is one (`user:online`, `user:offline`). */
function subjectOf([, event, , subject]: RoomEntry): UserKey | undefined {
  return typeof subject === 'string' && (event === 'user:online' || event === 'user:offline') ? subject : undefined;
}
