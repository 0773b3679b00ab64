/**
 * The softphone's plain words (src/words.ts): every end reason, quality
 * warning and connection-check failure the SDK can report has its own words,
 * none of them a bare code.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { PREFLIGHT_FAILURES, WARNING_THRESHOLDS, type PreflightReport, type QualityWarning } from '@switchboard/client';
import {
  endedNotice,
  localWarning,
  mosLevel,
  preflightFailure,
  preflightFigures,
  preflightHeadline,
  preflightWarning,
  remoteWarning,
  worstWarning,
} from '../src/words.js';

const WARNINGS = Object.keys(WARNING_THRESHOLDS) as QualityWarning[];
/** Words, not a code: no snake_case reason and no warning's name in them. */
const plain = (text: string) => !/\b[a-z]+_[a-z_]+\b/.test(text) && !WARNINGS.some((w) => text.includes(w));

describe('the softphone words', () => {
  test('a call that ended ice_failed says it could not connect, or that it dropped once connected', () => {
    assert.equal(endedNotice('ice_failed', 'Bob'), 'The call could not connect: your network may be blocking it.');
    const dropped = endedNotice('ice_failed', 'Bob', true);
    assert.match(dropped, /^The call with Bob dropped: .*network may be blocking it\.$/);
    assert.doesNotMatch(dropped, /ice_failed/);
  });

  test('every end reason of the SDK has its own words', () => {
    const reasons = [
      'hangup',
      'declined',
      'busy',
      'timeout',
      'unavailable',
      'cancelled',
      'caller_disconnected',
      'answered_elsewhere',
      'declined_elsewhere',
      'connection_lost',
      'ice_failed',
      'media_failed',
      'failed',
    ];
    for (const reason of reasons) {
      const words = endedNotice(reason, 'Bob');
      assert.doesNotMatch(words, new RegExp(`\\(${reason}\\)`), `${reason} falls through to the fallback`);
      assert.ok(plain(words), `${reason}: ${words}`);
    }
    assert.equal(endedNotice('something_new', 'Bob'), 'Call with Bob ended (something_new).');
  });

  test('every quality warning has words for each side, naming the peer where it matters', () => {
    for (const warning of WARNINGS) {
      for (const words of [localWarning(warning, 'Bob'), remoteWarning(warning, 'Bob'), preflightWarning(warning)]) {
        assert.ok(words.length > 10 && plain(words), `${warning}: ${words}`);
      }
    }
    assert.equal(localWarning('no-audio-received', 'Bob'), 'No sound is reaching you from Bob.');
    assert.equal(remoteWarning('no-audio-received', 'Bob'), 'Bob is not receiving your audio.');
    assert.match(remoteWarning('low-mos', 'Bob'), /^Bob's side of the connection is poor/);
  });

  test('of several warnings the one that matters most is shown; none when all is well', () => {
    assert.equal(worstWarning([]), null);
    assert.equal(worstWarning(['high-rtt', 'no-audio-received', 'low-mos']), 'no-audio-received');
    assert.equal(worstWarning(['high-jitter', 'high-packet-loss']), 'high-packet-loss');
    for (const warning of WARNINGS) assert.equal(worstWarning([warning]), warning);
  });

  test('every connection-check failure has its own plain words', () => {
    const seen = new Set<string>();
    for (const reason of PREFLIGHT_FAILURES) {
      const words = preflightFailure(reason);
      assert.ok(plain(words) && !words.includes(reason), `${reason}: ${words}`);
      assert.ok(!seen.has(words), `${reason} shares its words with another failure`);
      seen.add(words);
    }
  });

  test('a check that passed shows its figures; one that failed says what it could not reach', () => {
    const ok: PreflightReport = {
      ok: true,
      signaling: { ok: true, rttMs: 3.4 },
      stun: { ok: true, rttMs: 12 },
      turn: { ok: true, transport: 'udp', rttMs: 1.5 },
      media: { ok: true, mos: 4.41, rttMs: 3, jitterMs: 0.6, lossPct: 0, relayed: true, samples: 3 },
      warnings: [],
      servers: [],
      durationMs: 4100,
    };
    assert.equal(preflightHeadline(ok), 'Calls should connect and sound good from here.');
    assert.deepEqual(
      preflightFigures(ok).map((f) => `${f.key}=${f.label}: ${f.value}`),
      [
        'signaling=Server: answers in 3 ms',
        'turn=TURN relay: reached over UDP in 2 ms',
        'stun=STUN: reached in 12 ms',
        'mos=Test audio: Good (MOS 4.4 of 5)',
        'rtt=Round trip: 3 ms',
        'jitter=Jitter: 1 ms',
        'loss=Audio lost: 0%',
      ],
    );
    const lossy: PreflightReport = { ...ok, media: { ...ok.media!, mos: 3.3, lossPct: 4.25 }, warnings: ['high-packet-loss', 'low-mos'] };
    assert.equal(preflightHeadline(lossy), 'Calls should connect from here, but may not sound good.');
    const shown = preflightFigures(lossy).map((f) => `${f.label}: ${f.value}`);
    assert.ok(shown.includes('Test audio: Fair (MOS 3.3 of 5)') && shown.includes('Audio lost: 4%'), shown.join(' | '));
    assert.ok(shown.includes('Warning: audio is being lost on the way'), shown.join(' | '));

    const blocked: PreflightReport = {
      ok: false,
      reason: 'turn_unreachable',
      signaling: { ok: true, rttMs: 2 },
      stun: { ok: false, rttMs: null, reason: 'stun_unreachable' },
      turn: { ok: false, transport: null, rttMs: null, reason: 'turn_unreachable' },
      media: null,
      warnings: [],
      servers: [],
      durationMs: 5000,
    };
    assert.equal(preflightHeadline(blocked), 'Calls may not connect from here.');
    assert.deepEqual(
      preflightFigures(blocked).map((f) => `${f.label}: ${f.value}`),
      ['Server: answers in 2 ms', 'TURN relay: not reached', 'STUN: not reached'],
    );
    assert.equal(mosLevel(4), 'good');
    assert.equal(mosLevel(3.99), 'fair');
    assert.equal(mosLevel(3.09), 'poor');
  });
});
