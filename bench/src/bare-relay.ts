/**
 * The bench's baseline: the least a Socket.IO server must do to carry the same
 * calls. No validation, no state machine, no store, no presence list, no
 * timers: auth is a plain `userId` in the handshake `auth`, each socket joins a
 * room named after its user, and events are forwarded to the peer's room. The
 * one piece of state is a routing table callId → the two user ids (without it,
 * `call:accept { callId }` could not be routed), dropped at `call:end`.
 *
 * Run as its own process: PORT, HOST; prints `{"msg":"bare relay listening","port":N}`.
 * HTTP: `GET /healthz`, `GET /memory` (process.memoryUsage() as JSON) and
 * `GET /loop` (the longest event-loop delay since the last read, in ms, as
 * Switchboard's `/metrics` reports it: a 10 ms `monitorEventLoopDelay`, reset on read).
 */
import { randomUUID } from 'node:crypto';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { Server, type Socket } from 'socket.io';

type Payload = Record<string, unknown> & { callId?: string };
type AckFn = (response: object) => void;

const calls = new Map<string, { caller: string; callee: string; answeredAt: number }>();

const loopDelay = monitorEventLoopDelay({ resolution: 10 });
loopDelay.enable();

const http = createServer((req, res) => {
  if (req.url === '/healthz') {
    res.writeHead(200, { 'content-type': 'text/plain' }).end('ok');
  } else if (req.url === '/memory') {
    res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(process.memoryUsage()));
  } else if (req.url === '/loop') {
    res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ maxMs: loopDelay.max / 1e6 }));
    loopDelay.reset();
  } else {
    res.writeHead(404).end();
  }
});
const io = new Server(http, { serveClient: false });

io.use((socket, next) => {
  const userId = (socket.handshake.auth as { userId?: unknown }).userId;
  if (typeof userId !== 'string' || userId.length === 0) return next(new Error('userId required'));
  next();
});

function ackOf(args: unknown[]): AckFn | undefined {
  const last = args[args.length - 1];
  return typeof last === 'function' ? (last as AckFn) : undefined;
}

io.on('connection', (socket: Socket) => {
  const auth = socket.handshake.auth as { userId: string; name?: string; watch?: string[] };
  const userId = auth.userId;
  const user = { id: userId, name: auth.name ?? userId };
  const rooms = [userId, ...(Array.isArray(auth.watch) ? auth.watch.map((w) => `watch:${w}`) : [])];
  void socket.join(rooms);
  socket.emit('auth:success', { user, sessionId: socket.id, iceServers: [], ringTimeoutMs: 30_000 });
  socket.to(`watch:${userId}`).emit('user:online', { user });

  const peerOf = (callId: unknown): string | undefined => {
    const call = typeof callId === 'string' ? calls.get(callId) : undefined;
    return call ? (call.caller === userId ? call.callee : call.caller) : undefined;
  };

  socket.on('call:request', (p: Payload & { to: string; media?: unknown }, ...rest: unknown[]) => {
    const callId = typeof p.callId === 'string' ? p.callId : randomUUID();
    calls.set(callId, { caller: userId, callee: p.to, answeredAt: 0 });
    socket.to(p.to).emit('call:incoming', { callId, from: user, media: p.media ?? { audio: true, video: false }, timeoutMs: 30_000 });
    ackOf(rest)?.({ ok: true, callId });
  });
  socket.on('call:accept', (p: Payload, ...rest: unknown[]) => {
    const call = typeof p.callId === 'string' ? calls.get(p.callId) : undefined;
    if (call) {
      call.answeredAt = Date.now();
      socket.to(call.caller).emit('call:accepted', { callId: p.callId, by: user });
    }
    ackOf(rest)?.({ ok: true, callId: p.callId });
  });
  for (const event of ['webrtc:offer', 'webrtc:answer'] as const) {
    socket.on(event, (p: Payload & { sdp: unknown }, ...rest: unknown[]) => {
      const peer = peerOf(p.callId);
      if (peer) socket.to(peer).emit(event, { callId: p.callId, from: userId, sdp: p.sdp });
      ackOf(rest)?.({ ok: true });
    });
  }
  socket.on('webrtc:ice-candidate', (p: Payload & { candidate: unknown }, ...rest: unknown[]) => {
    const peer = peerOf(p.callId);
    if (peer) socket.to(peer).emit('webrtc:ice-candidate', { callId: p.callId, from: userId, candidate: p.candidate });
    ackOf(rest)?.({ ok: true });
  });
  for (const event of ['call:mute', 'call:unmute', 'call:hold', 'call:resume'] as const) {
    socket.on(event, (p: Payload, ...rest: unknown[]) => {
      const peer = peerOf(p.callId);
      if (peer) socket.to(peer).emit(event, { callId: p.callId, userId });
      ackOf(rest)?.({ ok: true, callId: p.callId });
    });
  }
  socket.on('call:end', (p: Payload, ...rest: unknown[]) => {
    const call = typeof p.callId === 'string' ? calls.get(p.callId) : undefined;
    if (call) {
      calls.delete(p.callId!);
      const peer = call.caller === userId ? call.callee : call.caller;
      const durationMs = call.answeredAt ? Date.now() - call.answeredAt : 0;
      socket.to(peer).emit('call:ended', { callId: p.callId, reason: 'hangup', by: user, durationMs });
    }
    ackOf(rest)?.({ ok: true, callId: p.callId });
  });
});

http.listen(Number(process.env.PORT ?? 0), process.env.HOST ?? '127.0.0.1', () => {
  const { port } = http.address() as AddressInfo;
  process.stdout.write(`${JSON.stringify({ level: 30, msg: 'bare relay listening', port })}\n`);
});

const stop = () => {
  io.close();
  setTimeout(() => process.exit(0), 500).unref();
};
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
