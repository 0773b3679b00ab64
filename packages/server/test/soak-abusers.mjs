// The abusers of soak.test.ts, in a worker thread of their own so that their
// flooding loops do not share an event loop with the server they flood.
//
// workerData: { url, seconds, abusers: [{ id, tenant, token, flood: 'ice' | 'request', obey, callee? }] }
// posts back: { type: 'ready' } once every abuser is signed in (and ICE pairs are in their calls),
// then { type: 'done', stats: [{ id, flood, obey, sent, limited, cuts, resumes, freshSignIns, capped }] }
// after the flood; then it disconnects every socket and ends.
import { parentPort, workerData } from 'node:worker_threads';
import { randomUUID } from 'node:crypto';
import { io } from 'socket.io-client';

const { url, seconds, abusers } = workerData;
/** An abuser that ignores the limits sends this many events every FLOOD_EVERY_MS (2000 a second) while connected. */
const BATCH = 20;
const FLOOD_EVERY_MS = 10;
/** One that obeys sends bursts of this many (acked), and backs off OBEY_BACKOFF_MS when one is refused. */
const OBEY_BURST = 20;
const OBEY_BACKOFF_MS = 1000;
/** Cut, it comes back after about two seconds (a stock Socket.IO client waits one to five). */
const COME_BACK_MS = 2000;
const START_SPREAD_MS = 1000;

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/** Opens a socket; `prepare` attaches listeners before anything can arrive (auth:success follows connect at once). */
function open(auth, prepare) {
  const socket = io(url, { transports: ['websocket'], reconnection: false, forceNew: true, auth, timeout: 10_000 });
  prepare(socket);
  return new Promise((resolve) => {
    socket.once('connect', () => resolve(socket));
    socket.once('connect_error', () => (socket.close(), resolve(null)));
  });
}

function once(socket, events, timeoutMs = 10_000) {
  return new Promise((resolve) => {
    const timer = setTimeout(() => done('timeout'), timeoutMs);
    const handlers = events.map((event) => [event, (payload) => done(event, payload)]);
    function done(event, payload) {
      clearTimeout(timer);
      for (const [e, h] of handlers) socket.off(e, h);
      socket.off('disconnect', onDisconnect);
      resolve({ event, payload });
    }
    const onDisconnect = () => done('disconnect');
    for (const [e, h] of handlers) socket.on(e, h);
    socket.on('disconnect', onDisconnect);
  });
}

class Abuser {
  constructor(spec) {
    this.spec = spec;
    this.socket = null;
    this.sessionId = null;
    /** Whom it calls: the abusers of its own tenant. */
    this.peers = abusers.filter((a) => a.tenant === spec.tenant && a.id !== spec.id).map((a) => a.id);
    this.callId = null;
    this.stats = { id: spec.id, flood: spec.flood, obey: spec.obey, sent: 0, limited: 0, cuts: 0, resumes: 0, freshSignIns: 0, capped: 0, failedResumes: {}, cutReasons: {} };
  }

  watch(socket) {
    socket.on('disconnect', (reason) => {
      // Closed by the server (not by this abuser): a cut.
      if (reason !== 'io client disconnect') {
        this.stats.cuts++;
        this.stats.cutReasons[reason] = (this.stats.cutReasons[reason] ?? 0) + 1;
      }
    });
    socket.on('reconnect:failed', ({ reason }) => (this.stats.failedResumes[reason] = (this.stats.failedResumes[reason] ?? 0) + 1));
    socket.on('call:error', (e) => {
      if (e.code === 'rate_limited') this.stats.limited++;
    });
    socket.on('auth:error', (e) => {
      if (e.code === 'rate_limited') this.stats.capped++;
    });
    socket.on('call:incoming', ({ callId }) => {
      this.callId = callId;
      socket.emit('call:accept', { callId });
    });
    socket.on('call:accepted', ({ callId }) => (this.callId = callId));
  }

  async signIn() {
    let answer;
    const socket = await open({ token: this.spec.token }, (s) => {
      this.watch(s);
      answer = once(s, ['auth:success', 'auth:error']);
    });
    if (!socket) return false;
    answer = await answer;
    if (answer.event !== 'auth:success') {
      socket.close();
      return false;
    }
    this.socket = socket;
    this.sessionId = answer.payload.sessionId;
    return true;
  }

  /** After a cut: resume the session; failing that, sign in afresh on the same socket. */
  async comeBack(deadline) {
    while (Date.now() < deadline) {
      await sleep(COME_BACK_MS * (0.5 + Math.random()));
      const socket = await open({}, (s) => this.watch(s));
      if (!socket) continue;
      socket.emit('reconnect:attempt', { token: this.spec.token, sessionId: this.sessionId });
      let answer = await once(socket, ['reconnect:success', 'reconnect:failed']);
      if (answer.event === 'reconnect:success') {
        this.stats.resumes++;
        this.socket = socket;
        return true;
      }
      if (answer.event === 'reconnect:failed') {
        socket.emit('auth:handshake', { token: this.spec.token });
        answer = await once(socket, ['auth:success', 'auth:error']);
        if (answer.event === 'auth:success') {
          this.stats.freshSignIns++;
          this.sessionId = answer.payload.sessionId;
          this.socket = socket;
          return true;
        }
      }
      socket.close();
    }
    return false;
  }

  event() {
    if (this.spec.flood === 'ice') {
      return ['webrtc:ice-candidate', { callId: this.callId ?? randomUUID(), candidate: { candidate: `candidate:${this.stats.sent} 1 udp 2122260223 10.0.0.9 ${50000 + (this.stats.sent % 10000)} typ host`, sdpMid: '0', sdpMLineIndex: 0 } }];
    }
    const peers = this.peers;
    return ['call:request', { to: peers[Math.floor(Math.random() * peers.length)] }];
  }

  async flood(deadline) {
    // Abusers do not all start on the same millisecond: within the first second.
    await sleep(Math.random() * START_SPREAD_MS);
    while (Date.now() < deadline) {
      const socket = this.socket;
      if (!socket || !socket.connected) {
        this.socket = null;
        if (!(await this.comeBack(deadline))) return;
        continue;
      }
      if (this.spec.obey) {
        // Greedy but well-behaved: a burst, then it reads the answers and backs off when told rate_limited.
        const burst = Array.from({ length: OBEY_BURST }, () => {
          const [event, payload] = this.event();
          this.stats.sent++;
          return socket.timeout(10_000).emitWithAck(event, payload).catch(() => null);
        });
        const acks = await Promise.all(burst);
        const refused = acks.filter((a) => a && !a.ok && a.error.code === 'rate_limited').length;
        if (refused > 0) {
          this.stats.limited += refused;
          await sleep(OBEY_BACKOFF_MS);
        }
      } else {
        // Ignores every answer: a batch of events every few milliseconds, no acks.
        for (let i = 0; i < BATCH; i++) {
          const [event, payload] = this.event();
          socket.emit(event, payload);
          this.stats.sent++;
        }
        await sleep(FLOOD_EVERY_MS);
      }
    }
  }

  close() {
    this.socket?.disconnect();
  }
}

const all = abusers.map((spec) => new Abuser(spec));
// Sign in (a few at a time), then put the ICE pairs in their calls.
for (let i = 0; i < all.length; i += 20) await Promise.all(all.slice(i, i + 20).map((a) => a.signIn()));
await Promise.all(
  all
    .filter((a) => a.spec.callee && a.socket)
    .map(async (a) => {
      // The callee accepts on call:incoming (see watch), so it knows the callId before the caller hears accepted.
      const accepted = once(a.socket, ['call:accepted'], 5000);
      a.socket.emit('call:request', { to: a.spec.callee });
      await accepted;
    }),
);
parentPort.postMessage({ type: 'ready', signedIn: all.filter((a) => a.socket).length, inCalls: all.filter((a) => a.callId).length });
const deadline = Date.now() + seconds * 1000;
await Promise.all(all.map((a) => a.flood(deadline)));
parentPort.postMessage({ type: 'done', stats: all.map((a) => a.stats) });
// Deliberate disconnects; the thread ends by itself once every socket has closed.
all.forEach((a) => a.close());
