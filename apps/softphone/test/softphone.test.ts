/**
 * End-to-end: the softphone page in real headless Chromium (Debian's, driven
 * by playwright-core) against a real server, with Chromium's fake microphone.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { chromiumSuite, hearsAudio, WAIT } from './pages.js';

describe('the softphone page', () => {
  const { person, shot, pageErrors } = chromiumSuite();

  test('two people see each other, call, talk, mute, hang up, and the history shows it', async () => {
    const alice = await person('alice');
    const bob = await person('bob');
    await alice.locator('[data-testid="contact"][data-user-id="bob"]').waitFor(WAIT);
    await bob.locator('[data-testid="contact"][data-user-id="alice"]').waitFor(WAIT);
    await shot(alice, '1-contacts');

    await alice.locator('[data-testid="contact"][data-user-id="bob"] [data-testid="call"]').click();
    await alice.locator('[data-testid="in-call"][data-state="ringing"]').waitFor(WAIT);
    await bob.getByTestId('incoming').waitFor(WAIT);
    await shot(bob, '2-incoming');
    await bob.getByTestId('accept').click();

    await alice.locator('[data-testid="in-call"][data-state="connected"]').waitFor(WAIT);
    await bob.locator('[data-testid="in-call"][data-state="connected"]').waitFor(WAIT);
    const [heardByAlice, heardByBob] = await Promise.all([hearsAudio(alice), hearsAudio(bob)]);
    assert.ok(heardByAlice > 0.02 && heardByBob > 0.02, `levels ${heardByAlice} / ${heardByBob}`);
    await alice.waitForFunction(() => document.querySelector('[data-testid="call-timer"]')?.textContent !== '00:00', undefined, WAIT);
    await shot(alice, '3-in-call');

    assert.equal(await bob.getByTestId('remote-muted').count(), 0);
    await alice.getByTestId('mute').click();
    await bob.getByTestId('remote-muted').waitFor(WAIT);
    await shot(bob, '4-remote-muted');
    await alice.getByTestId('mute').click();
    await bob.getByTestId('remote-muted').waitFor({ state: 'detached', ...WAIT });

    await alice.getByTestId('hangup').click();
    await bob.getByText('Call with alice ended.').waitFor(WAIT);
    for (const page of [alice, bob]) {
      for (const id of ['hangup', 'mute', 'hold']) assert.equal(await page.getByTestId(id).isDisabled(), true, `${id} does nothing once the call has ended`);
    }
    await bob.locator('[data-testid="in-call"]').waitFor({ state: 'hidden', ...WAIT });
    await alice.getByTestId('history-item').first().waitFor(WAIT);
    const item = alice.getByTestId('history-item').first();
    assert.match((await item.textContent()) ?? '', /bob/);
    assert.equal(await item.getAttribute('data-outcome'), 'completed');
    await shot(alice, '5-history');
    await alice.context().close();
    await bob.context().close();
  });

  test('decline and busy show their notices; a missed call is marked in history', async () => {
    const carol = await person('carol');
    const dave = await person('dave');
    const erin = await person('erin');
    await carol.locator('[data-testid="contact"][data-user-id="dave"] [data-testid="call"]').click();
    await dave.getByTestId('incoming').waitFor(WAIT);
    await dave.getByTestId('reject').click();
    await carol.getByText('dave declined the call.').waitFor(WAIT);
    await shot(carol, '6-declined');

    await carol.locator('[data-testid="contact"][data-user-id="dave"] [data-testid="call"]').click();
    await dave.getByTestId('accept').click();
    await carol.locator('[data-testid="in-call"][data-state="connected"]').waitFor(WAIT);
    await erin.locator('[data-testid="contact"][data-user-id="carol"].busy').waitFor(WAIT);
    assert.match((await erin.locator('[data-testid="contact"][data-user-id="carol"]').textContent()) ?? '', /On a call/);
    await erin.locator('[data-testid="contact"][data-user-id="carol"] [data-testid="call"]').click();
    await erin.getByText('carol is busy on another call.').waitFor(WAIT);
    await shot(erin, '7-busy');
    await carol.getByTestId('hangup').click();

    await erin.locator('[data-testid="contact"][data-user-id="dave"] [data-testid="call"]').click();
    await dave.getByTestId('incoming').waitFor(WAIT);
    await erin.getByTestId('hangup').click();
    await dave.locator('[data-testid="history-item"].missed').first().waitFor(WAIT);
    await shot(dave, '8-missed');
    for (const p of [carol, dave, erin]) await p.context().close();
  });

  test('a page opened while a call rings its user shows the incoming dialog, and answering there stops the first device ringing (v1.1)', async () => {
    const frank = await person('frank');
    const gina = await person('gina');
    await frank.locator('[data-testid="contact"][data-user-id="gina"] [data-testid="call"]').click();
    await gina.getByTestId('incoming').waitFor(WAIT);
    const laptop = await person('gina');
    await laptop.getByTestId('incoming').waitFor(WAIT);
    await shot(laptop, '9-incoming-on-a-late-device');
    await laptop.getByTestId('accept').click();
    await frank.locator('[data-testid="in-call"][data-state="connected"]').waitFor(WAIT);
    await laptop.locator('[data-testid="in-call"][data-state="connected"]').waitFor(WAIT);
    await gina.getByTestId('incoming').waitFor({ state: 'hidden', ...WAIT });
    await frank.getByTestId('hangup').click();
    for (const p of [frank, gina, laptop]) await p.context().close();
  });

  test('no page errors', () => {
    assert.deepEqual(pageErrors, []);
  });
});
