import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { errorCode, establish, openSocket, serverSuite, tokenFor } from './helpers.js';

describe('presence with CONTACTS=all', () => {
  const suite = serverSuite({ RECONNECT_GRACE_MS: '300' });
  const { user, keep } = suite;

  test('user:list shows the visible users online, each available or busy, and not oneself', async () => {
    const amy = await user('amy');
    const ben = await user('ben');
    await amy.next('user:online', (p) => p.user.id === 'ben');
    const cal = await user('cal');
    assert.deepEqual((cal.auth && (await cal.request<{ users: unknown[] }>('user:list'))) as unknown, {
      ok: true,
      users: [
        { id: 'amy', name: 'Amy', status: 'available' },
        { id: 'ben', name: 'Ben', status: 'available' },
      ],
    });
    await establish(amy, ben, 'ben');
    const list = await cal.request<{ users: { id: string; status: string }[] }>('user:list');
    assert.ok(list.ok);
    assert.deepEqual(list.users.map((u) => [u.id, u.status]), [['amy', 'busy'], ['ben', 'busy']]);
    assert.ok((await cal.next('user:list')).users.length === 2, 'user:list without ack is answered by a user:list event');
  });

  test('user:status tells watchers when a user becomes busy and available again', async () => {
    const watcher = await user('sid');
    const pam = await user('pam');
    const rob = await user('rob');
    const callId = await establish(pam, rob, 'rob');
    assert.deepEqual(await watcher.next('user:status', (p) => p.userId === 'pam'), { userId: 'pam', status: 'busy' });
    assert.deepEqual(await watcher.next('user:status', (p) => p.userId === 'rob'), { userId: 'rob', status: 'busy' });
    await pam.request('call:end', { callId });
    assert.deepEqual(await watcher.next('user:status', (p) => p.userId === 'pam'), { userId: 'pam', status: 'available' });
    assert.deepEqual(await watcher.next('user:status', (p) => p.userId === 'rob'), { userId: 'rob', status: 'available' });
  });

  test('online once for a user with several devices; offline only after the last is gone for good', async () => {
    const watcher = await user('wes');
    const phone = await user('dan');
    assert.deepEqual(await watcher.next('user:online', (p) => p.user.id === 'dan'), { user: { id: 'dan', name: 'Dan' } });
    const laptop = await user('dan');
    phone.close();
    // A deliberate disconnect of one device while another remains: no offline.
    await watcher.sync();
    assert.equal(watcher.received('user:online').filter((p) => p.user.id === 'dan').length, 0, 'the second device does not announce again');
    assert.equal(watcher.received('user:offline').filter((p) => p.userId === 'dan').length, 0);
    const before = Date.now();
    laptop.close();
    const offline = await watcher.next('user:offline', (p) => p.userId === 'dan');
    assert.ok(offline.lastSeen >= before && offline.lastSeen <= Date.now());
  });

  test('a transport loss does not flap presence: offline comes only after the reconnect grace', async () => {
    const watcher = await user('vic');
    const eve = await user('eve');
    await watcher.next('user:online', (p) => p.user.id === 'eve');
    const lostAt = Date.now();
    eve.socket.io.engine.close();
    const offline = await watcher.next('user:offline', (p) => p.userId === 'eve');
    assert.ok(Date.now() - lostAt >= 250, 'offline waited for the grace');
    assert.ok(offline.lastSeen >= lostAt);
  });

  test('a resumed session never goes offline', async () => {
    const watcher = await user('una');
    const fay = await user('fay');
    const gil = await user('gil');
    await watcher.next('user:online', (p) => p.user.id === 'gil');
    fay.socket.io.engine.close();
    gil.socket.io.engine.close(); // gil does not come back: his offline marks the end of the grace
    await fay.disconnected;
    const again = keep(await openSocket(suite.server, { via: 'none' }));
    again.socket.emit('reconnect:attempt', { token: await tokenFor('fay'), sessionId: fay.auth!.sessionId });
    await again.next('reconnect:success');
    await watcher.next('user:offline', (p) => p.userId === 'gil');
    await watcher.sync();
    assert.equal(watcher.received('user:offline').filter((p) => p.userId === 'fay').length, 0);
  });
});

describe('PRESENCE_STATUS=off', () => {
  const { user } = serverSuite({ PRESENCE_STATUS: 'off' });

  test('no user:status is sent; user:list still tells busy from available', async () => {
    const watcher = await user('wade');
    const pia = await user('pia');
    const ray = await user('ray');
    await establish(pia, ray, 'ray');
    const list = await watcher.request<{ users: { id: string; status: string }[] }>('user:list');
    assert.ok(list.ok);
    assert.deepEqual(list.users.filter((u) => u.id !== 'wade').map((u) => [u.id, u.status]), [['pia', 'busy'], ['ray', 'busy']]);
    await watcher.sync();
    assert.equal(watcher.received('user:status').length, 0);
  });
});

describe('tenants and CONTACTS=claims', () => {
  const { user } = serverSuite({ CONTACTS: 'claims' });

  test('a user sees and calls only their contacts; others are reported exactly as offline', async () => {
    const ann = await user('ann', { contacts: ['bob'] });
    const bob = await user('bob', { contacts: ['ann', 'cid'] });
    const cid = await user('cid', { contacts: [] });
    await ann.next('user:online', (p) => p.user.id === 'bob');
    const annList = await ann.request<{ users: { id: string }[] }>('user:list');
    assert.ok(annList.ok);
    assert.deepEqual(annList.users.map((u) => u.id), ['bob']);
    const bobList = await bob.request<{ users: { id: string }[] }>('user:list');
    assert.ok(bobList.ok);
    assert.deepEqual(bobList.users.map((u) => u.id).sort(), ['ann', 'cid']);
    assert.equal(errorCode(await cid.request('call:request', { to: 'bob' })), 'unavailable', 'not a contact: unavailable');
    assert.equal(errorCode(await ann.request('call:request', { to: 'nobody' })), 'unavailable', 'offline: the same answer');
    await cid.sync();
    assert.equal(cid.received('user:online').length, 0, 'cid sees nobody come online');
  });

  test('the same sub in two tenants is two unrelated users', async () => {
    const a1 = await user('sam', { tenant: 'acme', contacts: ['tom'] });
    const t2 = await user('tom', { tenant: 'globex', contacts: ['sam'] });
    assert.equal(errorCode(await a1.request('call:request', { to: 'tom' })), 'unavailable', 'no calls across tenants');
    const t1 = await user('tom', { tenant: 'acme', contacts: ['sam'] });
    await a1.next('user:online', (p) => p.user.id === 'tom');
    const ack = await a1.request<{ callId: string }>('call:request', { to: 'tom' });
    assert.ok(ack.ok);
    await t1.next('call:incoming');
    await t2.sync();
    assert.equal(t2.received('call:incoming').length, 0, 'the other tenant\'s tom does not ring');
    assert.equal(t2.received('user:online').length, 0);
  });
});
