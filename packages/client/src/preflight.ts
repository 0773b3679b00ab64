/**
 * `phone.preflight()`: can this device make calls from where it is now, and
 * how would they sound? It checks, within one time budget:
 *
 * 1. signalling: three round trips to the server (`user:list`), the median;
 * 2. each ICE server the server hands out, in its own peer connection:
 *    - STUN gives a server-reflexive candidate (a TURN server is asked as a
 *      STUN server too when the server hands out no STUN URL);
 *    - TURN gives a relay candidate (`iceTransportPolicy: 'relay'`), for each
 *      of its transports (UDP, TCP, TLS) as configured;
 * 3. media: audio between two local peer connections, both forced through
 *    TURN, for a few seconds, sampled like a call (RTT, jitter, loss, MOS).
 *
 * It needs no second user and no media server. Every failed part says why
 * (`PreflightFailure`); `ok` means a call can connect through TURN from here.
 */
import type { QualityWarning } from '@switchboard/protocol/wire';
import { WARNING_THRESHOLDS, estimateMos } from './quality-model.js';
import { QualityTracker, SAMPLE_EVERY_MS, type QualitySample, readStats } from './quality.js';
import type { RtcImplementation } from './types.js';

export const PREFLIGHT_FAILURES = [
  /** The phone is not connected to the server. */
  'not_connected',
  /** The server did not answer in time. */
  'signaling_timeout',
  /** The server hands out no ICE server at all. */
  'no_ice_servers',
  /** The server hands out no TURN server: calls across NATs and firewalls will fail. */
  'no_turn_servers',
  /** No STUN answer in time: UDP to the STUN server is blocked, or it is down. */
  'stun_unreachable',
  /** No TURN answer in time: the TURN server is blocked from here, or down. */
  'turn_unreachable',
  /** The TURN server refused the credentials (401/403). */
  'turn_auth_failed',
  /** The TURN server answered but gave no relay candidate. */
  'no_relay_candidates',
  /** Audio through TURN did not connect in time. */
  'media_timeout',
  /** Audio through TURN could not connect. */
  'media_failed',
  /** The time budget ran out before this part could run. */
  'timeout',
] as const;
export type PreflightFailure = (typeof PREFLIGHT_FAILURES)[number];

export type IceTransport = 'udp' | 'tcp' | 'tls';

/** One ICE server URL, checked. */
export interface IceServerCheck {
  url: string;
  kind: 'stun' | 'turn';
  transport: IceTransport;
  ok: boolean;
  /** Time from the start of gathering to the candidate that proves it works, ms. */
  gatherMs: number | null;
  /** The candidate it gave (`srflx` or `relay`, or `host` when STUN saw no NAT), with its address. */
  candidate?: { type: string; address: string };
  reason?: PreflightFailure;
}

export interface PreflightPart {
  ok: boolean;
  reason?: PreflightFailure;
}

export interface PreflightReport {
  /** A call can connect from here: signalling answers, a TURN server relays, and audio went through it. */
  ok: boolean;
  /** The first failure, in order of what matters to a call: signalling, TURN, media, STUN. */
  reason?: PreflightFailure;
  signaling: PreflightPart & { rttMs: number | null };
  stun: PreflightPart & { rttMs: number | null };
  /** `rttMs`: half the round trip of the audio relayed through TURN (about this device ⇄ TURN). */
  turn: PreflightPart & { transport: IceTransport | null; rttMs: number | null };
  /** The audio loopback through TURN: means over its samples, MOS from them. Null when it could not run. */
  media: (PreflightPart & { mos: number; rttMs: number; jitterMs: number; lossPct: number; relayed: boolean | null; samples: number }) | null;
  /** Quality warnings the loopback's figures would raise in a call. */
  warnings: QualityWarning[];
  servers: IceServerCheck[];
  durationMs: number;
}

export interface PreflightOptions {
  /** The whole check's budget. @default 15000 */
  timeoutMs?: number;
  /** How long audio runs through TURN. @default 4000 */
  mediaMs?: number;
  /** The audio to send (the app's; not stopped). By default a tone (browsers) or the phone's `media` option. */
  media?: MediaStream;
}

/** What preflight needs of the phone. */
export interface PreflightHost {
  readonly rtc: RtcImplementation;
  readonly online: boolean;
  iceServers(): RTCIceServer[];
  /** One signalling round trip, ms; rejects on timeout. */
  ping(timeoutMs: number): Promise<number>;
  /** Audio to send, and how to let go of it. */
  media(): Promise<{ stream: MediaStream; release(): void }>;
}

const PINGS = 3;
const PING_TIMEOUT_MS = 3000;
const GATHER_TIMEOUT_MS = 5000;
const CONNECT_TIMEOUT_MS = 8000;
export const DEFAULT_PREFLIGHT_TIMEOUT_MS = 15_000;
export const DEFAULT_PREFLIGHT_MEDIA_MS = 4000;

export async function runPreflight(host: PreflightHost, options: PreflightOptions = {}): Promise<PreflightReport> {
  const started = Date.now();
  const deadline = started + (options.timeoutMs ?? DEFAULT_PREFLIGHT_TIMEOUT_MS);
  const left = (cap: number) => Math.max(0, Math.min(cap, deadline - Date.now()));

  const signaling = await checkSignaling(host, left);
  const urls = expand(host.iceServers());
  const servers = await Promise.all(urls.map((server) => checkServer(host.rtc, server, left(GATHER_TIMEOUT_MS))));
  const stun = summarizeStun(urls, servers);
  const turnChecks = servers.filter((s) => s.kind === 'turn');
  const working = urls.filter((_, i) => servers[i]!.kind === 'turn' && servers[i]!.ok);
  let media: PreflightReport['media'] = null;
  let mediaReason: PreflightFailure | undefined;
  if (working.length > 0) {
    if (left(Infinity) <= 0) mediaReason = 'timeout';
    else {
      const result = await loopback(host, working.map((w) => w.server), options, left);
      if ('reason' in result && !('mos' in result)) mediaReason = result.reason;
      else media = result;
    }
  }
  const bestTurn = turnChecks.find((s) => s.ok && s.transport === 'udp') ?? turnChecks.find((s) => s.ok);
  const turn: PreflightReport['turn'] = bestTurn
    ? { ok: true, transport: bestTurn.transport, rttMs: media ? round(media.rttMs / 2) : null }
    : { ok: false, transport: null, rttMs: null, reason: turnFailure(urls.length, turnChecks) };
  const warnings = media ? warningsOf(media) : [];
  const mediaPart: PreflightPart = media
    ? media.ok
      ? { ok: true }
      : { ok: false, reason: media.reason ?? 'media_failed' }
    : { ok: false, reason: mediaReason ?? turn.reason ?? 'timeout' };
  const reason = [signaling, turn, mediaPart, stun].find((p) => !p.ok)?.reason;
  return {
    ok: signaling.ok && turn.ok && mediaPart.ok,
    ...(reason ? { reason } : {}),
    signaling,
    stun,
    turn,
    media,
    warnings,
    servers,
    durationMs: Date.now() - started,
  };
}

async function checkSignaling(host: PreflightHost, left: (cap: number) => number): Promise<PreflightReport['signaling']> {
  if (!host.online) return { ok: false, rttMs: null, reason: 'not_connected' };
  const rtts: number[] = [];
  for (let i = 0; i < PINGS; i++) {
    try {
      rtts.push(await host.ping(left(PING_TIMEOUT_MS)));
    } catch {
      return { ok: false, rttMs: null, reason: host.online ? 'signaling_timeout' : 'not_connected' };
    }
  }
  rtts.sort((a, b) => a - b);
  return { ok: true, rttMs: round(rtts[Math.floor(rtts.length / 2)]!) };
}

interface ServerUrl {
  url: string;
  kind: 'stun' | 'turn';
  transport: IceTransport;
  /** The one-URL RTCIceServer to check it with. */
  server: RTCIceServer;
}

/** Every URL of every ICE server, one by one; TURN URLs are asked as STUN too when no STUN URL is given. */
export function expand(iceServers: readonly RTCIceServer[]): ServerUrl[] {
  const out: ServerUrl[] = [];
  for (const server of iceServers) {
    for (const url of Array.isArray(server.urls) ? server.urls : [server.urls]) {
      const scheme = /^(stuns?|turns?):/i.exec(url)?.[1]?.toLowerCase();
      if (!scheme) continue;
      const kind = scheme.startsWith('turn') ? 'turn' : 'stun';
      const secure = scheme.endsWith('s');
      const transport: IceTransport = secure ? 'tls' : /[?&]transport=tcp\b/i.test(url) ? 'tcp' : 'udp';
      const credentials = kind === 'turn' ? { username: server.username, credential: server.credential } : {};
      out.push({ url, kind, transport, server: { urls: url, ...credentials } });
    }
  }
  if (!out.some((u) => u.kind === 'stun')) {
    const seen = new Set<string>();
    for (const u of out.filter((t) => t.kind === 'turn' && t.transport === 'udp')) {
      const url = `stun:${u.url.replace(/^turn:/i, '').replace(/\?.*$/, '')}`;
      if (seen.has(url)) continue;
      seen.add(url);
      out.push({ url, kind: 'stun', transport: 'udp', server: { urls: url } });
    }
  }
  return out;
}

/** Gathers candidates with one server until one proves it (srflx for STUN, relay for TURN), gathering ends, or time runs out. */
function checkServer(rtc: RtcImplementation, target: ServerUrl, timeoutMs: number): Promise<IceServerCheck> {
  const base = { url: target.url, kind: target.kind, transport: target.transport };
  const unreachable: PreflightFailure = target.kind === 'stun' ? 'stun_unreachable' : 'turn_unreachable';
  if (timeoutMs <= 0) return Promise.resolve({ ...base, ok: false, gatherMs: null, reason: 'timeout' });
  const pc = new rtc.RTCPeerConnection({ iceServers: [target.server], iceTransportPolicy: target.kind === 'turn' ? 'relay' : 'all' });
  const started = Date.now();
  let hostCandidate: { type: string; address: string } | undefined;
  let authFailed = false;
  return new Promise<IceServerCheck>((resolve) => {
    const finish = (check: IceServerCheck) => {
      clearTimeout(timer);
      pc.onicecandidate = null;
      pc.onicecandidateerror = null;
      pc.close();
      resolve(check);
    };
    const timer = setTimeout(() => finish({ ...base, ok: false, gatherMs: null, reason: unreachable }), timeoutMs);
    pc.onicecandidateerror = (e: Event) => {
      const code = (e as Event & { errorCode?: number }).errorCode;
      if (code === 401 || code === 403) authFailed = true;
    };
    pc.onicecandidate = (e: RTCPeerConnectionIceEvent) => {
      if (e.candidate === null) {
        // Gathering is over without the candidate we wanted.
        if (target.kind === 'stun' && hostCandidate && !authFailed) {
          // STUN answered with this device's own address: no NAT between here and the server.
          return finish({ ...base, ok: true, gatherMs: Date.now() - started, candidate: hostCandidate });
        }
        return finish({ ...base, ok: false, gatherMs: null, reason: authFailed ? 'turn_auth_failed' : target.kind === 'stun' ? unreachable : 'no_relay_candidates' });
      }
      const found = parseCandidate(e.candidate.candidate);
      if (!found) return;
      if (found.type === (target.kind === 'stun' ? 'srflx' : 'relay')) return finish({ ...base, ok: true, gatherMs: Date.now() - started, candidate: found });
      if (found.type === 'host' && found.address && !hostCandidate) hostCandidate = found;
    };
    pc.createDataChannel('preflight');
    pc.createOffer()
      .then((offer) => pc.setLocalDescription(offer))
      .catch(() => finish({ ...base, ok: false, gatherMs: null, reason: unreachable }));
  });
}

export function parseCandidate(line: string): { type: string; address: string } | null {
  const parts = line.replace(/^a=/, '').split(' ');
  const typ = parts.indexOf('typ');
  if (typ < 0 || parts.length < 6) return null;
  return { type: parts[typ + 1] ?? '', address: `${parts[4]}:${parts[5]}` };
}

function summarizeStun(urls: ServerUrl[], checks: IceServerCheck[]): PreflightReport['stun'] {
  if (urls.length === 0) return { ok: false, rttMs: null, reason: 'no_ice_servers' };
  const stun = checks.filter((c) => c.kind === 'stun');
  const best = stun.filter((c) => c.ok).sort((a, b) => (a.gatherMs ?? 0) - (b.gatherMs ?? 0))[0];
  if (best) return { ok: true, rttMs: best.gatherMs };
  return { ok: false, rttMs: null, reason: stun.find((c) => c.reason)?.reason ?? 'stun_unreachable' };
}

function turnFailure(urlCount: number, turn: IceServerCheck[]): PreflightFailure {
  if (urlCount === 0) return 'no_ice_servers';
  if (turn.length === 0) return 'no_turn_servers';
  const order: PreflightFailure[] = ['turn_auth_failed', 'no_relay_candidates', 'turn_unreachable', 'timeout'];
  return order.find((r) => turn.some((c) => c.reason === r)) ?? 'turn_unreachable';
}

/**
 * Audio from one local peer connection to another, both relay-only, for
 * `mediaMs`; the receiver is sampled once a second like a call.
 */
async function loopback(
  host: PreflightHost,
  turnServers: RTCIceServer[],
  options: PreflightOptions,
  left: (cap: number) => number,
): Promise<NonNullable<PreflightReport['media']> | { reason: PreflightFailure }> {
  const config: RTCConfiguration = { iceServers: turnServers, iceTransportPolicy: 'relay' };
  const sender = new host.rtc.RTCPeerConnection(config);
  const receiver = new host.rtc.RTCPeerConnection(config);
  let source: { stream: MediaStream; release(): void } | undefined;
  try {
    source = options.media ? { stream: options.media, release: () => undefined } : await host.media();
    for (const track of source.stream.getAudioTracks()) sender.addTrack(track, source.stream);
    sender.onicecandidate = (e) => void (e.candidate && receiver.addIceCandidate(e.candidate).catch(() => undefined));
    receiver.onicecandidate = (e) => void (e.candidate && sender.addIceCandidate(e.candidate).catch(() => undefined));
    await sender.setLocalDescription(await sender.createOffer());
    await receiver.setRemoteDescription(sender.localDescription!);
    await receiver.setLocalDescription(await receiver.createAnswer());
    await sender.setRemoteDescription(receiver.localDescription!);
    const connected = await connectedWithin(receiver, left(CONNECT_TIMEOUT_MS));
    if (connected !== 'connected') return { reason: connected === 'failed' ? 'media_failed' : 'media_timeout' };
    const samples = await sample(receiver, Math.min(options.mediaMs ?? DEFAULT_PREFLIGHT_MEDIA_MS, left(Infinity)));
    if (samples.length === 0) return { reason: 'timeout' };
    return figuresOf(samples);
  } catch {
    return { reason: 'media_failed' };
  } finally {
    sender.close();
    receiver.close();
    source?.release();
  }
}

function connectedWithin(pc: RTCPeerConnection, timeoutMs: number): Promise<'connected' | 'failed' | 'timeout'> {
  return new Promise((resolve) => {
    const check = () => {
      const state = pc.iceConnectionState;
      if (state === 'connected' || state === 'completed') done('connected');
      else if (state === 'failed' || state === 'closed') done('failed');
    };
    const done = (result: 'connected' | 'failed' | 'timeout') => {
      clearTimeout(timer);
      pc.removeEventListener('iceconnectionstatechange', check);
      resolve(result);
    };
    const timer = setTimeout(() => done('timeout'), timeoutMs);
    pc.addEventListener('iceconnectionstatechange', check);
    check();
  });
}

/** The receiver's samples over `durationMs`, one a second (the first reading is the baseline). */
async function sample(pc: RTCPeerConnection, durationMs: number): Promise<QualitySample[]> {
  const tracker = new QualityTracker();
  const samples: QualitySample[] = [];
  const end = Date.now() + durationMs;
  for (;;) {
    const out = tracker.add(readStats(await pc.getStats(), Date.now()));
    if (out) samples.push(out.sample);
    if (Date.now() + SAMPLE_EVERY_MS > end) return samples;
    await new Promise((resolve) => setTimeout(resolve, SAMPLE_EVERY_MS));
  }
}

function figuresOf(samples: QualitySample[]): NonNullable<PreflightReport['media']> {
  const mean = (k: 'rttMs' | 'jitterMs' | 'lossPct') => round(samples.reduce((s, x) => s + x[k], 0) / samples.length);
  const rttMs = mean('rttMs');
  const jitterMs = mean('jitterMs');
  const lossPct = mean('lossPct');
  const packets = samples.reduce((s, x) => s + x.packets, 0);
  const mos = packets === 0 ? 1 : estimateMos({ rttMs, jitterMs, lossPct });
  return { ok: packets > 0, mos, rttMs, jitterMs, lossPct, relayed: samples[samples.length - 1]!.relayed, samples: samples.length, ...(packets === 0 ? { reason: 'media_failed' as const } : {}) };
}

function warningsOf(media: NonNullable<PreflightReport['media']>): QualityWarning[] {
  const figures = { ...media, packets: media.ok ? 1 : 0 };
  return (Object.keys(WARNING_THRESHOLDS) as QualityWarning[]).filter((name) => WARNING_THRESHOLDS[name](figures));
}

function round(x: number): number {
  return Math.round(x * 100) / 100;
}
