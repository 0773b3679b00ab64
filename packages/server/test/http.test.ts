import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import type { SwitchboardServer } from '../src/index.js';
import { establish, expectOk, ring, signIn, startTestServer, tokenFor, type TestClient } from './helpers.js';

interface Page {
  calls: { callId: string; direction: string; peer: { id: string; name: string }; outcome: string; reason: string; createdAt: number; answeredAt: number | null; endedAt: number; durationMs: number }[];
  next: string | null;
}

describe('call history, metrics and TURN credentials', () => {
  let server: SwitchboardServer;
  const clients: TestClient[] = [];
  before(async () => {
    server = await startTestServer({
      RING_TIMEOUT_MS: '300',
      RATE_LIMITS: 'off',
      STUN_URLS: 'stun:stun.example.org:3478',
      TURN_URLS: 'turn:turn.example.org:3478?transport=udp,turns:turn.example.org:5349',
      TURN_SECRET: 'turn-shared-secret',
      TURN_TTL_S: '600',
    });
  });
  after(async () => {
    clients.forEach((c) => c.close());
    await server.close();
  });
  const history = async (userId: string, query = '') => {
    const res = await fetch(`${server.url}/api/calls${query}`, { headers: { authorization: `Bearer ${await tokenFor(userId)}` } });
    return { status: res.status, body: (await res.json()) as Page };
  };

  test('every ended call leaves one record per party, newest first, with limit/before paging', async () => {
    const hal = await signIn(server, 'hal');
    const ida = await signIn(server, 'ida');
    clients.push(hal, ida);
    // completed
    const c1 = await establish(hal, ida, 'ida');
    expectOk(await ida.request('call:end', { callId: c1 }));
    await hal.next('call:ended');
    // declined
    const c2 = await ring(hal, [ida], 'ida');
    expectOk(await ida.request('call:reject', { callId: c2 }));
    await hal.next('call:rejected');
    // missed
    const c3 = await ring(ida, [hal], 'hal');
    await ida.next('call:rejected');
    // cancelled
    const c4 = await ring(hal, [ida], 'ida');
    expectOk(await hal.request('call:cancel', { callId: c4 }));
    await ida.next('call:cancelled');

    const all = await history('hal', '?limit=10');
    assert.equal(all.status, 200);
    assert.deepEqual(
      all.body.calls.map((c) => [c.callId, c.direction, c.outcome, c.reason]),
      [
        [c4, 'outgoing', 'cancelled', 'cancelled'],
        [c3, 'incoming', 'missed', 'timeout'],
        [c2, 'outgoing', 'declined', 'declined'],
        [c1, 'outgoing', 'completed', 'hangup'],
      ],
    );
    const completed = all.body.calls[3]!;
    assert.deepEqual(completed.peer, { id: 'ida', name: 'Ida' });
    assert.ok(completed.answeredAt !== null && completed.endedAt >= completed.answeredAt);
    assert.equal(completed.durationMs, completed.endedAt - completed.answeredAt!);
    assert.equal(all.body.next, null);

    const idaView = await history('ida', '?limit=10');
    assert.deepEqual(idaView.body.calls.map((c) => c.direction), ['incoming', 'outgoing', 'incoming', 'incoming']);

    const page1 = await history('hal', '?limit=3');
    assert.equal(page1.body.calls.length, 3);
    assert.ok(page1.body.next);
    const page2 = await history('hal', `?limit=3&before=${page1.body.next}`);
    assert.deepEqual(page2.body.calls.map((c) => c.callId), [c1]);
    assert.equal(page2.body.next, null);
  });

  test('/api/calls without a valid token is 401; a bad limit is 400', async () => {
    assert.equal((await fetch(`${server.url}/api/calls`)).status, 401);
    assert.equal((await fetch(`${server.url}/api/calls`, { headers: { authorization: 'Bearer nope' } })).status, 401);
    assert.equal((await history('hal', '?limit=0')).status, 400);
    assert.equal((await history('hal', '?limit=abc')).status, 400);
  });

  test('iceServers carry STUN and TURN REST credentials that coturn\'s use-auth-secret accepts', async () => {
    const before = Math.floor(Date.now() / 1000);
    const jo = await signIn(server, 'jo');
    clients.push(jo);
    const [stun, turn] = jo.auth!.iceServers;
    assert.deepEqual(stun, { urls: ['stun:stun.example.org:3478'] });
    assert.deepEqual(turn!.urls, ['turn:turn.example.org:3478?transport=udp', 'turns:turn.example.org:5349']);
    const [expiry, user] = turn!.username!.split(':');
    assert.equal(user, 'jo');
    assert.ok(Number(expiry) >= before + 600 && Number(expiry) <= before + 602, 'the timestamp is an expiry TTL seconds ahead');
    const expected = createHmac('sha1', 'turn-shared-secret').update(turn!.username!).digest('base64');
    assert.equal(turn!.credential, expected);
  });

  test('a call carries TURN credentials issued for it: the request ack for the caller, every call:incoming for the callee', async () => {
    const kit = await signIn(server, 'kit');
    const lee = await signIn(server, 'lee');
    const leeTablet = await signIn(server, 'lee');
    clients.push(kit, lee, leeTablet);
    const turnOf = (servers: { urls: string | string[]; username?: string; credential?: string }[]) => servers.find((s) => String(s.urls).includes('turn:'))!;
    const check = (servers: { urls: string | string[]; username?: string; credential?: string }[], user: string, issuedAfter: number) => {
      const turn = turnOf(servers);
      const [expiry, name] = turn.username!.split(':');
      assert.equal(name, user);
      assert.ok(Number(expiry) >= issuedAfter + 600 && Number(expiry) <= Math.floor(Date.now() / 1000) + 600, 'issued now, valid TTL seconds');
      assert.equal(turn.credential, createHmac('sha1', 'turn-shared-secret').update(turn.username!).digest('base64'));
    };
    const before = Math.floor(Date.now() / 1000);
    const ack = await kit.request<{ callId: string; iceServers: { urls: string[]; username?: string; credential?: string }[] }>('call:request', { to: 'lee' });
    expectOk(ack);
    check(ack.iceServers, 'kit', before);
    for (const device of [lee, leeTablet]) check((await device.next('call:incoming')).iceServers, 'lee', before);
    expectOk(await kit.request('call:cancel', { callId: ack.callId }));
  });

  test('/healthz, /readyz and /metrics', async () => {
    assert.equal((await fetch(`${server.url}/healthz`)).status, 200);
    const ready = await fetch(`${server.url}/readyz`);
    assert.equal(ready.status, 200);
    const text = await (await fetch(`${server.url}/metrics`)).text();
    assert.match(text, /^switchboard_connected_sessions \d+/m);
    assert.match(text, /^switchboard_active_calls 0/m);
    assert.match(text, /^switchboard_calls_total\{outcome="completed"\} 1/m);
    assert.match(text, /^switchboard_calls_total\{outcome="missed"\} 1/m);
    assert.match(text, /^switchboard_call_setup_seconds_count 1/m);
    assert.match(text, /^switchboard_events_total\{event="call:request"\} \d+/m);
  });

  test('the softphone page is served with a strict Content-Security-Policy and may not be framed; its assets are not', async () => {
    const page = await fetch(`${server.url}/`);
    assert.equal(page.status, 200);
    const csp = page.headers.get('content-security-policy') ?? '';
    for (const directive of ["default-src 'none'", "script-src 'self'", "style-src 'self'", "connect-src 'self'", "frame-ancestors 'none'", "base-uri 'none'"]) {
      assert.ok(csp.split('; ').includes(directive), `${directive} in ${csp}`);
    }
    assert.doesNotMatch(csp, /unsafe-inline|unsafe-eval|\*/, 'nothing inline, evaluated or from anywhere');
    assert.equal(page.headers.get('x-frame-options'), 'DENY');
    assert.equal(page.headers.get('referrer-policy'), 'no-referrer');
    const html = await page.text();
    assert.doesNotMatch(html, /<script(?![^>]*\bsrc=)[^>]*>|\sstyle=|\son[a-z]+=/i, 'no inline script, style attribute or handler the policy would block');
    const asset = /src="(\/assets\/[^"]+\.js)"/.exec(html)?.[1];
    if (asset) assert.equal((await fetch(`${server.url}${asset}`)).headers.get('x-content-type-options'), 'nosniff');
  });

  test('the active-calls gauge follows a call', async () => {
    const kim = await signIn(server, 'kim');
    const lou = await signIn(server, 'lou');
    clients.push(kim, lou);
    const callId = await establish(kim, lou, 'lou');
    assert.match(await (await fetch(`${server.url}/metrics`)).text(), /^switchboard_active_calls 1/m);
    expectOk(await kim.request('call:end', { callId }));
    await lou.next('call:ended');
    assert.match(await (await fetch(`${server.url}/metrics`)).text(), /^switchboard_active_calls 0/m);
  });
});
