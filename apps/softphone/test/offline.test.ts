/**
 * End-to-end in real headless Chromium: the browser loses its network
 * mid-call and gets it back, as a laptop whose Wi-Fi drops does.
 * - The window's `offline` event (fired alone, the network in fact fine):
 *   the call shows `reconnecting` at once, long before the server's pings
 *   could tell (10 s + 10 s here), then resumes by itself. Socket.IO's client
 *   closes its transport on that event too, so this shows what a user gets,
 *   not which of the two acted.
 * - Offline for real (Playwright's emulation, which fires `offline` and
 *   `online`) until the phone has failed five connection attempts, so that
 *   its next is 7 s away: back online, the SDK's network watch
 *   (packages/client/src/network.ts) resumes at once and restarts ICE, and
 *   the call is connected again at both ends with audio both ways. With that
 *   watch removed, this test fails (seen): the phone waits out its back-off.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { callAndAccept, chromiumSuite, hearsAudio, sel, WAIT } from './pages.js';

/** Well inside the 20 s after which Socket.IO's missed pings would say the same: only the `offline` event is this quick. */
const NOTICED_AT_ONCE = { timeout: 5_000 };

/** Failed connection attempts to wait for while offline: the phone's back-off is then 7 s (`DEFAULT_RECONNECT_DELAYS_MS`). */
const ATTEMPTS_WHILE_OFFLINE = 5;

/** Well inside those 7 s: only a retry on the window's `online` event is this quick. */
const RETRIED_AT_ONCE = { timeout: 4_000 };

/** What Chromium logs of the requests that fail while it is offline: the network's words, not the page's errors. */
const OFFLINE_NOISE = /ERR_INTERNET_DISCONNECTED/;

describe('the softphone page: the browser goes offline and comes back', { concurrency: true }, () => {
  const { person, shot, pageErrors } = chromiumSuite();

  test("the window's offline event alone: the call shows reconnecting at once, then resumes by itself and is connected again at both ends", async () => {
    const kate = await person('kate');
    const liam = await person('liam');
    try {
      await callAndAccept(kate, liam, 'liam');
      for (const page of [kate, liam]) await page.locator(sel.inCall('connected')).waitFor(WAIT);
      // The event the browser fires when its network goes, with the network in fact fine: nothing else would make the call
      // leave `connected` (the socket and the media are both well).
      await kate.evaluate(() => window.dispatchEvent(new Event('offline')));
      await kate.locator(sel.inCall('reconnecting')).waitFor(NOTICED_AT_ONCE);
      for (const page of [kate, liam]) await page.locator(sel.inCall('connected')).waitFor(WAIT);
      const [heardByKate, heardByLiam] = await Promise.all([hearsAudio(kate), hearsAudio(liam)]);
      assert.ok(heardByKate > 0.02 && heardByLiam > 0.02, `levels ${heardByKate} / ${heardByLiam}`);
      await kate.getByTestId('hangup').click(WAIT);
      await liam.getByText('Call with kate ended.').waitFor(WAIT);
      assert.deepEqual(pageErrors.filter((e) => e.startsWith('kate:') || e.startsWith('liam:')), []);
    } finally {
      await kate.context().close();
      await liam.context().close();
    }
  });

  test('offline mid-call until the phone has tried five times: back online it resumes at once (no waiting out its back-off), connected again at both ends, both heard', async () => {
    const ines = await person('ines');
    const jack = await person('jack');
    try {
      await callAndAccept(ines, jack, 'jack');
      for (const page of [ines, jack]) await page.locator(sel.inCall('connected')).waitFor(WAIT);
      await Promise.all([hearsAudio(ines), hearsAudio(jack)]);

      let failed = 0;
      const fifthFailed = new Promise<void>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`only ${failed} connection attempts failed while offline`)), 30_000);
        // Each attempt is a Socket.IO handshake request, which fails at once while the browser is offline.
        ines.on('requestfailed', (request) => {
          if (request.url().includes('/socket.io/') && ++failed === ATTEMPTS_WHILE_OFFLINE) (clearTimeout(timer), resolve());
        });
      });
      await ines.context().setOffline(true);
      await ines.locator(sel.inCall('reconnecting')).waitFor(NOTICED_AT_ONCE);
      assert.equal(await ines.evaluate(() => navigator.onLine), false);
      await shot(ines, 'offline-1-reconnecting');
      await fifthFailed;

      // The phone's next attempt is due 7 s after the fifth (DEFAULT_RECONNECT_DELAYS_MS): only the window's `online` event
      // makes it try at once.
      await ines.context().setOffline(false);
      await ines.locator(sel.inCall('connected')).waitFor(RETRIED_AT_ONCE);
      await jack.locator(sel.inCall('connected')).waitFor(WAIT);
      const [heardByInes, heardByJack] = await Promise.all([hearsAudio(ines), hearsAudio(jack)]);
      assert.ok(heardByInes > 0.02 && heardByJack > 0.02, `levels ${heardByInes} / ${heardByJack}`);
      await shot(ines, 'offline-2-back');

      await ines.getByTestId('hangup').click(WAIT);
      await jack.getByText('Call with ines ended.').waitFor(WAIT);
      const errors = pageErrors.filter((e) => (e.startsWith('ines:') || e.startsWith('jack:')) && !OFFLINE_NOISE.test(e));
      assert.deepEqual(errors, []);
    } finally {
      await ines.context().close();
      await jack.context().close();
    }
  });
});
