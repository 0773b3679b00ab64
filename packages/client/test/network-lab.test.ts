/**
 * Calls through real networks (test/lab/netlab.ts): alice and bob each run a
 * Phone on wrtc in their own namespace behind their own NAT, the server and
 * coturn run in the "internet" namespace, and direct paths between the NATs
 * are dropped, so every call goes through TURN. The tests then damage the
 * network — random UDP loss, the signalling cut — and hold the call to what a
 * user would notice: its state, and the tone each side hears.
 *
 * Needs root (network namespaces, nftables) and coturn's `turnserver`.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { LabPhone } from '../../../test/lab/lab-phone.js';
import { LAB, NetLab } from '../../../test/lab/netlab.js';
import { assertBothRelayed, assertRelayed, connectedCall, hangUp, receivedAudio, startPair } from '../../../test/lab/calls.js';

describe('network lab: two phones behind NATs, only TURN between them', () => {
  let lab: NetLab;
  let alice: LabPhone;
  let bob: LabPhone;

  before(async () => {
    // Pings every second: a signalling path that dies silently is noticed within 2 s, not 20.
    lab = await NetLab.start({ serverEnv: { PING_INTERVAL_MS: '1000', PING_TIMEOUT_MS: '1000' } });
    [alice, bob] = await startPair(lab);
  });

  after(async () => {
    await lab?.close();
    // wrtc may die in a native finaliser at exit: reported, not failed on.
    for (const { name, exit } of lab?.agentExits ?? []) console.log(`netlab: ${name}'s agent exited: ${exit.signal ?? `code ${exit.code}`}`);
  });

  test('a call carries audio both ways through coturn: the selected pair has a relay candidate', async (t) => {
    const placed = await connectedCall(alice, bob);
    t.diagnostic(`call() → both connected ${placed.connectMs} ms; → tone at bob ${placed.firstAudioMs.callee} ms, at alice ${placed.firstAudioMs.caller} ms`);
    t.diagnostic(await assertBothRelayed(alice, bob));
    const [atAlice, atBob] = await Promise.all([alice.stats(), bob.stats()]);
    assert.equal(atAlice.callState, 'connected');
    assert.equal(atBob.callState, 'connected');

    assert.deepEqual(await hangUp(alice, bob), { reason: 'hangup', by: 'alice' });
  });

  test('5 % random UDP loss for 10 s: the call stays connected and the tone keeps arriving', async (t) => {
    await connectedCall(alice, bob);
    const marks = { alice: alice.mark(), bob: bob.mark() };
    const before = await Promise.all([alice.stats(), bob.stats()]);
    const from = Date.now();
    await lab.loss('alice', 5);
    const during = await receivedAudio([alice, bob], before, 10_000);
    const dropped = await lab.dropped('alice');
    await lab.loss('alice', 0);
    const to = Date.now();

    const heard = during.map((d) => d.toneWindows / d.windows);
    const silences = [alice.longestSilenceMs(from, to), bob.longestSilenceMs(from, to)];
    t.diagnostic(`${dropped} UDP packets dropped at alice's router; tone in ${heard.map((h) => `${Math.round(h * 100)} %`).join(' / ')} of windows at alice / bob; longest silence ${silences.join(' / ')} ms`);
    assert.ok(dropped > 0, 'the loss rule dropped packets');
    for (const [who, phone] of [['alice', alice], ['bob', bob]] as const) {
      assert.deepEqual(phone.eventsOf('call', marks[who]), [], `${who}'s call changed state under loss`);
      assert.deepEqual(phone.eventsOf('ended', marks[who]), [], `${who}'s call ended under loss`);
    }
    for (const h of heard) assert.ok(h >= 0.8, `the tone was heard in ${Math.round(h * 100)} % of the windows`);
    for (const s of silences) assert.ok(s < 1000, `a silence of ${s} ms under 5 % loss`);

    await hangUp(bob, alice);
  });

  test('signalling cut for ~3 s (media untouched): the phone resumes its session and the call and its audio survive', async (t) => {
    await connectedCall(alice, bob);
    const marks = { alice: alice.mark(), bob: bob.mark() };
    const before = await Promise.all([alice.stats(), bob.stats()]);
    const blockedAt = Date.now();
    await lab.blockSignalling('alice', 'drop');
    const lost = await alice.waitFor('phone', (e) => e.state === 'reconnecting', { since: marks.alice, timeoutMs: 5000 });
    // The cut lasts as long as 3 s of audio take to arrive (through TURN, which the cut leaves alone).
    await receivedAudio([alice, bob], before, 3000);
    assert.ok((await lab.dropped('alice')) > 0, 'the signalling rule dropped packets');
    await lab.unblockSignalling('alice');
    const unblockedAt = Date.now();

    const back = await alice.waitFor('reconnected', () => true, { since: marks.alice, timeoutMs: 15_000 });
    assert.equal(back.resumed, true, 'the session was resumed, not started afresh');
    const [aliceBack, bobBack] = await Promise.all([
      alice.callState('connected', { since: marks.alice, timeoutMs: 15_000 }),
      bob.callState('connected', { since: marks.bob, timeoutMs: 15_000 }),
    ]);
    const after = await Promise.all([alice.stats(), bob.stats()]);
    await receivedAudio([alice, bob], after, 1000);
    const to = Date.now();
    t.diagnostic(
      `cut noticed ${lost.t - blockedAt} ms after the block; cut ${unblockedAt - blockedAt} ms; ` +
        `after the unblock: resumed ${back.t - unblockedAt} ms, call connected at alice ${aliceBack.t - unblockedAt} ms, at bob ${bobBack.t - unblockedAt} ms`,
    );

    for (const [who, phone] of [['alice', alice], ['bob', bob]] as const) {
      const states = phone.eventsOf('call', marks[who]).map((e) => e.state);
      // Alice lost her link; bob hears of it from the server once it notices (its ping timeout, 2 s here).
      if (who === 'alice') assert.deepEqual(states, ['reconnecting', 'connected'], `alice's call states through the cut`);
      else assert.ok(states.at(-1) === 'connected' && states.every((s) => s === 'reconnecting' || s === 'connected'), `bob's call states: ${states.join(' → ')}`);
      assert.deepEqual(phone.eventsOf('ended', marks[who]), [], `${who}'s call survived`);
      const silence = phone.longestSilenceMs(blockedAt, to);
      assert.ok(silence < 1000, `${who} heard a silence of ${silence} ms: media should not depend on signalling`);
    }
    assertRelayed((await alice.stats()).pair, LAB.services, 'alice after the resumption');

    await hangUp(alice, bob);
  });
});
