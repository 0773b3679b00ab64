/**
 * End-to-end in real headless Chromium (Debian's, playwright-core): the
 * softphone's call quality indicators (`quality`, `remote-quality`) and its
 * warnings in plain words.
 *
 * No mock: loss is made by Chromium's own network emulation for WebRTC
 * (`dropWebRtcPackets`), which drops a share of one page's peer-to-peer
 * packets both ways; the SDK and the page run as shipped.
 */
import assert from 'node:assert/strict';
import { afterEach, describe, test } from 'node:test';
import type { Page } from 'playwright-core';
import { localWarning, remoteWarning } from '../src/words.js';
import { callAndAccept, chromiumSuite, dropWebRtcPackets, sel, WAIT } from './pages.js';

describe('the softphone page: call quality', () => {
  const suite = chromiumSuite();
  const { shot, pageErrors } = suite;

  /** Pages of the running test, closed after it whether it passed or not. */
  const pages: Page[] = [];
  afterEach(async () => {
    await Promise.all(pages.splice(0).map((page) => page.context().close()));
  });
  async function person(name: string): Promise<Page> {
    const page = await suite.person(name);
    pages.push(page);
    return page;
  }

  async function connected(...people: Page[]): Promise<void> {
    for (const page of people) await page.locator(sel.inCall('connected')).waitFor(WAIT);
  }

  /** The warnings the page shows, as `side:name text`. */
  const shownWarnings = (page: Page): Promise<string[]> =>
    page
      .getByTestId('quality-warning')
      .evaluateAll((items) => items.map((li) => `${(li as HTMLElement).dataset.side}:${(li as HTMLElement).dataset.warning} ${li.textContent}`));

  test('a clean call shows good quality for both directions, and no warning', async () => {
    const alice = await person('alice');
    const bob = await person('bob');
    assert.equal(await alice.getByTestId('quality').isVisible(), false, 'no quality indicator outside a call');
    await callAndAccept(alice, bob, 'bob');
    await connected(alice, bob);

    for (const [page, peer] of [[alice, 'bob'], [bob, 'alice']] as const) {
      await page.locator('[data-testid="quality"][data-level="good"]').waitFor(WAIT);
      await page.locator('[data-testid="remote-quality"][data-level]').waitFor(WAIT);
      assert.equal(await page.getByTestId('quality').getAttribute('aria-label'), `You hear ${peer}: good quality`);
      assert.equal(await page.getByTestId('remote-quality').getAttribute('aria-label'), `${peer} hears you: good quality`);
    }
    // Past several samples (a warning is raised after 3 bad ones in a row), nothing is said.
    for (const page of [alice, bob]) {
      await page.waitForFunction(() => (document.querySelector('[data-testid="call-timer"]')?.textContent ?? '') >= '00:07', undefined, WAIT);
    }
    for (const page of [alice, bob]) {
      assert.equal(await page.getByTestId('quality').getAttribute('data-level'), 'good');
      assert.equal(await page.getByTestId('remote-quality').getAttribute('data-level'), 'good');
      assert.deepEqual(await shownWarnings(page), []);
      assert.equal(await page.getByTestId('quality-warnings').isVisible(), false, 'the warnings area takes no room');
    }
    await shot(alice, 'quality-1-good');

    await alice.getByTestId('hangup').click();
    for (const page of [alice, bob]) {
      await page.locator(sel.inCall('ended')).waitFor(WAIT);
      assert.equal(await page.getByTestId('quality').isVisible(), false, 'no indicator once the call ended');
      assert.equal(await page.getByTestId('remote-quality').isVisible(), false, 'no indicator once the call ended');
    }
  });

  test('lost packets raise a warning in words at both ends, and it clears once they flow again', async () => {
    const carol = await person('carol');
    const dave = await person('dave');
    await dropWebRtcPackets(carol, 0); // emulated, with no loss yet
    await callAndAccept(carol, dave, 'dave');
    await connected(carol, dave);
    await carol.locator('[data-testid="quality"][data-level="good"]').waitFor(WAIT);

    await dropWebRtcPackets(carol, 25);
    // Carol's network loses a quarter of the packets both ways: each side receives with loss, and hears it from the other.
    for (const [page, peer] of [[carol, 'dave'], [dave, 'carol']] as const) {
      const mine = page.locator('[data-testid="quality-warning"][data-side="local"][data-warning="high-packet-loss"]');
      await mine.waitFor(WAIT);
      assert.equal(await mine.textContent(), localWarning('high-packet-loss', peer));
      const theirs = page.locator('[data-testid="quality-warning"][data-side="remote"][data-warning="high-packet-loss"]');
      await theirs.waitFor(WAIT);
      assert.equal(await theirs.textContent(), remoteWarning('high-packet-loss', peer));
      assert.match((await page.getByTestId('quality').getAttribute('data-level')) ?? '', /^(fair|poor)$/);
      assert.match((await page.getByTestId('remote-quality').getAttribute('data-level')) ?? '', /^(fair|poor)$/);
    }
    assert.match((await carol.getByTestId('quality-warnings').textContent()) ?? '', /Audio from dave is breaking up/);
    await shot(carol, 'quality-2-warning');

    await dropWebRtcPackets(carol, 0);
    // Cleared after 5 good samples; the peer's report follows within a second or so.
    for (const page of [carol, dave]) {
      await page.getByTestId('quality-warning').first().waitFor({ state: 'detached', ...WAIT });
      await page.locator('[data-testid="quality"][data-level="good"]').waitFor(WAIT);
      assert.deepEqual(await shownWarnings(page), []);
    }
    assert.equal(await carol.locator(sel.inCall()).getAttribute('data-state'), 'connected');
    await carol.getByTestId('hangup').click();
  });

  test('no page errors', () => {
    assert.deepEqual(pageErrors, []);
  });
});
