/** Preflight's pure parts: which URLs get checked, as what, and how a candidate line is read. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { expand, parseCandidate } from './preflight.js';

test('expand checks every URL on its own, with its transport; TURN credentials go only to TURN', () => {
  const checks = expand([
    { urls: ['stun:stun.example.com:3478'] },
    { urls: ['turn:turn.example.com:3478?transport=udp', 'turn:turn.example.com:3478?transport=tcp', 'turns:turn.example.com:5349'], username: '1700000000:u', credential: 'c' },
    { urls: 'http://not-ice.example.com' },
  ]);
  assert.deepEqual(
    checks.map((c) => [c.kind, c.transport, c.url]),
    [
      ['stun', 'udp', 'stun:stun.example.com:3478'],
      ['turn', 'udp', 'turn:turn.example.com:3478?transport=udp'],
      ['turn', 'tcp', 'turn:turn.example.com:3478?transport=tcp'],
      ['turn', 'tls', 'turns:turn.example.com:5349'],
    ],
  );
  assert.deepEqual(checks[0]!.server, { urls: 'stun:stun.example.com:3478' });
  assert.deepEqual(checks[3]!.server, { urls: 'turns:turn.example.com:5349', username: '1700000000:u', credential: 'c' });
});

test('without a STUN URL, each UDP TURN server is asked as a STUN server too (once per host and port)', () => {
  const checks = expand([
    { urls: ['turn:10.0.0.1:3478?transport=udp', 'turn:10.0.0.1:3478?transport=tcp', 'turn:10.0.0.1:3478'], username: 'u', credential: 'c' },
  ]);
  assert.deepEqual(
    checks.filter((c) => c.kind === 'stun').map((c) => c.server),
    [{ urls: 'stun:10.0.0.1:3478' }],
  );
  assert.deepEqual(expand([]), []);
});

test('parseCandidate reads the type and address of a candidate line', () => {
  assert.deepEqual(parseCandidate('candidate:1 1 udp 41885439 10.200.0.1 49160 typ relay raddr 172.16.1.2 rport 50000 generation 0'), {
    type: 'relay',
    address: '10.200.0.1:49160',
  });
  assert.deepEqual(parseCandidate('a=candidate:2 1 udp 1686052607 172.16.1.2 50000 typ srflx raddr 192.168.1.10 rport 50000'), {
    type: 'srflx',
    address: '172.16.1.2:50000',
  });
  assert.equal(parseCandidate('garbage'), null);
});
