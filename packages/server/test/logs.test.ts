import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { describe, test } from 'node:test';
import { pino } from 'pino';
import { loadConfig, startServer } from '../src/index.js';
import { establish, expectOk, openSocket, signIn, TEST_SECRET } from './helpers.js';

describe('structured logs', () => {
  test('one JSON line per call event with callId, user and session; one per ended call; never a token', async () => {
    const lines: string[] = [];
    const sink = new Writable({
      write(chunk: Buffer, _enc, done) {
        lines.push(...chunk.toString().split('\n').filter(Boolean));
        done();
      },
    });
    const config = loadConfig({ PORT: '0', HOST: '127.0.0.1', JWT_SECRET: TEST_SECRET, LOG_LEVEL: 'info' });
    const server = await startServer(config, { logger: pino({ level: 'info', base: { node: config.nodeId } }, sink) });
    try {
      const alice = await signIn(server, 'alice');
      const bob = await signIn(server, 'bob');
      const callId = await establish(alice, bob, 'bob');
      expectOk(await alice.request('call:mute', { callId }));
      expectOk(await alice.request('call:end', { callId }));
      await bob.next('call:ended');
      const refused = await openSocket(server, { via: 'handshake', token: 'eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0.' });
      await refused.next('auth:error');
      alice.close();
      bob.close();
      await server.close();

      const entries = lines.map((l) => JSON.parse(l) as Record<string, unknown>);
      const callEvents = entries.filter((e) => e.msg === 'call event' && e.callId === callId);
      assert.deepEqual(callEvents.map((e) => e.event), ['request', 'accept', 'control', 'end']);
      for (const e of callEvents) {
        assert.equal(typeof e.user, 'string');
        assert.equal(typeof e.session, 'string');
        assert.equal(e.node, config.nodeId);
      }
      const ended = entries.filter((e) => e.msg === 'call ended' && e.callId === callId);
      assert.equal(ended.length, 1);
      assert.equal(ended[0]!.outcome, 'completed');
      assert.ok(entries.some((e) => e.msg === 'session authenticated' && e.user === 'alice'));
      assert.ok(entries.some((e) => e.msg === 'authentication refused'));
      for (const line of lines) assert.doesNotMatch(line, /eyJ/, 'no token in any log line');
    } finally {
      await server.close();
    }
  });
});

describe('origin allow-list', () => {
  test('CORS_ORIGINS refuses a WebSocket upgrade from another origin, near-matches included', async () => {
    const config = loadConfig({ PORT: '0', HOST: '127.0.0.1', JWT_SECRET: TEST_SECRET, LOG_LEVEL: 'silent', CORS_ORIGINS: 'https://app.example.com' });
    const server = await startServer(config);
    try {
      const good = await openSocket(server, { via: 'none', extraHeaders: { origin: 'https://app.example.com' } });
      good.close();
      for (const origin of ['https://evil.example.net', 'https://app.example.com.evil.net', 'http://app.example.com']) {
        await assert.rejects(openSocket(server, { via: 'none', extraHeaders: { origin } }), `refused: ${origin}`);
      }
    } finally {
      await server.close();
    }
  });
});
