/**
 * Test support for the client SDK: phones wired to `@roamhq/wrtc`, a tone
 * generator for the local audio, a meter on the received audio, and waits
 * bounded by timeouts (never fixed sleeps). Everything made here is tracked
 * and closed by `cleanup()`, so the process can exit.
 */
import v8 from 'node:v8';
import vm from 'node:vm';
import wrtc from '@roamhq/wrtc';
import type { SwitchboardServer } from '../../server/src/index.js';
import { after, before } from 'node:test';
import { startTestServer, tokenFor } from '../../../test/support/server.js';
import { Phone, type Call, type CallState, type MediaRequest, type PhoneOptions } from '../src/index.js';

export const WAIT_MS = 5000;
const SAMPLE_RATE = 48_000;
const FRAME_SAMPLES = SAMPLE_RATE / 100; // 10 ms
const AMPLITUDE = 8000;

export const rtc = { RTCPeerConnection: wrtc.RTCPeerConnection, MediaStream: wrtc.MediaStream } as unknown as NonNullable<
  PhoneOptions['rtc']
>;

/** A sine tone fed to a wrtc audio source in 10 ms frames of 48 kHz 16-bit mono, in real time. */
export class Tone {
  private readonly source = new wrtc.nonstandard.RTCAudioSource();
  private readonly timer: ReturnType<typeof setInterval>;
  private readonly startedAt = Date.now();
  private sent = 0;
  readonly track: MediaStreamTrack;

  constructor(readonly frequency: number) {
    this.track = this.source.createTrack() as unknown as MediaStreamTrack;
    this.timer = setInterval(() => this.pump(), 10);
  }

  stream(): MediaStream {
    return new wrtc.MediaStream([this.track as never]) as unknown as MediaStream;
  }

  stop(): void {
    clearInterval(this.timer);
    this.track.stop();
  }

  /** Sends every frame due by now (a late timer catches up rather than drifting). */
  private pump(): void {
    // The call that owned the track has ended (and stopped it): stop generating.
    if (this.track.readyState === 'ended') return clearInterval(this.timer);
    const due = Math.floor((Date.now() - this.startedAt) / 10);
    for (; this.sent < due; this.sent++) {
      const samples = new Int16Array(FRAME_SAMPLES);
      const offset = this.sent * FRAME_SAMPLES;
      for (let i = 0; i < FRAME_SAMPLES; i++) {
        samples[i] = Math.round(AMPLITUDE * Math.sin((2 * Math.PI * this.frequency * (offset + i)) / SAMPLE_RATE));
      }
      this.source.onData({ samples, sampleRate: SAMPLE_RATE, bitsPerSample: 16, channelCount: 1, numberOfFrames: FRAME_SAMPLES });
    }
  }
}

/**
 * A fake camera: a wrtc video source sending small frames of one brightness
 * (its `luma`, 16–235) at 15 frames a second, so a receiver can tell which
 * camera it sees.
 */
export class Camera {
  static readonly WIDTH = 160;
  static readonly HEIGHT = 120;
  private readonly source = new wrtc.nonstandard.RTCVideoSource();
  private readonly timer: ReturnType<typeof setInterval>;
  private readonly frame: Uint8Array;
  readonly track: MediaStreamTrack;

  constructor(readonly luma: number) {
    this.track = this.source.createTrack() as unknown as MediaStreamTrack;
    const pixels = Camera.WIDTH * Camera.HEIGHT;
    this.frame = new Uint8Array(pixels * 1.5).fill(128); // I420: chroma neutral
    this.frame.fill(luma, 0, pixels);
    this.timer = setInterval(() => this.pump(), 1000 / 15);
  }

  stop(): void {
    clearInterval(this.timer);
    this.track.stop();
  }

  private pump(): void {
    if (this.track.readyState === 'ended') return clearInterval(this.timer);
    this.source.onFrame({ width: Camera.WIDTH, height: Camera.HEIGHT, data: this.frame });
  }
}

/** A stream of what a call asks the `media` option for: a tone made by `tone()`, a camera made by `camera()`. */
export function fakeMedia(request: MediaRequest, tone: () => Tone, camera: () => Camera): MediaStream {
  const tracks = [...(request.audio ? [tone().track] : []), ...(request.video ? [camera().track] : [])];
  return new wrtc.MediaStream(tracks as never[]) as unknown as MediaStream;
}

/** Counts the frames of a received video track through wrtc's RTCVideoSink, with the last one's size and brightness. */
export class VideoMeter {
  private readonly sink: InstanceType<typeof wrtc.nonstandard.RTCVideoSink>;
  private readonly waiters = new Set<() => void>();
  frames = 0;
  lastAt = 0;
  last: { width: number; height: number; luma: number } | null = null;

  constructor(track: MediaStreamTrack) {
    this.sink = new wrtc.nonstandard.RTCVideoSink(track as never);
    this.sink.onframe = ({ frame }: { frame: { width: number; height: number; data: Uint8Array } }) => {
      this.frames++;
      this.lastAt = Date.now();
      const pixels = frame.width * frame.height;
      let sum = 0;
      for (let i = 0; i < pixels; i += 97) sum += frame.data[i]!;
      this.last = { width: frame.width, height: frame.height, luma: Math.round(sum / Math.ceil(pixels / 97)) };
      for (const waiter of this.waiters) waiter();
    };
  }

  /** Resolves once `count` more frames have come and the last one satisfies `accept`, within `timeoutMs`. */
  more(count: number, { accept = () => true, timeoutMs = WAIT_MS }: { accept?: (m: VideoMeter) => boolean; timeoutMs?: number } = {}): Promise<void> {
    const target = this.frames + count;
    return this.waitFor(() => this.frames >= target && accept(this), timeoutMs, () => `${count} frames (${this.frames - target + count} came)`);
  }

  /** Resolves once no frame has come for `quietMs` (the sender stopped), within `timeoutMs`. */
  quiet(quietMs: number, timeoutMs = WAIT_MS): Promise<void> {
    return new Promise((resolve, reject) => {
      let check: ReturnType<typeof setTimeout>;
      const arm = () => {
        clearTimeout(check);
        check = setTimeout(finish, quietMs);
      };
      const finish = () => {
        clearTimeout(deadline);
        this.waiters.delete(arm);
        resolve();
      };
      const deadline = setTimeout(() => {
        clearTimeout(check);
        this.waiters.delete(arm);
        reject(new Error(`video did not stop for ${quietMs} ms within ${timeoutMs} ms (${this.frames} frames)`));
      }, timeoutMs);
      this.waiters.add(arm);
      arm();
    });
  }

  stop(): void {
    this.waiters.clear();
    this.sink.stop();
  }

  private waitFor(done: () => boolean, timeoutMs: number, what: () => string): Promise<void> {
    if (done()) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const check = () => {
        if (!done()) return;
        clearTimeout(timer);
        this.waiters.delete(check);
        resolve();
      };
      const timer = setTimeout(() => {
        this.waiters.delete(check);
        reject(new Error(`video: waited ${timeoutMs} ms for ${what()}; last ${JSON.stringify(this.last)}`));
      }, timeoutMs);
      this.waiters.add(check);
    });
  }
}

export interface AudioStats {
  /** Root mean square of the samples (full scale 32767; the tone is sent at RMS ≈ 5657). */
  rms: number;
  /** Frequency estimated from zero crossings, Hz. */
  frequency: number;
  /** Milliseconds of audio the window covered. */
  ms: number;
}

/** Listens to a received track through wrtc's RTCAudioSink and measures windows of it. */
export class Meter {
  private readonly sink: InstanceType<typeof wrtc.nonstandard.RTCAudioSink>;
  private window: { samples: number; sumSquares: number; crossings: number; last: number; rate: number } | null = null;
  private onWindow: ((stats: AudioStats) => void) | null = null;
  private windowMs = 0;

  constructor(stream: MediaStream) {
    const track = stream.getAudioTracks()[0];
    if (!track) throw new Error('no audio track in the remote stream');
    this.sink = new wrtc.nonstandard.RTCAudioSink(track as never);
    this.sink.ondata = (data: { samples: Int16Array; sampleRate: number; channelCount?: number }) => this.take(data);
  }

  /**
   * Measures consecutive windows of `windowMs` until one satisfies `accept`,
   * for at most `timeoutMs`; resolves with that window's stats.
   */
  until(accept: (stats: AudioStats) => boolean, { windowMs = 300, timeoutMs = WAIT_MS } = {}): Promise<AudioStats> {
    return new Promise((resolve, reject) => {
      let lastSeen: AudioStats | undefined;
      const timer = setTimeout(() => {
        this.onWindow = null;
        reject(new Error(`audio never met the condition within ${timeoutMs} ms; last window: ${JSON.stringify(lastSeen)}`));
      }, timeoutMs);
      this.windowMs = windowMs;
      this.window = null;
      this.onWindow = (stats) => {
        lastSeen = stats;
        if (!accept(stats)) return;
        clearTimeout(timer);
        this.onWindow = null;
        resolve(stats);
      };
    });
  }

  stop(): void {
    this.onWindow = null;
    this.sink.stop();
  }

  private take(data: { samples: Int16Array; sampleRate: number; channelCount?: number }): void {
    if (!this.onWindow) return;
    const w = (this.window ??= { samples: 0, sumSquares: 0, crossings: 0, last: 0, rate: data.sampleRate });
    accumulate(w, data);
    const seconds = w.samples / w.rate;
    if (seconds * 1000 < this.windowMs) return;
    this.window = null;
    this.onWindow({
      rms: Math.round(Math.sqrt(w.sumSquares / w.samples)),
      frequency: Math.round(w.crossings / 2 / seconds),
      ms: Math.round(seconds * 1000),
    });
  }
}

/** A window of received audio being measured: sample count, sum of squares, zero crossings, last sample. */
export interface AudioWindow {
  samples: number;
  sumSquares: number;
  crossings: number;
  last: number;
}

/** Folds one frame of received audio (its first channel) into `w`. */
export function accumulate(w: AudioWindow, data: { samples: Int16Array; channelCount?: number }): void {
  const channels = data.channelCount ?? 1;
  for (let i = 0; i < data.samples.length; i += channels) {
    const x = data.samples[i]!;
    w.sumSquares += x * x;
    if (x >= 0 !== w.last >= 0) w.crossings++;
    w.last = x;
    w.samples++;
  }
}

/** Within 3 % of `expected` Hz and clearly audible. */
export function isTone(expected: number): (s: AudioStats) => boolean {
  return (s) => s.rms > 2000 && Math.abs(s.frequency - expected) <= expected * 0.03;
}

/** Digital silence, give or take codec noise. */
export function isSilent(s: AudioStats): boolean {
  return s.rms < 50;
}

/** Resolves with the listener's arguments the next time `event` fires (and `accept` agrees), within `timeoutMs`. */
export function next<A extends unknown[]>(
  emitter: { once(event: never, listener: never): unknown; off(event: never, listener: never): unknown },
  event: string,
  { accept = () => true, timeoutMs = WAIT_MS }: { accept?: (...args: A) => boolean; timeoutMs?: number } = {},
): Promise<A> {
  const target = emitter as unknown as {
    on?(event: string, l: (...args: A) => void): void;
    off?(event: string, l: (...args: A) => void): void;
    addEventListener?(event: string, l: (...args: A) => void): void;
    removeEventListener?(event: string, l: (...args: A) => void): void;
  };
  const e = {
    on: (event: string, l: (...args: A) => void) => (target.on ? target.on(event, l) : target.addEventListener!(event, l)),
    off: (event: string, l: (...args: A) => void) => (target.off ? target.off(event, l) : target.removeEventListener!(event, l)),
  };
  return new Promise((resolve, reject) => {
    const listener = (...args: A) => {
      if (!accept(...args)) return;
      clearTimeout(timer);
      e.off(event, listener);
      resolve(args);
    };
    const timer = setTimeout(() => {
      e.off(event, listener);
      reject(new Error(`timed out after ${timeoutMs} ms waiting for '${event}'`));
    }, timeoutMs);
    e.on(event, listener);
  });
}

/** Resolves once `call.state` is `state` (at once if it is already). */
export async function reach(call: Call, state: CallState, timeoutMs = WAIT_MS): Promise<void> {
  if (call.state === state) return;
  await next<[CallState]>(call, 'state', { accept: (s) => s === state, timeoutMs }).catch((err: Error) => {
    throw new Error(`${err.message} (call ${call.direction} is ${call.state}, wanted ${state})`);
  });
}

/** Resolves once the peer connection's signalling is `stable` (no offer awaiting its answer). */
export async function stable(pc: RTCPeerConnection | undefined, timeoutMs = WAIT_MS): Promise<void> {
  if (!pc) throw new Error('no peer connection');
  if (pc.signalingState === 'stable') return;
  await next(pc as never, 'signalingstatechange', { accept: () => pc.signalingState === 'stable', timeoutMs });
}

/** The ICE username fragment of a description: it changes with every ICE restart. */
export function ufrag(description: RTCSessionDescription | null | undefined): string | undefined {
  return /a=ice-ufrag:(\S+)/.exec(description?.sdp ?? '')?.[1];
}

/** Records every state a call goes through. */
export function statesOf(call: Call): CallState[] {
  const seen: CallState[] = [call.state];
  call.on('state', (s) => seen.push(s));
  return seen;
}

/** Makes phones and tones for one test file, and closes them all. */
export class Lab {
  readonly phones: Phone[] = [];
  readonly tones: Tone[] = [];
  readonly meters: Meter[] = [];
  readonly calls: Call[] = [];
  readonly cameras: Camera[] = [];
  readonly videoMeters: VideoMeter[] = [];

  constructor(public server: SwitchboardServer) {}

  /** A phone for `userId` whose every call sends a fresh tone at `frequency` Hz. */
  phone(userId: string, frequency = 440, options: Partial<PhoneOptions> = {}): Phone {
    const phone = new Phone({
      url: this.server.url,
      token: () => tokenFor(userId),
      rtc,
      media: async (request) =>
        fakeMedia(
          request,
          () => this.tone(frequency),
          () => this.camera((frequency % 200) + 30),
        ),
      socket: { transports: ['websocket'] },
      requestTimeoutMs: WAIT_MS,
      ...options,
    });
    this.phones.push(phone);
    phone.on('incoming', (call) => this.calls.push(call));
    return phone;
  }

  async online(userId: string, frequency = 440, options: Partial<PhoneOptions> = {}): Promise<Phone> {
    const phone = this.phone(userId, frequency, options);
    await phone.connect();
    return phone;
  }

  /** Two phones online, the first seeing the second (the tone of each as `online` takes it). */
  async onlinePair(first: string, firstHz: number, second: string, secondHz: number): Promise<[Phone, Phone]> {
    const a = await this.online(first, firstHz);
    const b = await this.online(second, secondHz);
    await this.sees(a, second);
    return [a, b];
  }

  /** Resolves once `phone.users` lists `userId`. */
  async sees(phone: Phone, userId: string): Promise<void> {
    if (phone.users.has(userId)) return;
    await next<[ReadonlyMap<string, unknown>]>(phone, 'presence', { accept: (users) => users.has(userId) });
  }

  /** A tone of `frequency` Hz, stopped by `cleanup()`. */
  tone(frequency: number): Tone {
    const tone = new Tone(frequency);
    this.tones.push(tone);
    return tone;
  }

  /** A fake camera of brightness `luma`, stopped by `cleanup()`. */
  camera(luma: number): Camera {
    const camera = new Camera(luma);
    this.cameras.push(camera);
    return camera;
  }

  /** A frame counter on the video track of `stream` (the remote stream of a call). */
  videoMeter(stream: MediaStream | undefined): VideoMeter {
    const track = stream?.getVideoTracks()[0];
    if (!track) throw new Error('no video track in the stream');
    const meter = new VideoMeter(track);
    this.videoMeters.push(meter);
    return meter;
  }

  meter(stream: MediaStream | undefined): Meter {
    if (!stream) throw new Error('no remote stream yet');
    const meter = new Meter(stream);
    this.meters.push(meter);
    return meter;
  }

  track(call: Call): Call {
    this.calls.push(call);
    return call;
  }

  /** Places a call and answers it on `callee`; resolves once both sides are `connected`. */
  async connectedCall(caller: Phone, callee: Phone): Promise<{ outgoing: Call; incoming: Call }> {
    const ringing = next<[Call]>(callee, 'incoming');
    const outgoing = this.track(await caller.call(callee.user!.id));
    const [incoming] = await ringing;
    await incoming.accept();
    await Promise.all([reach(outgoing, 'connected'), reach(incoming, 'connected')]);
    return { outgoing, incoming };
  }

  /** Remote stream of `call`, waiting for it if it has not arrived yet. */
  async remoteStream(call: Call): Promise<MediaStream> {
    if (call.remoteStream) return call.remoteStream;
    const [stream] = await next<[MediaStream]>(call, 'remoteStream');
    return stream;
  }

  cleanup(): void {
    for (const meter of this.meters.splice(0)) meter.stop();
    for (const meter of this.videoMeters.splice(0)) meter.stop();
    for (const camera of this.cameras.splice(0)) camera.stop();
    for (const phone of this.phones.splice(0)) phone.disconnect();
    for (const call of this.calls.splice(0)) call.peerConnection?.close();
    for (const tone of this.tones.splice(0)) tone.stop();
  }
}

/**
 * A `Lab` for a `describe` block: a test server started (with `env`) before
 * its tests, and everything the lab made closed after them, the server too.
 */
export function labSuite(env: Record<string, string> = {}): Lab {
  const lab = new Lab(undefined as unknown as SwitchboardServer);
  before(async () => {
    lab.server = await startTestServer(env);
  });
  after(async () => {
    lab.cleanup();
    await lab.server?.close();
    await collectGarbage();
  });
  return lab;
}

/**
 * Collects the wrtc objects a test let go of. wrtc 0.10 crashes the process
 * at exit (SIGSEGV in a native finalizer run during environment teardown) when
 * a track of an RTCAudioSource is still uncollected then; collected earlier,
 * while the process runs, its finalizer is harmless.
 */
export async function collectGarbage(): Promise<void> {
  v8.setFlagsFromString('--expose_gc');
  const gc = vm.runInNewContext('gc') as () => void;
  for (let i = 0; i < 4; i++) {
    gc();
    await new Promise((resolve) => setImmediate(resolve));
  }
}
