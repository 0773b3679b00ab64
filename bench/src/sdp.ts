/**
 * Realistic signalling payloads: an Opus audio offer/answer of the size a
 * browser produces (2–4 KB with its candidates, extensions and codecs), a
 * camera-and-microphone one of the size Chromium produces, and trickled ICE
 * candidates in `RTCIceCandidateInit` form.
 */
import { randomBytes, randomInt } from 'node:crypto';

const hex = (n: number) => randomBytes(n).toString('hex');
const ice = (n: number) => randomBytes(n).toString('base64').replace(/[^A-Za-z0-9]/g, 'x').slice(0, n);

function fingerprint(): string {
  return randomBytes(32)
    .toString('hex')
    .toUpperCase()
    .match(/../g)!
    .join(':');
}

function candidateLine(i: number, ufrag: string): string {
  const foundation = randomInt(1e9, 4e9);
  const port = randomInt(20_000, 65_000);
  switch (i % 4) {
    case 0:
      return `candidate:${foundation} 1 udp 2122260223 192.168.1.${randomInt(2, 250)} ${port} typ host generation 0 ufrag ${ufrag} network-id 1 network-cost 10`;
    case 1:
      return `candidate:${foundation} 1 udp 1686052607 203.0.113.${randomInt(2, 250)} ${port} typ srflx raddr 192.168.1.20 rport ${port} generation 0 ufrag ${ufrag} network-id 1 network-cost 10`;
    case 2:
      return `candidate:${foundation} 1 tcp 1518280447 192.168.1.${randomInt(2, 250)} 9 typ host tcptype active generation 0 ufrag ${ufrag} network-id 1 network-cost 10`;
    default:
      return `candidate:${foundation} 1 udp 41885439 198.51.100.${randomInt(2, 250)} ${port} typ relay raddr 203.0.113.7 rport ${port} generation 0 ufrag ${ufrag} network-id 1 network-cost 10`;
  }
}

/**
 * Sizes of a real video call's descriptions, measured with Debian's Chromium
 * 156 (fake camera and microphone, as sent with trickle ICE): an offer of
 * 5,396 bytes and an answer of 5,102; Firefox ESR 153 gives 2,972 and 2,824.
 */
export const VIDEO_SDP_BYTES = { offer: 5396, answer: 5102 } as const;

/** An m-section's connection, ICE, DTLS and mid lines (bundled sections share ufrag, password and fingerprint). */
function transport(kind: 'offer' | 'answer', ufrag: string, pwd: string, fp: string, mid: number, candidates: string[] = []): string[] {
  return [
    'c=IN IP4 0.0.0.0',
    'a=rtcp:9 IN IP4 0.0.0.0',
    ...candidates,
    `a=ice-ufrag:${ufrag}`,
    `a=ice-pwd:${pwd}`,
    'a=ice-options:trickle',
    `a=fingerprint:sha-256 ${fp}`,
    `a=setup:${kind === 'offer' ? 'actpass' : 'active'}`,
    `a=mid:${mid}`,
  ];
}

/** The video m-line of a browser's offer: VP8, VP9, H.264, AV1 with RTX, RED and ULPFEC (as Chromium lists them). */
function videoSection(kind: 'offer' | 'answer', ufrag: string, pwd: string, fp: string, stream: string): string[] {
  const track = `${hex(4)}-${hex(2)}-${hex(2)}-${hex(2)}-${hex(6)}`;
  const [ssrc, rtxSsrc] = [randomInt(1e8, 4e9), randomInt(1e8, 4e9)];
  const cname = ice(16);
  const codecs: [number, string, string?][] = [
    [96, 'VP8/90000'],
    [98, 'VP9/90000', 'profile-id=0'],
    [100, 'VP9/90000', 'profile-id=2'],
    [102, 'H264/90000', 'level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42001f'],
    [104, 'H264/90000', 'level-asymmetry-allowed=1;packetization-mode=0;profile-level-id=42001f'],
    [106, 'H264/90000', 'level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f'],
    [108, 'H264/90000', 'level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=4d001f'],
    [45, 'AV1/90000', 'level-idx=5;profile=0;tier=0'],
  ];
  const lines = [
    `m=video 9 UDP/TLS/RTP/SAVPF ${codecs.flatMap(([pt]) => [pt, pt + 1]).join(' ')} 114 115 116`,
    ...transport(kind, ufrag, pwd, fp, 1),
    'a=extmap:14 urn:ietf:params:rtp-hdrext:toffset',
    'a=extmap:2 http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time',
    'a=extmap:13 urn:3gpp:video-orientation',
    'a=extmap:3 http://www.ietf.org/id/draft-holmer-rmcat-transport-wide-cc-extensions-01',
    'a=extmap:5 http://www.webrtc.org/experiments/rtp-hdrext/playout-delay',
    'a=extmap:6 http://www.webrtc.org/experiments/rtp-hdrext/video-content-type',
    'a=extmap:7 http://www.webrtc.org/experiments/rtp-hdrext/video-timing',
    'a=extmap:8 http://www.webrtc.org/experiments/rtp-hdrext/color-space',
    'a=extmap:4 urn:ietf:params:rtp-hdrext:sdes:mid',
    'a=extmap:10 urn:ietf:params:rtp-hdrext:sdes:rtp-stream-id',
    'a=extmap:11 urn:ietf:params:rtp-hdrext:sdes:repaired-rtp-stream-id',
    'a=sendrecv',
    `a=msid:${stream} ${track}`,
    'a=rtcp-mux',
    'a=rtcp-rsize',
    ...codecs.flatMap(([pt, codec, fmtp]) => [
      `a=rtpmap:${pt} ${codec}`,
      ...['goog-remb', 'transport-cc', 'ccm fir', 'nack', 'nack pli'].map((fb) => `a=rtcp-fb:${pt} ${fb}`),
      ...(fmtp ? [`a=fmtp:${pt} ${fmtp}`] : []),
      `a=rtpmap:${pt + 1} rtx/90000`,
      `a=fmtp:${pt + 1} apt=${pt}`,
    ]),
    'a=rtpmap:114 red/90000',
    'a=rtpmap:115 rtx/90000',
    'a=fmtp:115 apt=114',
    'a=rtpmap:116 ulpfec/90000',
    `a=ssrc-group:FID ${ssrc} ${rtxSsrc}`,
    ...[ssrc, rtxSsrc].flatMap((x) => [`a=ssrc:${x} cname:${cname}`, `a=ssrc:${x} msid:${stream} ${track}`]),
  ];
  return lines;
}

/** An SDP offer or answer: one Opus audio m-line, ~3 KB; with `video`, a camera's m-line too, at least the size Chromium gives (`VIDEO_SDP_BYTES`; ~5.4 KB). */
export function makeSdp(kind: 'offer' | 'answer', { video = false }: { video?: boolean } = {}): string {
  const ufrag = ice(4);
  const sessionId = randomInt(1e9, 9e9) * 1000 + randomInt(0, 1000);
  const ssrc = randomInt(1e8, 4e9);
  const cname = ice(16);
  const stream = `${hex(4)}-${hex(2)}-${hex(2)}-${hex(2)}-${hex(6)}`;
  const track = `${hex(4)}-${hex(2)}-${hex(2)}-${hex(2)}-${hex(6)}`;
  const pwd = ice(24);
  const fp = fingerprint();
  const lines = [
    'v=0',
    `o=- ${sessionId} 2 IN IP4 127.0.0.1`,
    's=-',
    't=0 0',
    `a=group:BUNDLE ${video ? '0 1' : '0'}`,
    'a=extmap-allow-mixed',
    `a=msid-semantic: WMS ${stream}`,
    'm=audio 9 UDP/TLS/RTP/SAVPF 111 63 9 0 8 13 110 126',
    ...transport(kind, ufrag, pwd, fp, 0, [0, 1, 2, 3].map((i) => `a=${candidateLine(i, ufrag)}`)),
    'a=extmap:1 urn:ietf:params:rtp-hdrext:ssrc-audio-level',
    'a=extmap:2 http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time',
    'a=extmap:3 http://www.ietf.org/id/draft-holmer-rmcat-transport-wide-cc-extensions-01',
    'a=extmap:4 urn:ietf:params:rtp-hdrext:sdes:mid',
    'a=sendrecv',
    `a=msid:${stream} ${track}`,
    'a=rtcp-mux',
    'a=rtcp-rsize',
    'a=rtpmap:111 opus/48000/2',
    'a=rtcp-fb:111 transport-cc',
    'a=fmtp:111 minptime=10;useinbandfec=1;usedtx=1',
    'a=rtpmap:63 red/48000/2',
    'a=fmtp:63 111/111',
    'a=rtpmap:9 G722/8000',
    'a=rtpmap:0 PCMU/8000',
    'a=rtpmap:8 PCMA/8000',
    'a=rtpmap:13 CN/8000',
    'a=rtpmap:110 telephone-event/48000',
    'a=rtpmap:126 telephone-event/8000',
    `a=ssrc:${ssrc} cname:${cname}`,
    `a=ssrc:${ssrc} msid:${stream} ${track}`,
    ...(video ? videoSection(kind, ufrag, pwd, fp, stream) : []),
  ];
  let sdp = lines.join('\r\n') + '\r\n';
  // Browsers add more (extra codecs, ssrc-group lines, …): pad to a typical 2.5–3.5 KB, or to Chromium's video size.
  const target = video ? VIDEO_SDP_BYTES[kind] : randomInt(2600, 3400);
  let k = 0;
  while (sdp.length < target) sdp += `a=ssrc:${ssrc} label:${track}-${k++}\r\n`;
  return sdp;
}

export interface IceCandidateInit {
  candidate: string;
  sdpMid: string;
  sdpMLineIndex: number;
  usernameFragment: string;
}

export function makeCandidates(count: number): IceCandidateInit[] {
  const ufrag = ice(4);
  return Array.from({ length: count }, (_, i) => ({ candidate: candidateLine(i, ufrag), sdpMid: '0', sdpMLineIndex: 0, usernameFragment: ufrag }));
}
