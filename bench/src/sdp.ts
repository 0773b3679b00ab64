/**
 * Realistic signalling payloads: an Opus audio offer/answer of the size a
 * browser produces (2–4 KB with its candidates, extensions and codecs) and
 * trickled ICE candidates in `RTCIceCandidateInit` form.
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

/** An SDP offer or answer for one Opus audio m-line, ~3 KB. */
export function makeSdp(kind: 'offer' | 'answer'): string {
  const ufrag = ice(4);
  const sessionId = randomInt(1e9, 9e9) * 1000 + randomInt(0, 1000);
  const ssrc = randomInt(1e8, 4e9);
  const cname = ice(16);
  const stream = `${hex(4)}-${hex(2)}-${hex(2)}-${hex(2)}-${hex(6)}`;
  const track = `${hex(4)}-${hex(2)}-${hex(2)}-${hex(2)}-${hex(6)}`;
  const lines = [
    'v=0',
    `o=- ${sessionId} 2 IN IP4 127.0.0.1`,
    's=-',
    't=0 0',
    'a=group:BUNDLE 0',
    'a=extmap-allow-mixed',
    `a=msid-semantic: WMS ${stream}`,
    'm=audio 9 UDP/TLS/RTP/SAVPF 111 63 9 0 8 13 110 126',
    'c=IN IP4 0.0.0.0',
    'a=rtcp:9 IN IP4 0.0.0.0',
    ...[0, 1, 2, 3].map((i) => `a=${candidateLine(i, ufrag)}`),
    `a=ice-ufrag:${ufrag}`,
    `a=ice-pwd:${ice(24)}`,
    'a=ice-options:trickle',
    `a=fingerprint:sha-256 ${fingerprint()}`,
    `a=setup:${kind === 'offer' ? 'actpass' : 'active'}`,
    'a=mid:0',
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
  ];
  let sdp = lines.join('\r\n') + '\r\n';
  // Browsers add more (extra codecs, ssrc-group lines, …): pad to a typical 2.5–3.5 KB.
  const target = randomInt(2600, 3400);
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
