/**
 * End-to-end in real headless Chromium: calls whose media could not connect,
 * or could not be restored, end `ice_failed` and the page says so in plain
 * words at both ends. Media is lost by Chromium's own network emulation for
 * WebRTC (`dropWebRtcPackets`, 100 %), the signalling untouched; each call
 * ends after the SDK's `mediaRecoveryTimeoutMs` (30 s by default, which the
 * page keeps), so the two run side by side.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { endedNotice } from '../src/words.js';
import { ARTIFACTS, callAndAccept, chromiumSuite, dropWebRtcPackets, sel, WAIT } from './pages.js';

/** The SDK gives up after mediaRecoveryTimeoutMs (30 s); then the page shows the end within a second. */
const ICE_FAILED_WAIT = { timeout: 50_000 };

describe('the softphone page: calls that could not connect', { concurrency: true }, () => {
  const { person, pageErrors } = chromiumSuite();
  const errorsOf = (...names: string[]) => pageErrors.filter((e) => names.some((n) => e.startsWith(`${n}:`)));

  test('a call whose audio cannot connect at all ends saying so in plain words', async () => {
    const erin = await person('erin');
    const frank = await person('frank');
    try {
      await dropWebRtcPackets(erin, 100);
      await callAndAccept(erin, frank, 'frank');
      for (const page of [erin, frank]) await page.locator(sel.inCall('ended')).waitFor(ICE_FAILED_WAIT);
      const words = 'The call could not connect: your network may be blocking it.';
      assert.equal(endedNotice('ice_failed', 'frank'), words);
      assert.equal(endedNotice('ice_failed', 'erin'), words);
      await erin.getByText(words).waitFor(WAIT);
      await frank.getByText(words).waitFor(WAIT);
      assert.equal(await erin.getByTestId('call-timer').textContent(), '00:00', 'the call never connected');
      await erin.screenshot({ path: `${ARTIFACTS}ice-failed-1-never-connected.png` });
      assert.deepEqual(errorsOf('erin', 'frank'), []);
    } finally {
      await erin.context().close();
      await frank.context().close();
    }
  });

  test('a connected call whose media is lost for good ends saying it dropped, in plain words', async () => {
    const gail = await person('gail');
    const hugo = await person('hugo');
    try {
      await dropWebRtcPackets(gail, 0); // emulated, with no loss yet
      await callAndAccept(gail, hugo, 'hugo');
      for (const page of [gail, hugo]) await page.locator(sel.inCall('connected')).waitFor(WAIT);
      // Every packet lost from now: the SDK restarts ICE, then gives up and ends the call ice_failed at both ends.
      await dropWebRtcPackets(gail, 100);
      for (const page of [gail, hugo]) await page.locator(sel.inCall('ended')).waitFor(ICE_FAILED_WAIT);
      await gail.getByText(endedNotice('ice_failed', 'hugo', true)).waitFor(WAIT);
      await hugo.getByText(endedNotice('ice_failed', 'gail', true)).waitFor(WAIT);
      assert.match(endedNotice('ice_failed', 'hugo', true), /^The call with hugo dropped: .*network may be blocking it\.$/);
      await gail.screenshot({ path: `${ARTIFACTS}ice-failed-2-dropped.png` });
      assert.deepEqual(errorsOf('gail', 'hugo'), []);
    } finally {
      await gail.context().close();
      await hugo.context().close();
    }
  });
});
