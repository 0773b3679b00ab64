/**
 * End-to-end video: the softphone page in real headless Chromium (Debian's,
 * playwright-core) with Chromium's fake cameras and microphones, against a
 * real server. Each side's `remote-video` shows a picture whose rendered
 * frames rise; the camera toggle takes it away and back; a video call is
 * answered without the camera and the camera turned on later; an audio call
 * is upgraded to video; the camera and the microphone are switched mid-call.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { Page } from 'playwright-core';
import { chromiumSeesVideo, chromiumSuite, hearsAudio, sel, WAIT } from './pages.js';

/** Test ids of the page (shared/spec/softphone.md v1.1). */
const videoCall = (userId: string) => `${sel.contact(userId)} [data-testid="video-call"]`;

async function connected(...pages: Page[]): Promise<void> {
  await Promise.all(pages.map((p) => p.locator(sel.inCall('connected')).waitFor(WAIT)));
}

/** The label of the camera a page's preview shows (the track the call sends). */
function previewCamera(page: Page): Promise<string | undefined> {
  return page.evaluate(() => (document.querySelector<HTMLVideoElement>('[data-testid="local-video"]')?.srcObject as MediaStream | null)?.getVideoTracks()[0]?.label);
}

describe('video in the softphone page', () => {
  const { person, shot, pageErrors } = chromiumSuite();

  test('a video call: each side sees the other, hold hides the tile, the camera goes off and on, and it fits a phone screen', async (t) => {
    const alice = await person('alice');
    const bob = await person('bob');
    await alice.locator(videoCall('bob')).click(WAIT);
    await alice.locator(sel.inCall('ringing')).waitFor(WAIT);
    await chromiumSeesVideo(alice, 'local-video'); // the caller's preview while it rings
    await bob.getByTestId('incoming').waitFor(WAIT);
    await bob.getByText('Incoming video call').waitFor(WAIT);
    assert.equal(await bob.getByTestId('accept-audio').isVisible(), true, 'a video call can be answered without the camera');
    await shot(bob, 'video-1-incoming');
    await bob.getByTestId('accept').click();
    await connected(alice, bob);

    const [atAlice, atBob] = await Promise.all([chromiumSeesVideo(alice, 'remote-video'), chromiumSeesVideo(bob, 'remote-video')]);
    await Promise.all([chromiumSeesVideo(alice, 'local-video'), chromiumSeesVideo(bob, 'local-video'), hearsAudio(alice), hearsAudio(bob)]);
    t.diagnostic(`alice sees ${atAlice.width}×${atAlice.height} (${atAlice.frames} frames), bob sees ${atBob.width}×${atBob.height} (${atBob.frames} frames)`);
    await Promise.all([shot(alice, 'video-2-in-call-caller'), shot(bob, 'video-2-in-call-callee')]);

    // Phone-sized (420×820): the video and the call's buttons are on screen, nothing wider than it.
    const viewport = alice.viewportSize()!;
    for (const id of ['remote-video', 'hangup', 'video-toggle']) {
      const box = await alice.getByTestId(id).boundingBox();
      assert.ok(box && box.x >= 0 && box.x + box.width <= viewport.width && box.y + box.height <= viewport.height, `${id} is on a phone screen: ${JSON.stringify(box)}`);
    }
    assert.equal(await alice.evaluate(() => document.documentElement.scrollWidth <= window.innerWidth), true, 'no sideways scrolling');

    // Hold blanks the camera: the peer's tile gives way to the badge, and comes back on resume.
    await alice.getByTestId('hold').click();
    await bob.getByTestId('remote-held').waitFor(WAIT);
    await bob.getByTestId('remote-video').waitFor({ state: 'hidden', ...WAIT });
    await alice.getByTestId('hold').click();
    await chromiumSeesVideo(bob, 'remote-video');

    await alice.getByTestId('video-toggle').click();
    await bob.getByTestId('remote-video').waitFor({ state: 'hidden', ...WAIT });
    await alice.getByTestId('local-video').waitFor({ state: 'hidden', ...WAIT });
    assert.equal(await alice.getByTestId('video-toggle').getAttribute('aria-pressed'), 'false');
    await chromiumSeesVideo(alice, 'remote-video'); // bob's camera still comes
    await alice.getByTestId('video-toggle').click();
    await chromiumSeesVideo(bob, 'remote-video');
    assert.equal(await alice.getByTestId('video-toggle').getAttribute('aria-pressed'), 'true');

    await alice.getByTestId('hangup').click();
    await bob.getByText('Call with alice ended.').waitFor(WAIT);
    await bob.getByTestId('remote-video').waitFor({ state: 'hidden', ...WAIT });
    await alice.context().close();
    await bob.context().close();
  });

  test('a video call answered without the camera shows the caller; the camera turned on later reaches the caller', async () => {
    const carol = await person('carol');
    const dave = await person('dave');
    await carol.locator(videoCall('dave')).click(WAIT);
    await dave.getByTestId('accept-audio').click(WAIT);
    await connected(carol, dave);
    await chromiumSeesVideo(dave, 'remote-video');
    assert.equal(await dave.getByTestId('local-video').isVisible(), false, 'dave sends no camera');
    assert.equal(await carol.getByTestId('remote-video').isVisible(), false, 'carol sees no video from dave');
    await shot(dave, 'video-3-answered-without-camera');

    await dave.getByTestId('video-toggle').click();
    await chromiumSeesVideo(carol, 'remote-video');
    await chromiumSeesVideo(dave, 'local-video');
    await carol.getByTestId('hangup').click();
    await carol.context().close();
    await dave.context().close();
  });

  test('an audio call is upgraded to video; the camera, the microphone and the speaker are switched mid-call', async (t) => {
    const erin = await person('erin');
    const frank = await person('frank');
    await erin.locator(sel.call('frank')).click(WAIT);
    await frank.getByTestId('incoming').waitFor(WAIT);
    assert.equal(await frank.getByTestId('accept-audio').isVisible(), false, 'an audio call has one way to answer');
    await frank.getByTestId('accept').click();
    await connected(erin, frank);
    assert.equal(await frank.getByTestId('remote-video').isVisible(), false);

    await erin.getByTestId('video-toggle').click();
    await chromiumSeesVideo(frank, 'remote-video');
    const before = await previewCamera(erin);

    await erin.locator('#devices summary').click();
    const cameras = await erin.getByTestId('camera-select').locator('option').allTextContents();
    const other = cameras.find((label) => label === 'fake_device_2' && label !== before); // see launchChromium
    assert.ok(other, `a second camera to switch to among ${JSON.stringify(cameras)} (sending ${before})`);
    await erin.getByTestId('camera-select').selectOption({ label: other });
    await erin.waitForFunction((label) => {
      const video = document.querySelector<HTMLVideoElement>('[data-testid="local-video"]');
      return (video?.srcObject as MediaStream | null)?.getVideoTracks()[0]?.label === label;
    }, other, WAIT);
    await chromiumSeesVideo(frank, 'remote-video');

    const microphones = await erin.getByTestId('microphone-select').locator('option').allTextContents();
    const microphone = microphones.find((label) => label === 'Fake Audio Input 1');
    assert.ok(microphone, `a microphone to switch to among ${JSON.stringify(microphones)}`);
    await erin.getByTestId('microphone-select').selectOption({ label: microphone });
    const level = await hearsAudio(frank);

    const speaker = erin.getByTestId('speaker-select');
    const output = (await speaker.locator('option').allTextContents()).find((label) => label === 'Fake Audio Output 1');
    assert.ok(output, 'a speaker to switch to');
    await speaker.selectOption({ label: output });
    const sinkId = await speaker.inputValue();
    await erin.waitForFunction((id) => (document.querySelector('audio') as HTMLAudioElement & { sinkId: string }).sinkId === id, sinkId, WAIT);
    await hearsAudio(erin); // frank's audio still plays (and meters) on the new output
    t.diagnostic(`camera ${before} → ${other}; microphone → ${microphone}; frank hears level ${level}; speaker → ${output}`);
    await shot(erin, 'video-4-devices');
    assert.equal(await erin.locator(sel.inCall('connected')).count(), 1, 'the call went on through the switches');
    await erin.getByTestId('hangup').click();
    await frank.getByText('Call with erin ended.').waitFor(WAIT);
    await erin.context().close();
    await frank.context().close();
  });

  test('no page errors', () => {
    assert.deepEqual(pageErrors, []);
  });
});
