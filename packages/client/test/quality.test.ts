/**
 * Call quality between two wrtc phones over loopback: each side samples its
 * received audio once a second (`quality`), reports it to the server, sees
 * the peer's report as `remoteQuality`, and both history records carry both
 * parties' summaries. (Loss, warnings and preflight on real networks are in
 * the network lab: network-lab-quality.test.ts.)
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { userKey } from '../../server/src/calls/types.js';
import { Phone, type PreflightReport, type QualitySample, type RemoteQuality } from '../src/index.js';
import { labSuite, next, rtc } from './support.js';

describe('call quality on loopback', () => {
  const lab = labSuite();

  test('each side samples good audio, sees the peer’s report, and the history keeps both summaries', async (t) => {
    const alice = await lab.online('qalice', 440);
    const bob = await lab.online('qbob', 880);
    await lab.sees(alice, 'qbob');
    const { outgoing, incoming } = await lab.connectedCall(alice, bob);
    assert.equal(outgoing.remoteQuality, null, 'nothing from the peer yet');

    for (const [who, call] of [['alice', outgoing], ['bob', incoming]] as const) {
      // The first samples may straddle the start of the audio: wait for a full second of it.
      const [sample] = await next<[QualitySample]>(call, 'quality', { accept: (s) => s.packets >= 40 });
      t.diagnostic(`${who}: ${JSON.stringify(sample)}`);
      assert.ok(sample.mos >= 4.2, `${who}: MOS ${sample.mos} on loopback`);
      assert.equal(sample.lossPct, 0);
      assert.ok(sample.rttMs >= 0 && sample.rttMs < 50, `${who}: RTT ${sample.rttMs} ms`);
      assert.ok(sample.bitrateKbps > 8, `${who}: ${sample.bitrateKbps} kbit/s`);
      assert.equal(sample.relayed, false, 'a host pair');
      assert.equal(sample.level, 'good');
      assert.deepEqual(sample.warnings, []);
    }
    for (const call of [outgoing, incoming]) {
      const [remote] = call.remoteQuality ? [call.remoteQuality] : await next<[RemoteQuality]>(call, 'remote-quality');
      assert.deepEqual(remote, { level: 'good', warnings: [] });
    }

    const ended = next(incoming, 'ended');
    await outgoing.hangup();
    await ended;
    for (const user of ['qalice', 'qbob']) {
      const [entry] = (await lab.server.store.listHistory(userKey('', user), 1, null)).calls;
      for (const role of ['caller', 'callee'] as const) {
        const summary = entry?.quality?.[role];
        assert.ok(summary, `${user}'s record has the ${role}'s summary: ${JSON.stringify(entry)}`);
        assert.ok(summary.samples >= 1);
        assert.ok(summary.mos.min >= 4.2 && summary.mos.mean <= 4.5, JSON.stringify(summary));
        assert.equal(summary.worstLevel, 'good');
      }
    }
  });

  test('preflight says what is missing: a phone not connected, and a server that hands out no ICE server', async () => {
    const offline = new Phone({ url: lab.server.url, token: 'unused', rtc });
    const report: PreflightReport = await offline.preflight({ timeoutMs: 2000 });
    assert.deepEqual([report.ok, report.reason, report.signaling.reason], [false, 'not_connected', 'not_connected']);

    const phone = await lab.online('qcarol');
    const bare = await phone.preflight({ timeoutMs: 5000 });
    assert.equal(bare.ok, false);
    assert.equal(bare.signaling.ok, true, 'the server answers');
    assert.ok(bare.signaling.rttMs !== null && bare.signaling.rttMs >= 0);
    assert.equal(bare.reason, 'no_ice_servers', 'this server hands out no STUN or TURN');
    assert.deepEqual([bare.turn.ok, bare.turn.reason, bare.media], [false, 'no_ice_servers', null]);
  });
});
