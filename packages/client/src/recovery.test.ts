/** When media recovery restarts ICE and when it gives up, on a mocked clock. */
import assert from 'node:assert/strict';
import { afterEach, beforeEach, describe, mock, test } from 'node:test';
import type { MediaLink } from './negotiation.js';
import { MediaRecovery } from './recovery.js';

function harness(timeoutMs = 30_000) {
  const log: string[] = [];
  const state = { link: 'new' as MediaLink, signalling: true };
  const recovery = new MediaRecovery(
    {
      link: () => state.link,
      canSignal: () => state.signalling,
      restart: () => log.push(`restart@${Date.now()}`),
      giveUp: () => log.push(`give up@${Date.now()}`),
    },
    { timeoutMs },
  );
  const link = (next: MediaLink) => {
    state.link = next;
    recovery.update(next);
  };
  return { log, state, recovery, link };
}

describe('media recovery timers', () => {
  beforeEach(() => mock.timers.enable({ apis: ['setTimeout', 'Date'], now: 0 }));
  afterEach(() => mock.timers.reset());

  test('a lost link is restarted after 2 s, then with back-off (2, 4, 5, 5 s) while still down', () => {
    const { log, link, recovery } = harness(60_000);
    recovery.begin();
    link('connected');
    mock.timers.tick(10_000);
    link('lost');
    mock.timers.tick(1999);
    assert.deepEqual(log, [], 'a brief loss is left to heal');
    mock.timers.tick(1);
    mock.timers.tick(2000);
    mock.timers.tick(4000);
    mock.timers.tick(5000);
    mock.timers.tick(5000);
    assert.deepEqual(log, ['restart@12000', 'restart@14000', 'restart@18000', 'restart@23000', 'restart@28000']);
    link('connected');
    mock.timers.tick(60_000);
    assert.equal(log.length, 5, 'connected again: no more restarts, no give-up');
  });

  test('a loss that heals within the grace restarts nothing', () => {
    const { log, link } = harness();
    link('connected');
    link('lost');
    mock.timers.tick(1500);
    link('connected');
    mock.timers.tick(60_000);
    assert.deepEqual(log, []);
  });

  test('failed restarts at once; the peer restarting pushes our next try a full back-off away', () => {
    const { log, link, recovery } = harness();
    link('connected');
    link('failed');
    assert.deepEqual(log, ['restart@0']);
    mock.timers.tick(1500);
    recovery.restarted();
    mock.timers.tick(1999);
    assert.deepEqual(log, ['restart@0']);
    mock.timers.tick(1);
    assert.deepEqual(log, ['restart@0', 'restart@3500']);
  });

  test('no restart while signalling is down, but the clock runs: media not back within the timeout gives up once', () => {
    const { log, link, state } = harness(10_000);
    link('connected');
    state.signalling = false;
    link('lost');
    mock.timers.tick(9999);
    assert.deepEqual(log, []);
    mock.timers.tick(1);
    mock.timers.tick(60_000);
    assert.deepEqual(log, ['give up@10000']);
  });

  test('media that never connects after the answer gives up after the timeout', () => {
    const { log, recovery } = harness(5000);
    recovery.begin();
    mock.timers.tick(5000);
    assert.deepEqual(log, ['give up@5000']);
  });

  test('kick restarts at once even while connected; stop() ends every timer', () => {
    const { log, link, recovery } = harness(5000);
    link('connected');
    recovery.kick();
    assert.deepEqual(log, ['restart@0']);
    recovery.stop();
    link('lost');
    mock.timers.tick(60_000);
    assert.deepEqual(log, ['restart@0']);
  });
});
