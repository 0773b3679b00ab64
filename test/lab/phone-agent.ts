/**
 * A phone agent: one SDK `Phone` on @roamhq/wrtc, sending a sine `Tone`,
 * run as a child process inside a phone's network namespace by `LabPhone`:
 *
 *   ip netns exec <ns> node --conditions=source --import tsx test/lab/phone-agent.ts
 *
 * It reads commands as JSON lines on stdin and writes replies and events as
 * JSON lines on stdout (see agent-protocol.ts): the phone's and the call's
 * states, the end of a call, whether the expected tone is heard (windows of
 * the received audio), and the selected ICE candidate pair. It holds one call
 * at a time. It exits on `exit`, or when its stdin closes.
 */
import { createInterface } from 'node:readline';
import wrtc from '@roamhq/wrtc';
import { Phone, type Call } from '../../packages/client/src/index.js';
import { Camera, Tone, accumulate, collectGarbage, fakeMedia, isTone, rtc } from '../../packages/client/test/support.js';
import type { AgentCommand, AgentEvent, AgentMessage, AudioCounters, CandidateInfo, ConnectCommand, SelectedPair, StatsResult } from './agent-protocol.js';

const WINDOW_MS = 100;
/** No video frame for this long: the peer's video has stopped (the fake camera sends 15 a second). */
const VIDEO_GAP_MS = 500;
const PAIR_POLL_MS = 1000;

type Unstamped<E> = E extends unknown ? Omit<E, 't'> : never;

function send(message: AgentMessage): void {
  process.stdout.write(JSON.stringify(message) + '\n');
}

function emit(event: Unstamped<AgentEvent>): void {
  send({ ...event, t: Date.now() } as AgentEvent);
}

/** Windows of the received audio, told as changes of "the expected tone is heard", and counted. */
class AudioMonitor {
  private readonly sink: InstanceType<typeof wrtc.nonstandard.RTCAudioSink>;
  private window = { samples: 0, sumSquares: 0, crossings: 0, last: 0 };
  private present: boolean | null = null;
  readonly counters: AudioCounters = { windows: 0, toneWindows: 0, windowMs: WINDOW_MS };

  constructor(stream: MediaStream, expected: number) {
    const track = stream.getAudioTracks()[0];
    if (!track) throw new Error('no audio track in the remote stream');
    const heard = isTone(expected);
    this.sink = new wrtc.nonstandard.RTCAudioSink(track as never);
    this.sink.ondata = (data: { samples: Int16Array; sampleRate: number; channelCount?: number }) => {
      const stats = this.take(data);
      if (stats) this.judge(heard(stats), stats);
    };
  }

  stop(): void {
    this.sink.stop();
  }

  private take(data: { samples: Int16Array; sampleRate: number; channelCount?: number }): { rms: number; frequency: number; ms: number } | null {
    const w = this.window;
    accumulate(w, data);
    const seconds = w.samples / data.sampleRate;
    if (seconds * 1000 < WINDOW_MS) return null;
    this.window = { samples: 0, sumSquares: 0, crossings: 0, last: w.last };
    return { rms: Math.round(Math.sqrt(w.sumSquares / w.samples)), frequency: Math.round(w.crossings / 2 / seconds), ms: seconds * 1000 };
  }

  private judge(tone: boolean, stats: { rms: number; frequency: number }): void {
    this.counters.windows++;
    if (tone) this.counters.toneWindows++;
    if (tone === this.present) return;
    this.present = tone;
    emit({ event: 'audio', present: tone, rms: stats.rms, frequency: stats.frequency });
  }
}

/** Frames of the peer's video, told as changes of "frames come" (one within `VIDEO_GAP_MS`). */
class VideoMonitor {
  private readonly sink: InstanceType<typeof wrtc.nonstandard.RTCVideoSink>;
  private readonly check: ReturnType<typeof setInterval>;
  private lastAt = 0;
  private present = false;
  frames = 0;

  constructor(track: MediaStreamTrack) {
    this.sink = new wrtc.nonstandard.RTCVideoSink(track as never);
    this.sink.onframe = () => {
      this.frames++;
      this.lastAt = Date.now();
      if (!this.present) this.change(true);
      if (this.frames % 15 === 0) emit({ event: 'video-frames', frames: this.frames });
    };
    this.check = setInterval(() => {
      if (this.present && Date.now() - this.lastAt > VIDEO_GAP_MS) this.change(false);
    }, VIDEO_GAP_MS / 5);
  }

  stop(): void {
    clearInterval(this.check);
    this.sink.stop();
  }

  private change(present: boolean): void {
    this.present = present;
    emit({ event: 'video', present, frames: this.frames });
  }
}

/** The selected candidate pair of `pc`, from its standard stats; null before one is chosen. */
async function selectedPair(pc: RTCPeerConnection): Promise<SelectedPair | null> {
  const report = await pc.getStats();
  const stats = [...(report as unknown as Map<string, Record<string, unknown>>).values()];
  const byId = new Map(stats.map((s) => [s.id as string, s]));
  const pairId = stats.find((s) => s.type === 'transport' && typeof s.selectedCandidatePairId === 'string')?.selectedCandidatePairId;
  const pair =
    (typeof pairId === 'string' ? byId.get(pairId) : undefined) ??
    stats.find((s) => s.type === 'candidate-pair' && s.nominated === true && s.state === 'succeeded');
  if (!pair) return null;
  const local = byId.get(pair.localCandidateId as string);
  const remote = byId.get(pair.remoteCandidateId as string);
  return local && remote ? { local: candidate(local), remote: candidate(remote) } : null;
}

function candidate(s: Record<string, unknown>): CandidateInfo {
  const info: CandidateInfo = {
    type: String(s.candidateType),
    protocol: String(s.protocol),
    address: String(s.address ?? s.ip),
    port: Number(s.port),
  };
  if (typeof s.relayProtocol === 'string') info.relayProtocol = s.relayProtocol;
  return info;
}

/** The one phone of this agent, and its one call. */
class Agent {
  private phone: Phone | null = null;
  private call: Call | null = null;
  private monitor: AudioMonitor | null = null;
  private videoMonitor: VideoMonitor | null = null;
  private readonly cameras: Camera[] = [];
  private pairTimer: ReturnType<typeof setInterval> | null = null;
  private lastPair = '';
  private readonly tones: Tone[] = [];
  private audio: ConnectCommand['audio'] = { send: 440, expect: 880 };

  async handle(command: AgentCommand): Promise<unknown> {
    switch (command.cmd) {
      case 'connect':
        return this.connect(command);
      case 'call':
        return this.place(command.userId, command.video === true);
      case 'accept':
        return this.accept();
      case 'hangup':
        await this.call?.hangup();
        return null;
      case 'stats':
        return this.stats();
      case 'preflight':
        if (!this.phone) throw new Error('connect first');
        return this.phone.preflight({
          ...(command.timeoutMs === undefined ? {} : { timeoutMs: command.timeoutMs }),
          ...(command.mediaMs === undefined ? {} : { mediaMs: command.mediaMs }),
        });
      case 'disconnect':
        this.phone?.disconnect();
        return null;
      case 'exit':
        return this.shutdown();
    }
  }

  private async connect(command: ConnectCommand): Promise<unknown> {
    if (this.phone) throw new Error('this agent is connected already');
    this.audio = command.audio;
    const phone = new Phone({
      ...command.options,
      url: command.url,
      token: command.token,
      rtc,
      media: async (request) =>
        fakeMedia(
          request,
          () => this.keep(this.tones, new Tone(this.audio.send)),
          () => this.keep(this.cameras, new Camera(100)),
        ),
      socket: { transports: ['websocket'] },
    });
    this.phone = phone;
    phone.on('state', (state, previous) => emit({ event: 'phone', state, previous }));
    phone.on('reconnected', ({ resumed, downtimeMs }) => emit({ event: 'reconnected', resumed, downtimeMs }));
    phone.on('error', (err) => emit({ event: 'error', message: err.message }));
    phone.on('incoming', (call) => {
      if (this.call) return void call.reject().catch(() => undefined);
      this.adopt(call);
      emit({ event: 'incoming', callId: call.id, from: call.peer.id });
    });
    return phone.connect();
  }

  /** `made`, remembered in `list` to be stopped at shutdown. */
  private keep<T>(list: T[], made: T): T {
    list.push(made);
    return made;
  }

  private async place(userId: string, video: boolean): Promise<{ callId: string }> {
    if (!this.phone) throw new Error('connect first');
    if (this.call) throw new Error('this agent has a call already');
    const call = await this.phone.call(userId, { video });
    this.adopt(call);
    return { callId: call.id };
  }

  private async accept(): Promise<null> {
    if (!this.call || this.call.direction !== 'incoming') throw new Error('no incoming call to accept');
    await this.call.accept();
    return null;
  }

  /** Follows `call` until it ends: its states, its remote audio, its selected pair. */
  private adopt(call: Call): void {
    this.call = call;
    call.on('state', (state, previous) => emit({ event: 'call', callId: call.id, state, previous }));
    call.on('error', (err) => emit({ event: 'error', message: `call: ${err.message}` }));
    call.on('quality', ({ mos, rttMs, jitterMs, lossPct, level, warnings, packets, relayed }) =>
      emit({ event: 'quality', mos, rttMs, jitterMs, lossPct, level, warnings, packets, relayed }),
    );
    call.on('warning', (name) => emit({ event: 'warning', name }));
    call.on('warning-cleared', (name) => emit({ event: 'warning-cleared', name }));
    call.on('remote-quality', ({ level, warnings }) => emit({ event: 'remote-quality', level, warnings }));
    const listen = (stream: MediaStream) => {
      this.monitor?.stop();
      this.monitor = new AudioMonitor(stream, this.audio.expect);
      emit({ event: 'remoteStream', callId: call.id });
    };
    if (call.remoteStream) listen(call.remoteStream);
    call.on('remoteStream', listen);
    call.on('video', ({ remote }) => {
      const track = call.remoteStream?.getVideoTracks()[0];
      if (remote && track && !this.videoMonitor) this.videoMonitor = new VideoMonitor(track);
    });
    this.pairTimer = setInterval(() => void this.pollPair(call), PAIR_POLL_MS);
    call.on('ended', ({ reason, by }) => {
      this.forget();
      emit({ event: 'ended', callId: call.id, reason, by: by?.id ?? null });
    });
  }

  private forget(): void {
    if (this.pairTimer) clearInterval(this.pairTimer);
    this.pairTimer = null;
    this.lastPair = '';
    this.monitor?.stop();
    this.videoMonitor?.stop();
    this.videoMonitor = null;
    this.call = null;
  }

  private async pollPair(call: Call): Promise<void> {
    const pc = call.peerConnection;
    if (!pc || call !== this.call) return;
    const pair = await selectedPair(pc).catch(() => null);
    const key = JSON.stringify(pair);
    if (!pair || key === this.lastPair || call !== this.call) return;
    this.lastPair = key;
    emit({ event: 'pair', pair });
  }

  private async stats(): Promise<StatsResult> {
    const pc = this.call?.peerConnection;
    return {
      callState: this.call?.state ?? null,
      phoneState: this.phone?.state ?? 'disconnected',
      pair: pc ? await selectedPair(pc) : null,
      audio: { ...(this.monitor?.counters ?? { windows: 0, toneWindows: 0, windowMs: WINDOW_MS }) },
      videoFrames: this.videoMonitor?.frames ?? 0,
    };
  }

  /** Lets go of every wrtc object and collects them while the process runs (wrtc may crash in a finaliser at exit). */
  async shutdown(): Promise<null> {
    this.monitor?.stop();
    await this.call?.hangup().catch(() => undefined);
    this.forget();
    this.phone?.disconnect();
    this.phone = null;
    for (const tone of this.tones.splice(0)) tone.stop();
    for (const camera of this.cameras.splice(0)) camera.stop();
    await collectGarbage();
    return null;
  }
}

async function main(): Promise<void> {
  const agent = new Agent();
  let exiting = false;
  const lines = createInterface({ input: process.stdin });
  lines.on('line', (line) => {
    if (!line.trim()) return;
    let message: { id?: number } & AgentCommand;
    try {
      message = JSON.parse(line) as { id?: number } & AgentCommand;
    } catch {
      return emit({ event: 'error', message: `not JSON: ${line.slice(0, 100)}` });
    }
    const id = message.id ?? 0;
    agent.handle(message).then(
      (result) => {
        send({ reply: id, ok: true, result: result ?? null });
        if (message.cmd === 'exit') process.exit(0);
      },
      (err: unknown) => send({ reply: id, ok: false, error: err instanceof Error ? err.message : String(err) }),
    );
    if (message.cmd === 'exit') exiting = true;
  });
  // The controller is gone: end the phone and go too.
  lines.on('close', () => {
    if (!exiting) void agent.shutdown().finally(() => process.exit(0));
  });
  process.on('uncaughtException', (err) => {
    emit({ event: 'error', message: `uncaught: ${err.stack ?? err.message}` });
    process.exit(70);
  });
  emit({ event: 'ready' });
}

await main();
