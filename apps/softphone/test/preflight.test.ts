/**
 * End-to-end in real headless Chromium: the softphone's connection check
 * (`preflight` runs `phone.preflight()`, `preflight-result` shows `data-ok`,
 * the figures and, when it failed, why in plain words) against servers with
 * no ICE server, with STUN only, and with TURN through a real coturn
 * (Debian's `turnserver`, started by this test on 127.0.0.1).
 */
import assert from 'node:assert/strict';
import { mkdirSync } from 'node:fs';
import { after, afterEach, before, describe, test } from 'node:test';
import type { Browser, Page } from 'playwright-core';
import type { SwitchboardServer } from '@switchboard/server';
import { startCoturn, type Coturn } from '../../../test/support/coturn.js';
import { startTestServer } from '../../../test/support/server.js';
import { preflightFailure } from '../src/words.js';
import { ARTIFACTS, chromiumPerson, dropWebRtcPackets, launchChromium, WAIT } from './pages.js';

/** The page gives the check 20 s; its result may take a little longer to show on a loaded machine. */
const PREFLIGHT_WAIT = { timeout: 30_000 };

describe('the softphone page: the connection check', () => {
  let coturn: Coturn;
  /** No STUN or TURN server. */
  let bare: SwitchboardServer;
  /** STUN (coturn answering as a STUN server) but no TURN. */
  let stunOnly: SwitchboardServer;
  /** TURN through the real coturn, with TURN REST credentials. */
  let relayed: SwitchboardServer;
  let browser: Browser;
  const pageErrors: string[] = [];

  before(async () => {
    mkdirSync(ARTIFACTS, { recursive: true });
    coturn = await startCoturn();
    const dev = { JWT_SECRET: '' };
    [bare, stunOnly, relayed] = await Promise.all([
      startTestServer(dev),
      startTestServer({ ...dev, STUN_URLS: coturn.stunUrl }),
      startTestServer({ ...dev, ...coturn.serverEnv }),
    ]);
    browser = await launchChromium();
  });
  after(async () => {
    await browser?.close();
    await Promise.all([bare, stunOnly, relayed].map((s) => s?.close()));
    await coturn?.stop();
  });

  /** Pages of the running test, closed after it whether it passed or not. */
  const pages: Page[] = [];
  afterEach(async () => {
    await Promise.all(pages.splice(0).map((page) => page.context().close()));
  });
  async function person(server: SwitchboardServer, name: string): Promise<Page> {
    const page = await chromiumPerson(browser, server.url, name, pageErrors);
    pages.push(page);
    return page;
  }
  const shot = (page: Page, name: string) => page.screenshot({ path: `${ARTIFACTS}${name}.png` });

  /** Clicks the page's `preflight` button and waits for its result; the result element. */
  async function preflight(page: Page) {
    const button = page.getByTestId('preflight');
    assert.equal(await page.getByTestId('preflight-result').isVisible(), false, 'no result before a check');
    await button.click(WAIT);
    const result = page.locator('[data-testid="preflight-result"][data-ok]');
    await result.waitFor(PREFLIGHT_WAIT);
    assert.equal(await button.isEnabled(), true, 'the button is usable again');
    return result;
  }

  /** The result's figures, by their `data-figure` key: `label: value`. */
  const figures = (page: Page): Promise<Record<string, string>> =>
    page.locator('[data-testid="preflight-result"] [data-figure]').evaluateAll((rows) =>
      Object.fromEntries(
        rows.map((row) => [(row as HTMLElement).dataset.figure, `${row.querySelector('dt')?.textContent}: ${row.querySelector('dd')?.textContent}`]),
      ),
    );

  test('on a server without STUN or TURN: not ok, and why in plain words', async () => {
    const gina = await person(bare, 'gina');
    const result = await preflight(gina);
    assert.equal(await result.getAttribute('data-ok'), 'false');
    const reason = gina.getByTestId('preflight-reason');
    assert.equal(await reason.isVisible(), true);
    assert.equal(await reason.textContent(), preflightFailure('no_ice_servers'));
    assert.match((await reason.textContent()) ?? '', /no STUN or TURN server/);
    assert.match((await result.textContent()) ?? '', /Calls may not connect from here/);
    const shown = await figures(gina);
    assert.match(shown.signaling ?? '', /^Server: answers in \d+ ms$/);
    assert.equal(shown.turn, 'TURN relay: none set up');
    assert.equal(shown.stun, 'STUN: none set up');
    await shot(gina, 'preflight-1-no-ice-servers');
  });

  test('on a server with STUN but no TURN: not ok, and why in plain words', async () => {
    const hank = await person(stunOnly, 'hank');
    const result = await preflight(hank);
    assert.equal(await result.getAttribute('data-ok'), 'false');
    const reason = hank.getByTestId('preflight-reason');
    assert.equal(await reason.textContent(), preflightFailure('no_turn_servers'));
    assert.match((await reason.textContent()) ?? '', /no TURN relay/);
    const shown = await figures(hank);
    assert.match(shown.stun ?? '', /^STUN: reached in \d+ ms$/, 'coturn answered as a STUN server');
    assert.equal(shown.turn, 'TURN relay: none set up');
  });

  test('through a real coturn: ok, with the figures', async () => {
    const ivy = await person(relayed, 'ivy');
    const result = await preflight(ivy);
    const shown = await figures(ivy);
    assert.equal(await result.getAttribute('data-ok'), 'true', `figures: ${JSON.stringify(shown)}`);
    assert.equal(await ivy.getByTestId('preflight-reason').isVisible(), false, 'no failure to explain');
    assert.match((await result.textContent()) ?? '', /Calls should connect/);
    assert.match(shown.signaling ?? '', /^Server: answers in \d+ ms$/);
    assert.match(shown.turn ?? '', /^TURN relay: reached over UDP in \d+ ms$/);
    assert.match(shown.stun ?? '', /^STUN: reached in \d+ ms$/, 'coturn asked as a STUN server too');
    assert.match(shown.mos ?? '', /^Test audio: (Good|Fair|Poor) \(MOS [1-5]\.\d of 5\)$/);
    assert.match(shown.rtt ?? '', /^Round trip: \d+ ms$/);
    assert.match(shown.jitter ?? '', /^Jitter: \d+ ms$/);
    assert.match(shown.loss ?? '', /^Audio lost: \d+(\.\d)?%$/);
    // The audio went through this coturn, with the credentials the server handed to ivy.
    assert.ok(
      coturn.allocations().some((user) => user.endsWith(':ivy')),
      `coturn granted ivy a relay (allocations: ${coturn.allocations().join(', ') || 'none'})`,
    );
    await shot(ivy, 'preflight-2-ok');
  });

  test('when the network drops every packet to the TURN relay: not ok, and why in plain words', async () => {
    const jack = await person(relayed, 'jack');
    await dropWebRtcPackets(jack, 100);
    const result = await preflight(jack);
    assert.equal(await result.getAttribute('data-ok'), 'false');
    const reason = jack.getByTestId('preflight-reason');
    assert.equal(await reason.textContent(), preflightFailure('turn_unreachable'));
    assert.match((await reason.textContent()) ?? '', /could not be reached: your network may be blocking it/);
    const shown = await figures(jack);
    assert.match(shown.signaling ?? '', /^Server: answers in \d+ ms$/, 'the signalling still answers');
    assert.equal(shown.turn, 'TURN relay: not reached');
    await shot(jack, 'preflight-3-turn-blocked');
  });

  test('no page errors', () => {
    assert.deepEqual(pageErrors, []);
  });
});
