/** The phone's ICE servers: the freshest kept, their TURN REST expiry read, renewal due a margin before it. */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { IceServers, expiryOf } from './ice-servers.js';

const turn = (expiresS: number, user = 'alice') => ({ urls: 'turn:turn.example:3478', username: `${expiresS}:${user}`, credential: 'c2lnbmF0dXJl' });

describe('ICE servers and their TURN credentials', () => {
  test('the expiry is the earliest TURN REST username timestamp; servers without credentials have none', () => {
    assert.equal(expiryOf([{ urls: 'stun:stun.example' }, turn(1_800_000_100), turn(1_800_000_050)]), 1_800_000_050_000);
    assert.equal(expiryOf([{ urls: 'stun:stun.example' }]), null);
    assert.equal(expiryOf([{ urls: 'turn:x', username: 'static-user', credential: 'pw' }]), null, 'a static TURN user never expires');
  });

  test('renewal is due a fifth of the lifetime before expiry, at most a minute; an empty list keeps the servers at hand', () => {
    const servers = new IceServers();
    const now = 1_800_000_000_000;
    servers.use([turn(1_800_000_060)], now); // a 60 s lifetime: renew 12 s before
    assert.equal(servers.renewAt, now + 48_000);
    assert.equal(servers.stale(now + 47_999), false);
    assert.equal(servers.stale(now + 48_000), true);
    servers.use([], now + 50_000);
    assert.equal(servers.servers[0]?.username, '1800000060:alice', 'kept');
    servers.use([turn(1_800_086_400)], now); // a day: renew a minute before
    assert.equal(servers.renewAt, 1_800_086_400_000 - 60_000);
    servers.use([{ urls: 'stun:stun.example' }], now);
    assert.equal(servers.renewAt, null);
    assert.equal(servers.stale(now + 10 ** 12), false);
  });
});
