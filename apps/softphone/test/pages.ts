/**
 * What the softphone's browser tests share: launching Debian's Chromium
 * (playwright-core) and Firefox ESR (puppeteer-core over WebDriver BiDi) with
 * fake microphones, signing a person in on the page, and reading its remote
 * level meter. Selectors are the page's fixed test ids (shared/spec/softphone.md).
 */
import assert from 'node:assert/strict';
import { existsSync, mkdirSync } from 'node:fs';
import { after, before } from 'node:test';
import type { SwitchboardServer } from '@switchboard/server';
import { startTestServer } from '../../../test/support/server.js';
import { chromium, type Browser, type CDPSession, type Page } from 'playwright-core';
import puppeteer, { type Browser as FirefoxBrowser, type Page as FirefoxPage } from 'puppeteer-core';

export const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
export const FIREFOX = process.env.FIREFOX_PATH ?? '/usr/bin/firefox-esr';
export const WAIT = { timeout: 15_000 };
/** How long a page may take to hear the other side once connected. */
export const HEAR_MS = 20_000;

/** Selectors by test id. */
export const sel = {
  contact: (userId: string) => `[data-testid="contact"][data-user-id="${userId}"]`,
  call: (userId: string) => `[data-testid="contact"][data-user-id="${userId}"] [data-testid="call"]`,
  inCall: (state?: string) => (state ? `[data-testid="in-call"][data-state="${state}"]` : '[data-testid="in-call"]'),
  testId: (id: string) => `[data-testid="${id}"]`,
};

/** Runs in the page: the remote level meter's reading if above `threshold`, else false. */
export function remoteLevelAbove(threshold: number): number | false {
  const level = Number(document.querySelector('[data-testid="remote-level"]')?.getAttribute('data-level'));
  return level > threshold ? level : false;
}

/**
 * Runs in the page: the `<video>` with test id `id` once it is shown, has a
 * picture (`videoWidth`) and has rendered more than `after` frames; else false.
 */
export function videoPast({ id, after }: { id: string; after: number }): VideoReading | false {
  const video = document.querySelector<HTMLVideoElement>(`[data-testid="${id}"]`);
  if (!video || video.hidden || video.videoWidth === 0) return false;
  // Headless Firefox (ESR 153) leaves totalVideoFrames at 0, with no compositor; its own count of painted frames rises.
  const painted = (video as HTMLVideoElement & { mozPaintedFrames?: number }).mozPaintedFrames ?? 0;
  const frames = Math.max(video.getVideoPlaybackQuality().totalVideoFrames, painted);
  return frames > after ? { width: video.videoWidth, height: video.videoHeight, frames } : false;
}

/** How many frames a video must render beyond the first reading to count as playing. */
export const PLAYING_FRAMES = 10;

export type VideoReading = { width: number; height: number; frames: number };

/** A video shown with a picture, then `PLAYING_FRAMES` more frames: `past(after)` waits for one reading. */
async function playing(past: (after: number) => Promise<unknown>): Promise<VideoReading> {
  const first = (await past(-1)) as VideoReading;
  return (await past(first.frames + PLAYING_FRAMES)) as VideoReading;
}

// ---- Chromium (playwright-core) -------------------------------------------

/** Where the browser tests leave their screenshots. */
export const ARTIFACTS = new URL('../../../test-artifacts/softphone/', import.meta.url).pathname;

/**
 * One server and one Chromium for a `describe` block of page tests, both
 * closed after it: `person(name)` opens a signed-in page (its errors go to
 * `pageErrors`), `shot` saves a screenshot among the artifacts.
 */
export function chromiumSuite(env: Record<string, string> = { JWT_SECRET: '', RING_TIMEOUT_MS: '20000' }) {
  let server: SwitchboardServer | undefined;
  let browser: Browser | undefined;
  const pageErrors: string[] = [];
  before(async () => {
    mkdirSync(ARTIFACTS, { recursive: true });
    server = await startTestServer(env);
    browser = await launchChromium();
  });
  after(async () => {
    await browser?.close();
    await server?.close();
  });
  return {
    pageErrors,
    person: (name: string): Promise<Page> => chromiumPerson(browser!, server!.url, name, pageErrors),
    shot: (page: Page, name: string) => page.screenshot({ path: `${ARTIFACTS}${name}.png` }),
  };
}

export function launchChromium(): Promise<Browser> {
  return chromium.launch({
    executablePath: CHROMIUM,
    args: [
      // Three fake cameras, so that a test can switch between them. (fake_device_1 gives Y16 frames, which WebRTC
      // does not send: after replaceTrack to it, framesSent stays put. fake_device_2 gives MJPEG, which it sends.)
      '--use-fake-device-for-media-stream=device-count=3',
      '--use-fake-ui-for-media-stream',
      '--autoplay-policy=no-user-gesture-required',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-background-networking',
      '--disable-quic',
      '--no-first-run',
      '--disable-component-update',
      '--disable-sync',
    ],
  });
}

/**
 * A new Chromium context on the page at `url`, signed in as `name`; its page
 * errors and console errors are pushed to `pageErrors`.
 */
export async function chromiumPerson(browser: Browser, url: string, name: string, pageErrors: string[]): Promise<Page> {
  const context = await browser.newContext({ viewport: { width: 420, height: 820 } });
  const page = await context.newPage();
  page.on('pageerror', (err) => pageErrors.push(`${name}: ${err.message}`));
  // A Content-Security-Policy violation is reported on the console ("Refused to ..."), as is any other error.
  page.on('console', (msg) => {
    if (msg.type() === 'error') pageErrors.push(`${name}: console: ${msg.text()}`);
  });
  const response = await page.goto(url);
  assert.match(response?.headers()['content-security-policy'] ?? '', /frame-ancestors 'none'/, 'the page is served with its policy');
  await page.getByTestId('signin-user').fill(name);
  await page.getByTestId('signin-submit').click();
  await page.getByText(`Signed in as ${name}`).waitFor(WAIT);
  return page;
}

/** Waits until a Chromium page's remote level meter reads above `min` (the other side's fake microphone sounds). */
export async function hearsAudio(page: Page, min = 0.02): Promise<number> {
  const handle = await page.waitForFunction(remoteLevelAbove, min, { timeout: HEAR_MS, polling: 50 });
  return (await handle.jsonValue()) as number;
}

/** Waits until a Chromium page's `<video>` `id` shows a picture and renders `PLAYING_FRAMES` more frames. */
export function chromiumSeesVideo(page: Page, id: string): Promise<VideoReading> {
  return playing(async (after) => (await page.waitForFunction(videoPast, { id, after }, { timeout: HEAR_MS, polling: 100 })).jsonValue());
}

const devtools = new WeakMap<Page, CDPSession>();

/**
 * Chromium drops `percent` % of a page's WebRTC packets, both ways (0: none),
 * in its own network stack: DevTools' network emulation, whose `packetLoss`
 * governs peer-to-peer sockets. It governs the sockets opened while a rule is
 * set (seen with Chromium 156): to change the loss mid-call, set 0 before the
 * call starts. The page and the SDK run as shipped.
 */
export async function dropWebRtcPackets(page: Page, percent: number): Promise<void> {
  let cdp = devtools.get(page);
  if (!cdp) {
    cdp = await page.context().newCDPSession(page);
    await cdp.send('Network.enable');
    devtools.set(page, cdp);
  }
  await cdp.send('Network.emulateNetworkConditionsByRule', {
    offline: false,
    matchedNetworkConditions: [{ urlPattern: '', latency: 0, downloadThroughput: -1, uploadThroughput: -1, packetLoss: percent }],
  });
}

/** `caller` calls `calleeId` from its contacts; `callee` accepts. */
export async function callAndAccept(caller: Page, callee: Page, calleeId: string): Promise<void> {
  await caller.locator(sel.call(calleeId)).click(WAIT);
  await callee.getByTestId('incoming').waitFor(WAIT);
  await callee.getByTestId('accept').click(WAIT);
}

// ---- Firefox (puppeteer-core, WebDriver BiDi) ------------------------------

/** Preferences for a Firefox with a fake microphone, no prompts, audio allowed to start, and no calls home. */
export const FIREFOX_PREFS: Record<string, unknown> = {
  // Media: a fake microphone (a tone), no permission prompt, no autoplay blocking (media elements and WebAudio).
  // (The page was also seen to pass with Firefox's default autoplay policy: it starts its AudioContext on the sign-in click.)
  'media.navigator.streams.fake': true,
  'media.navigator.permission.disabled': true,
  'media.autoplay.default': 0,
  'media.autoplay.block-webaudio': false,
  'media.autoplay.blocking_policy': 0,
  // WebRTC: host candidates as they are (no mDNS .local names), loopback ones too (a machine may have no other interface).
  'media.peerconnection.ice.obfuscate_host_addresses': false,
  'media.peerconnection.ice.loopback': true,
  // No network noise on a machine without internet.
  'network.captive-portal-service.enabled': false,
  'network.connectivity-service.enabled': false,
  'network.dns.disablePrefetch': true,
  'network.prefetch-next': false,
  'network.http.speculative-parallel-limit': 0,
  'network.trr.mode': 5,
  'app.update.enabled': false,
  'app.update.auto': false,
  'app.normandy.enabled': false,
  'app.shield.optoutstudies.enabled': false,
  'browser.safebrowsing.malware.enabled': false,
  'browser.safebrowsing.phishing.enabled': false,
  'browser.safebrowsing.downloads.enabled': false,
  'browser.safebrowsing.downloads.remote.enabled': false,
  'browser.safebrowsing.blockedURIs.enabled': false,
  'browser.safebrowsing.provider.google4.updateURL': '',
  'browser.safebrowsing.provider.mozilla.updateURL': '',
  'browser.region.network.url': '',
  'browser.region.update.enabled': false,
  'browser.search.geoip.url': '',
  'browser.ping-centre.telemetry': false,
  'browser.newtabpage.activity-stream.telemetry': false,
  'browser.newtabpage.activity-stream.feeds.telemetry': false,
  'datareporting.healthreport.uploadEnabled': false,
  'datareporting.policy.dataSubmissionEnabled': false,
  'toolkit.telemetry.enabled': false,
  'toolkit.telemetry.unified': false,
  'toolkit.telemetry.archive.enabled': false,
  'toolkit.telemetry.server': '',
  'messaging-system.rsexperimentloader.enabled': false,
  'nimbus.rollouts.enabled': false,
  'extensions.getAddons.cache.enabled': false,
  'extensions.blocklist.enabled': false,
  'media.gmp-manager.updateEnabled': false,
  'browser.aboutHomeSnippets.updateUrl': '',
  'security.OCSP.enabled': 0,
  'security.remote_settings.crlite_filters.enabled': false,
  'security.remote_settings.intermediates.enabled': false,
};

/**
 * Firefox ESR, headless, over WebDriver BiDi, its sound going to the given
 * PulseAudio (`PULSE_SERVER` in `env`): without an audio output Firefox's
 * AudioContext, and so the page's level meter, would not run. Fails with a
 * plain message if Firefox is not installed.
 */
export async function launchFirefox(env: Record<string, string>): Promise<FirefoxBrowser> {
  if (!existsSync(FIREFOX)) {
    throw new Error(`Firefox is not installed at ${FIREFOX}: install Debian's firefox-esr (apt-get install firefox-esr) or set FIREFOX_PATH`);
  }
  return puppeteer.launch({
    browser: 'firefox',
    executablePath: FIREFOX,
    protocol: 'webDriverBiDi',
    headless: true,
    timeout: 60_000,
    env: { ...process.env, ...env, MOZ_CRASHREPORTER_DISABLE: '1' },
    extraPrefsFirefox: FIREFOX_PREFS,
  });
}

/** A new Firefox browser context on the page at `url`, signed in as `name`; errors are pushed to `pageErrors`. */
export async function firefoxPerson(browser: FirefoxBrowser, url: string, name: string, pageErrors: string[]): Promise<FirefoxPage> {
  const context = await browser.createBrowserContext();
  const page = await context.newPage();
  page.setDefaultTimeout(WAIT.timeout);
  await page.setViewport({ width: 420, height: 820 });
  page.on('pageerror', (err) => pageErrors.push(`${name}: ${err instanceof Error ? err.message : String(err)}`));
  page.on('console', (msg) => {
    if (msg.type() === 'error') pageErrors.push(`${name}: console: ${msg.text()}`);
  });
  const response = await page.goto(url);
  assert.match(response?.headers()['content-security-policy'] ?? '', /frame-ancestors 'none'/, 'the page is served with its policy');
  await page.locator(sel.testId('signin-user')).fill(name);
  await page.locator(sel.testId('signin-submit')).click();
  await page.waitForFunction((text) => document.body.innerText.includes(text), { timeout: WAIT.timeout }, `Signed in as ${name}`);
  return page;
}

/** Waits until a Firefox page's remote level meter reads above `min`. */
export async function firefoxHearsAudio(page: FirefoxPage, min = 0.02): Promise<number> {
  const handle = await page.waitForFunction(remoteLevelAbove, { timeout: HEAR_MS, polling: 50 }, min);
  return (await handle.jsonValue()) as number;
}

// ---- one interface over both drivers ---------------------------------------

/** A signed-in person on the page, whichever browser and driver: what a scenario needs, with bounded waits. */
export interface Person {
  readonly name: string;
  readonly browser: 'chromium' | 'firefox';
  click(selector: string): Promise<void>;
  /** Waits until `selector` is visible (`visible`) or absent or hidden (`hidden`). */
  waitFor(selector: string, state?: 'visible' | 'hidden'): Promise<void>;
  /** Waits until the page's text includes `text`. */
  waitForText(text: string): Promise<void>;
  attribute(selector: string, name: string): Promise<string | null>;
  text(selector: string): Promise<string>;
  /** Waits until the remote level meter reads above `min`; its reading. */
  hears(min?: number): Promise<number>;
  /** Waits until the `<video>` `id` is shown with a picture and its rendered frames rise by `PLAYING_FRAMES`. */
  seesVideo(id: 'remote-video' | 'local-video'): Promise<VideoReading>;
  screenshot(path: string): Promise<void>;
  close(): Promise<void>;
}

/** A wait for sound that fails naming who heard nothing and the meter's last reading. */
async function explainSilence(hearing: Promise<number>, who: string, min: number, level: () => Promise<string | null>): Promise<number> {
  try {
    return await hearing;
  } catch (err) {
    const last = await level().catch(() => 'unreadable');
    throw new Error(`${who} heard nothing above ${min} within ${HEAR_MS} ms (remote-level data-level=${last}): ${(err as Error).message}`, {
      cause: err,
    });
  }
}

export function chromiumAsPerson(page: Page, name: string): Person {
  return {
    name,
    browser: 'chromium',
    click: (selector) => page.locator(selector).click(WAIT),
    waitFor: (selector, state = 'visible') => page.locator(selector).first().waitFor({ state, ...WAIT }),
    waitForText: (text) => page.getByText(text).first().waitFor(WAIT),
    attribute: (selector, attr) => page.locator(selector).first().getAttribute(attr, WAIT),
    text: async (selector) => (await page.locator(selector).first().textContent(WAIT)) ?? '',
    hears: (min = 0.02) =>
      explainSilence(hearsAudio(page, min), `${name} (Chromium)`, min, () => page.locator(sel.testId('remote-level')).getAttribute('data-level')),
    seesVideo: (id) => chromiumSeesVideo(page, id),
    screenshot: async (path) => void (await page.screenshot({ path })),
    close: () => page.context().close(),
  };
}

export function firefoxAsPerson(page: FirefoxPage, name: string): Person {
  return {
    name,
    browser: 'firefox',
    click: (selector) => page.locator(selector).setTimeout(WAIT.timeout).click(),
    waitFor: async (selector, state = 'visible') => {
      await page.waitForSelector(selector, state === 'visible' ? { visible: true, ...WAIT } : { hidden: true, ...WAIT });
    },
    waitForText: async (text) => {
      await page.waitForFunction((t) => document.body.innerText.includes(t), WAIT, text);
    },
    attribute: async (selector, attr) => {
      const handle = await page.waitForSelector(selector, WAIT);
      return (await handle!.evaluate((el, a) => el.getAttribute(a), attr)) ?? null;
    },
    text: async (selector) => {
      const handle = await page.waitForSelector(selector, WAIT);
      return (await handle!.evaluate((el) => el.textContent)) ?? '';
    },
    hears: (min = 0.02) =>
      explainSilence(firefoxHearsAudio(page, min), `${name} (Firefox)`, min, () =>
        page.$eval(sel.testId('remote-level'), (el) => el.getAttribute('data-level')),
      ),
    seesVideo: (id) => playing(async (after) => (await page.waitForFunction(videoPast, { timeout: HEAR_MS, polling: 100 }, { id, after })).jsonValue()),
    screenshot: async (path) => void (await page.screenshot({ path: path as `${string}.png` })),
    close: () => page.browserContext().close(),
  };
}
