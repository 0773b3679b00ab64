/**
 * Write coalescing on a real loopback TCP socket: what is written after an
 * Engine.IO flush within one tick reaches the kernel as one `writev`, in order;
 * a polling transport is left alone.
 */
import assert from 'node:assert/strict';
import { EventEmitter, once } from 'node:events';
import { createServer, connect, type Server, type Socket } from 'node:net';
import { after, before, describe, test } from 'node:test';
import { coalesceWrites } from './coalesce.js';

/** Counts how the socket hands its data to the kernel: `_write` is one chunk, `_writev` several at once. */
function countWrites(tcp: Socket): { single: number; vectored: number[] } {
  const seen = { single: 0, vectored: [] as number[] };
  const internals = tcp as unknown as {
    _write(chunk: unknown, encoding: string, cb: () => void): void;
    _writev(chunks: unknown[], cb: () => void): void;
  };
  const write = internals._write.bind(tcp);
  const writev = internals._writev.bind(tcp);
  internals._write = (chunk, encoding, cb) => {
    seen.single++;
    write(chunk, encoding, cb);
  };
  internals._writev = (chunks, cb) => {
    seen.vectored.push(chunks.length);
    writev(chunks, cb);
  };
  return seen;
}

/** An Engine.IO connection as far as `coalesceWrites` sees one: a transport that holds a TCP socket, and `flush` events. */
function engineConn(tcp: Socket, transport: 'websocket' | 'polling') {
  return Object.assign(new EventEmitter(), { transport: { name: transport, socket: { _socket: tcp } } });
}

describe('write coalescing', () => {
  let server: Server;
  let received: Buffer[] = [];
  let client: Socket;

  before(async () => {
    server = createServer((peer) => peer.on('data', (chunk: Buffer) => received.push(chunk)));
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
  });
  after(async () => {
    client?.destroy();
    server.close();
  });

  async function fresh(): Promise<Socket> {
    client?.destroy();
    received = [];
    const { port } = server.address() as { port: number };
    client = connect(port, '127.0.0.1');
    await once(client, 'connect');
    return client;
  }

  /** A fresh TCP socket under a fake Engine.IO connection of `transport`, coalescing, just flushed. */
  async function flushed(transport: 'websocket' | 'polling') {
    const tcp = await fresh();
    const seen = countWrites(tcp);
    const conn = engineConn(tcp, transport);
    coalesceWrites(conn);
    conn.emit('flush');
    return { tcp, seen, conn };
  }

  async function receivedText(length: number): Promise<string> {
    const deadline = Date.now() + 5000;
    while (Buffer.concat(received).length < length) {
      if (Date.now() > deadline) throw new Error(`only ${Buffer.concat(received).length} of ${length} bytes arrived`);
      await new Promise((resolve) => setImmediate(resolve));
    }
    return Buffer.concat(received).toString();
  }

  test('frames written after a flush in one tick go out in one writev, in order', async () => {
    const { tcp, seen, conn } = await flushed('websocket');
    const frames = ['offer;', 'ice-1;', 'ice-2;', 'ice-3;', 'ice-4;'];
    for (const frame of frames) tcp.write(frame);
    assert.equal(seen.single + seen.vectored.length, 0, 'nothing is written while corked');
    assert.equal(await receivedText(frames.join('').length), frames.join(''));
    assert.deepEqual(seen, { single: 0, vectored: [frames.length] });

    // A second flush in a later tick corks again: one more writev, not one per frame.
    conn.emit('flush');
    tcp.write('answer;');
    tcp.write('ice-5;');
    assert.equal(await receivedText(frames.join('').length + 13), `${frames.join('')}answer;ice-5;`);
    assert.deepEqual(seen.vectored, [frames.length, 2]);
  });

  test('a polling transport is not corked', async () => {
    const { tcp, seen } = await flushed('polling');
    tcp.write('a;');
    assert.equal(seen.single, 1, 'written at once');
    assert.equal(await receivedText(2), 'a;');
  });
});
