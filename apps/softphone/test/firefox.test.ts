/**
 * End-to-end: the softphone page between Firefox ESR (Debian's, driven by
 * puppeteer-core over WebDriver BiDi, its fake microphone and a private
 * PulseAudio for its sound output) and Chromium (Debian's, playwright-core),
 * in both directions, against a real server: ring, accept, connected on both
 * sides, each hears the other (the page's remote level meter), hang up ends
 * both, and the history shows a completed call. With video, each sees the
 * other's fake camera, and the camera goes off and on again.
 *
 * Firefox missing is a failure, not a skip: CI installs firefox-esr.
 */
import assert from 'node:assert/strict';
import { mkdirSync } from 'node:fs';
import { after, before, describe, test } from 'node:test';
import type { Browser } from 'playwright-core';
import type { Browser as FirefoxBrowser } from 'puppeteer-core';
import type { SwitchboardServer } from '@switchboard/server';
import { startPulseAudio, type PulseAudio } from '../../../test/support/pulse.js';
import { startTestServer } from '../../../test/support/server.js';
import {
  chromiumAsPerson,
  chromiumPerson,
  firefoxAsPerson,
  firefoxPerson,
  launchChromium,
  launchFirefox,
  sel,
  type Person,
} from './pages.js';

const ARTIFACTS = new URL('../../../test-artifacts/softphone-firefox/', import.meta.url).pathname;

describe('the softphone between Firefox and Chromium', () => {
  let server: SwitchboardServer | undefined;
  let pulse: PulseAudio | undefined;
  let firefox: FirefoxBrowser | undefined;
  let chrome: Browser | undefined;
  const pageErrors: string[] = [];

  before(async () => {
    mkdirSync(ARTIFACTS, { recursive: true });
    server = await startTestServer({ JWT_SECRET: '', RING_TIMEOUT_MS: '20000' });
    pulse = await startPulseAudio();
    const [ff, ch] = await Promise.allSettled([launchFirefox(pulse.env), launchChromium()]);
    if (ff.status === 'fulfilled') firefox = ff.value;
    if (ch.status === 'fulfilled') chrome = ch.value;
    if (ff.status === 'rejected') throw new Error(`could not start Firefox: ${(ff.reason as Error).message}`, { cause: ff.reason });
    if (ch.status === 'rejected') throw new Error(`could not start Chromium: ${(ch.reason as Error).message}`, { cause: ch.reason });
  });

  after(async () => {
    // Each in turn, whatever failed before: the browsers, then their sound, then the server.
    const results = await Promise.allSettled([firefox?.close(), chrome?.close()]);
    results.push(...(await Promise.allSettled([pulse?.stop(), server?.close()])));
    const failures = results.filter((r): r is PromiseRejectedResult => r.status === 'rejected');
    if (failures.length > 0) throw new AggregateError(failures.map((f) => f.reason), 'cleanup failed');
  });

  async function people(foxName: string, chromeName: string): Promise<{ fox: Person; chromium: Person }> {
    const url = server!.url;
    const [foxPage, chromePage] = await Promise.all([
      firefoxPerson(firefox!, url, foxName, pageErrors),
      chromiumPerson(chrome!, url, chromeName, pageErrors),
    ]);
    return { fox: firefoxAsPerson(foxPage, foxName), chromium: chromiumAsPerson(chromePage, chromeName) };
  }

  /** `caller` calls `callee`, who answers; both connect and hear each other; `hanger` hangs up and both end. */
  async function callAndHangUp(caller: Person, callee: Person, hanger: Person, tag: string): Promise<string> {
    const other = hanger === caller ? callee : caller;
    const shot = (p: Person, step: string) => p.screenshot(`${ARTIFACTS}${tag}-${step}-${p.browser}.png`);
    await caller.waitFor(sel.contact(callee.name));
    await callee.waitFor(sel.contact(caller.name));

    await caller.click(sel.call(callee.name));
    await caller.waitFor(sel.inCall('ringing'));
    await callee.waitFor(sel.testId('incoming'));
    await shot(callee, '1-incoming');
    await callee.click(sel.testId('accept'));
    await callee.waitFor(sel.testId('incoming'), 'hidden');

    await Promise.all([caller.waitFor(sel.inCall('connected')), callee.waitFor(sel.inCall('connected'))]);
    const [heardByCaller, heardByCallee] = await Promise.all([caller.hears(), callee.hears()]);
    assert.ok(heardByCaller > 0.02, `${caller.browser} (caller) hears ${callee.browser}: level ${heardByCaller}`);
    assert.ok(heardByCallee > 0.02, `${callee.browser} (callee) hears ${caller.browser}: level ${heardByCallee}`);
    await Promise.all([shot(caller, '2-in-call'), shot(callee, '2-in-call')]);

    await hanger.click(sel.testId('hangup'));
    await other.waitForText(`Call with ${hanger.name} ended.`);
    await Promise.all([hanger.waitFor(sel.inCall('connected'), 'hidden'), other.waitFor(sel.inCall('connected'), 'hidden')]);
    await Promise.all([hanger.waitFor(sel.inCall(), 'hidden'), other.waitFor(sel.inCall(), 'hidden')]);

    for (const p of [caller, callee]) {
      await p.waitFor(sel.testId('history-item'));
      const peer = p === caller ? callee : caller;
      assert.match(await p.text(sel.testId('history-item')), new RegExp(peer.name), `${p.browser}'s history names ${peer.name}`);
      assert.equal(await p.attribute(sel.testId('history-item'), 'data-outcome'), 'completed', `${p.browser}'s history`);
    }
    await shot(caller, '3-history');
    return `levels heard: ${caller.browser} ${heardByCaller}, ${callee.browser} ${heardByCallee}`;
  }

  test('Firefox calls Chromium; Chromium answers; Firefox hangs up', async (t) => {
    const { fox, chromium } = await people('fox-1', 'chrome-1');
    try {
      t.diagnostic(await callAndHangUp(fox, chromium, fox, 'ff-to-chromium'));
    } finally {
      await Promise.allSettled([fox.close(), chromium.close()]);
    }
  });

  test('Chromium calls Firefox; Firefox answers; Chromium hangs up', async (t) => {
    const { fox, chromium } = await people('fox-2', 'chrome-2');
    try {
      t.diagnostic(await callAndHangUp(chromium, fox, chromium, 'chromium-to-ff'));
    } finally {
      await Promise.allSettled([fox.close(), chromium.close()]);
    }
  });

  test('video: Firefox video-calls Chromium, each sees the other; Firefox turns its camera off and on', async (t) => {
    const { fox, chromium } = await people('fox-3', 'chrome-3');
    const shot = (p: Person, step: string) => p.screenshot(`${ARTIFACTS}video-${step}-${p.browser}.png`);
    try {
      await fox.waitFor(sel.contact(chromium.name));
      await fox.click(`${sel.contact(chromium.name)} [data-testid="video-call"]`);
      await chromium.waitFor(sel.testId('incoming'));
      await chromium.click(sel.testId('accept'));
      await Promise.all([fox.waitFor(sel.inCall('connected')), chromium.waitFor(sel.inCall('connected'))]);
      const [atFox, atChromium] = await Promise.all([fox.seesVideo('remote-video'), chromium.seesVideo('remote-video')]);
      await Promise.all([fox.hears(), chromium.hears()]);
      await Promise.all([shot(fox, '1-in-call'), shot(chromium, '1-in-call')]);
      t.diagnostic(`Firefox sees ${atFox.width}×${atFox.height}, Chromium sees ${atChromium.width}×${atChromium.height}`);

      await fox.click(sel.testId('video-toggle'));
      await chromium.waitFor(sel.testId('remote-video'), 'hidden');
      await fox.click(sel.testId('video-toggle'));
      await chromium.seesVideo('remote-video');
      await chromium.click(sel.testId('hangup'));
      await fox.waitForText(`Call with ${chromium.name} ended.`);
    } finally {
      await Promise.allSettled([fox.close(), chromium.close()]);
    }
  });

  test('no page errors in either browser', () => {
    assert.deepEqual(pageErrors, []);
  });
});
