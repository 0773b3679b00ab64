/**
 * Media recovery on real networks (test/lab/netlab.ts): two phones on wrtc
 * behind their own NATs, only TURN between them, the server's default pings
 * (10 s + 10 s) so that only the SDK's own recovery can be quick. A phone
 * moves to another router mid-call; UDP is blocked for a while and comes
 * back; UDP stays blocked beyond `mediaRecoveryTimeoutMs`; and a call is
 * placed with TURN blocked. Every wait is on an event, bounded.
 *
 * Needs root (network namespaces, nftables) and coturn's `turnserver`.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { LabPhone } from '../../../test/lab/lab-phone.js';
import { NetLab } from '../../../test/lab/netlab.js';
import { audioBack, bothEnded, connectedCall, hangUp, startPair, videoBack } from '../../../test/lab/calls.js';

/** The SDK's default: what a user gets. */
const RECOVERY_MS = 30_000;

/** How long a fault lasts is the scenario itself here: the one deliberate wait, named for what it is. */
function faultLasts(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

describe('network lab: media that heals itself', () => {
  let lab: NetLab;
  let alice: LabPhone;
  let bob: LabPhone;

  before(async () => {
    lab = await NetLab.start();
    [alice, bob] = await startPair(lab);
  });

  after(async () => {
    await lab?.close();
  });

  test('alice moves to another router mid-call: audio is back at both ends within 10 s, without any app action', async (t) => {
    await connectedCall(alice, bob);
    const marks = { alice: alice.mark(), bob: bob.mark() };
    const movedAt = Date.now();
    await lab.move('alice', 'r3');
    try {
      const [atAlice, atBob] = await Promise.all([audioBack(alice, marks.alice, 15_000), audioBack(bob, marks.bob, 15_000)]);
      t.diagnostic(`network change → audio back at alice ${atAlice - movedAt} ms, at bob ${atBob - movedAt} ms`);
      assert.ok(atAlice - movedAt <= 10_000 && atBob - movedAt <= 10_000, `audio back after ${atAlice - movedAt} / ${atBob - movedAt} ms`);
      // Bob's call may never have left `connected` (his network did not change): what counts is where both stand now.
      const now = await Promise.all([alice.stats(), bob.stats()]);
      assert.deepEqual(now.map((x) => x.callState), ['connected', 'connected']);
      assert.deepEqual([...alice.eventsOf('ended', marks.alice), ...bob.eventsOf('ended', marks.bob)], [], 'the call survived');
    } finally {
      await hangUp(alice, bob).catch(() => undefined);
    }
  });

  test('UDP blocked for 20 s then restored: the call goes reconnecting, then media is back on its own', async (t) => {
    await connectedCall(alice, bob);
    const marks = { alice: alice.mark(), bob: bob.mark() };
    const blockedAt = Date.now();
    await lab.blockUdp('alice');
    try {
      await Promise.all([alice.callState('reconnecting', { since: marks.alice, timeoutMs: 15_000 }), bob.callState('reconnecting', { since: marks.bob, timeoutMs: 15_000 })]);
      await faultLasts(20_000 - (Date.now() - blockedAt));
      await lab.unblockUdp('alice');
      const restoredAt = Date.now();
      const [a, b] = await Promise.all([
        alice.callState('connected', { since: marks.alice, timeoutMs: 20_000 }),
        bob.callState('connected', { since: marks.bob, timeoutMs: 20_000 }),
      ]);
      await Promise.all([alice.audio(true, { since: marks.alice, timeoutMs: 10_000 }), bob.audio(true, { since: marks.bob, timeoutMs: 10_000 })]);
      t.diagnostic(`UDP restored → connected at alice ${a.t - restoredAt} ms, at bob ${b.t - restoredAt} ms`);
      assert.deepEqual([...alice.eventsOf('ended', marks.alice), ...bob.eventsOf('ended', marks.bob)], [], 'the call survived');
    } finally {
      await lab.unblockUdp('alice');
      await hangUp(bob, alice).catch(() => undefined);
    }
  });

  test('UDP blocked for longer than mediaRecoveryTimeoutMs: both sides end with ice_failed', async (t) => {
    await connectedCall(alice, bob);
    const marks = { alice: alice.mark(), bob: bob.mark() };
    const blockedAt = Date.now();
    await lab.blockUdp('alice');
    try {
      const [a, b] = await bothEnded([alice, bob], [marks.alice, marks.bob], RECOVERY_MS + 20_000);
      t.diagnostic(`ended ${Date.now() - blockedAt} ms after the block: alice ${a.reason}, bob ${b.reason} (by ${b.by ?? a.by})`);
      assert.equal(a.reason, 'ice_failed');
      assert.equal(b.reason, 'ice_failed');
    } finally {
      await lab.unblockUdp('alice');
      await hangUp(alice, bob).catch(() => undefined);
    }
  });

  test('TURN blocked and direct paths blocked: the call never connects and ends ice_failed on both sides', async () => {
    await lab.blockTurn();
    try {
      const marks = { alice: alice.mark(), bob: bob.mark() };
      const { callId } = await alice.call(bob.name);
      await bob.waitFor('incoming', (e) => e.callId === callId, { since: marks.bob });
      await bob.accept();
      const [a, b] = await bothEnded([alice, bob], [marks.alice, marks.bob], RECOVERY_MS + 20_000);
      assert.equal(a.reason, 'ice_failed');
      assert.equal(b.reason, 'ice_failed');
      assert.deepEqual([...alice.eventsOf('call', marks.alice), ...bob.eventsOf('call', marks.bob)].filter((e) => e.state === 'connected'), [], 'never connected');
    } finally {
      await lab.unblockTurn();
      await hangUp(alice, bob).catch(() => undefined);
    }
  });

  test('a video call: alice moves to another router mid-call: the ICE restart brings video back at both ends with the audio', async (t) => {
    await connectedCall(alice, bob, { video: true });
    const marks = { alice: alice.mark(), bob: bob.mark() };
    const before = await Promise.all([alice.stats(), bob.stats()]);
    const movedAt = Date.now();
    try {
      await lab.move('alice', lab.routerOf('alice') === 'r3' ? 'r1' : 'r3'); // the first test moved her to r3
      const [seenAtAlice, seenAtBob, heardAtAlice, heardAtBob] = await Promise.all([
        videoBack(alice, marks.alice, 15_000),
        videoBack(bob, marks.bob, 15_000),
        audioBack(alice, marks.alice, 15_000),
        audioBack(bob, marks.bob, 15_000),
      ]);
      // A second's worth of frames more at each end: the video flows again, not a frame or two.
      const back = await Promise.all([alice.stats(), bob.stats()]);
      await Promise.all([alice.videoFrames(back[0]!.videoFrames + 15, { since: marks.alice }), bob.videoFrames(back[1]!.videoFrames + 15, { since: marks.bob })]);
      const after = await Promise.all([alice.stats(), bob.stats()]);
      t.diagnostic(
        `network change → video back at alice ${seenAtAlice - movedAt} ms, at bob ${seenAtBob - movedAt} ms ` +
          `(audio ${heardAtAlice - movedAt} / ${heardAtBob - movedAt} ms); frames seen before ${before.map((s) => s.videoFrames).join('/')}, now ${after.map((s) => s.videoFrames).join('/')}`,
      );
      assert.ok(seenAtAlice - movedAt <= 10_000 && seenAtBob - movedAt <= 10_000, `video back after ${seenAtAlice - movedAt} / ${seenAtBob - movedAt} ms`);
      assert.deepEqual(after.map((x) => x.callState), ['connected', 'connected']);
    } finally {
      await hangUp(alice, bob).catch(() => undefined);
    }
  });
});
