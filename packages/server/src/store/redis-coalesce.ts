/**
 * Write coalescing for Redis connections: every command a connection sends
 * within one turn of the event loop leaves in one write. The connection's
 * socket is corked at the turn's first command and uncorked once the turn's
 * I/O callbacks have run (`setImmediate`), so the commands of every socket
 * event read in that turn (a call's commit, another call's relay publish)
 * share one system call, and Redis answers them in one read.
 *
 * This is what ioredis's auto-pipelining promises, without its cost. It
 * builds a `Pipeline` per batch, and the `Pipeline` constructor defines a
 * `length` accessor on each instance: V8 keeps that accessor's closure,
 * which holds the pipeline, in a hidden class in the old generation. Every
 * command and reply of the batch is then reachable from the old generation
 * at the next scavenge, survives it and is promoted, to be freed only by a
 * mark-compact. Under the bench's load a node promoted 8–9% of what it
 * allocated, against under 1% this way, and spent 14–18% of its CPU
 * collecting garbage, against 8–10% (docs/benchmarks.md, 2026-12-06).
 * ioredis 6.1 still does it; no pipeline is used here.
 *
 * A command issued while the connection is not ready goes through ioredis
 * as before (rejected at once, or queued by ioredis where an offline queue
 * is on): only writes to an open socket are held, for less than a turn.
 */
import type { Socket } from 'node:net';
import { Cluster, Redis } from 'ioredis';

type Command = Parameters<Redis['sendCommand']>[0];
type CommandStream = Parameters<Redis['sendCommand']>[1];

/** Sockets corked until the end of this turn of the event loop. */
class TurnCork {
  private held: Socket[] | null = null;
  private readonly release = () => {
    const held = this.held ?? [];
    this.held = null;
    for (const socket of held) socket.uncork();
  };

  /** Corks the sockets `open()` gives, once per turn; they are uncorked after the turn's I/O callbacks. */
  hold(open: () => Iterable<Socket | undefined>): void {
    if (this.held) return;
    const held: Socket[] = [];
    for (const socket of open()) {
      if (socket && !socket.destroyed) {
        socket.cork();
        held.push(socket);
      }
    }
    if (held.length === 0) return;
    this.held = held;
    setImmediate(this.release);
  }
}

/** One Redis, or a master behind Sentinel, whose commands of one turn leave in one write. */
export class CoalescingRedis extends Redis {
  private readonly cork = new TurnCork();

  override sendCommand(command: Command, stream?: CommandStream): unknown {
    // Not while the connection is opening: its hand-shake goes out as ioredis writes it.
    if (this.status === 'ready') this.cork.hold(() => [this.stream as Socket]);
    return super.sendCommand(command, stream);
  }
}

/**
 * A Redis Cluster whose commands of one turn leave in one write per node:
 * a command's node is chosen inside ioredis, so every node's socket is
 * corked for the turn (uncorking one nothing was written to costs nothing).
 */
export class CoalescingCluster extends Cluster {
  private readonly cork = new TurnCork();

  override sendCommand(command: Command, stream?: CommandStream, node?: unknown): unknown {
    if (this.status === 'ready') this.cork.hold(() => this.nodes('all').map((n) => (n.status === 'ready' ? (n.stream as Socket) : undefined)));
    return super.sendCommand(command, stream, node);
  }
}
