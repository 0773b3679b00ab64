/**
 * A TCP proxy on loopback in front of a server, whose connections can be
 * frozen: bytes stop flowing both ways, yet neither end sees a close or an
 * error — a half-open connection, as a network change or a NAT that forgot
 * its mapping leaves behind. Connections opened after a freeze pass.
 */
import { once } from 'node:events';
import { type Server, type Socket, createConnection, createServer } from 'node:net';

interface Pair {
  client: Socket;
  upstream: Socket;
  frozen: boolean;
}

export class FreezingProxy {
  private readonly pairs = new Set<Pair>();

  private constructor(
    private readonly server: Server,
    readonly url: string,
  ) {}

  /** A proxy to `target` (`http://127.0.0.1:port`) on a free loopback port. */
  static async start(target: string): Promise<FreezingProxy> {
    const { hostname, port } = new URL(target);
    let proxy: FreezingProxy | undefined;
    const server = createServer((client) => proxy!.pipe(client, createConnection({ host: hostname, port: Number(port) })));
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    const address = server.address() as { port: number };
    proxy = new FreezingProxy(server, `http://127.0.0.1:${address.port}`);
    return proxy;
  }

  /** Connections open now. */
  get open(): number {
    return [...this.pairs].filter((p) => !p.frozen).length;
  }

  /** Every connection open now goes silent both ways, without a close. */
  freeze(): void {
    for (const pair of this.pairs) pair.frozen = true;
  }

  async close(): Promise<void> {
    for (const { client, upstream } of this.pairs) {
      client.destroy();
      upstream.destroy();
    }
    this.pairs.clear();
    this.server.close();
    await once(this.server, 'close');
  }

  private pipe(client: Socket, upstream: Socket): void {
    const pair: Pair = { client, upstream, frozen: false };
    this.pairs.add(pair);
    const forward = (from: Socket, to: Socket) =>
      from.on('data', (chunk: Buffer) => {
        if (!pair.frozen) to.write(chunk);
      });
    forward(client, upstream);
    forward(upstream, client);
    const drop = () => {
      this.pairs.delete(pair);
      client.destroy();
      upstream.destroy();
    };
    for (const socket of [client, upstream]) {
      socket.on('error', drop);
      // A frozen connection hides its far end's close too: only an unfrozen one passes it on.
      socket.on('close', () => (pair.frozen ? socket.destroy() : drop()));
    }
  }
}
