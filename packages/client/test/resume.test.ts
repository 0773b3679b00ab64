/**
 * Transport loss and resumption against a real server: a dropped transport
 * (the engine.io connection closed under the phone, not `disconnect()`)
 * goes `reconnecting` and back to `connected` with an ICE restart and audio
 * measured flowing again; a session that cannot be resumed (grace expired,
 * server restarted) ends its calls with `connection_lost`.
 */
import assert from 'node:assert/strict';
import { after, describe, test } from 'node:test';
import { io } from 'socket.io-client';
import type { SwitchboardServer } from '../../server/src/index.js';
import { startTestServer, tokenFor } from '../../../test/support/server.js';
import {
  type CallEndInfo,
  DefaultReconnectPolicy,
  type DisconnectInfo,
  type Phone,
  type ReconnectContext,
  type ReconnectInfo,
  type ReconnectPolicy,
} from '../src/index.js';
import { Lab, labSuite, collectGarbage, isTone, next, reach, stable, statesOf, ufrag } from './support.js';

/** Closes the phone's transport under it: a transport loss, not a deliberate disconnect. */
function dropTransport(phone: Phone): void {
  phone.socket.io.engine.close();
}

describe('resumption after a transport loss', () => {
  const lab = labSuite({ RECONNECT_GRACE_MS: '10000' });

  test("the caller's transport drops mid-call: reconnecting, resumed, ICE restarted, audio flows again", async (t) => {
    let tokensAsked = 0;
    const alice = await lab.online('alice', 440, { token: () => (tokensAsked++, tokenFor('alice')) });
    const bob = await lab.online('bob', 880);
    const { outgoing, incoming } = await lab.connectedCall(alice, bob);
    const atBob = lab.meter(await lab.remoteStream(incoming));
    const atAlice = lab.meter(await lab.remoteStream(outgoing));
    await Promise.all([atBob.until(isTone(440)), atAlice.until(isTone(880))]);
    const sessionId = alice.sessionId;
    const ufragBefore = ufrag(outgoing.peerConnection?.localDescription);
    const aliceStates = statesOf(outgoing);
    const bobStates = statesOf(incoming);

    const droppedAt = Date.now();
    const reconnected = next<[ReconnectInfo]>(alice, 'reconnected');
    dropTransport(alice);
    assert.equal(alice.state, 'reconnecting');
    assert.equal(outgoing.state, 'reconnecting', 'the call shows the loss at once');
    const [info] = await reconnected;
    await Promise.all([reach(outgoing, 'connected'), reach(incoming, 'connected')]);
    const tookMs = Date.now() - droppedAt;

    assert.equal(info.resumed, true);
    assert.equal(alice.state, 'connected');
    assert.equal(alice.sessionId, sessionId, 'the same session, resumed');
    assert.equal(tokensAsked, 2, 'the token function is asked again before resuming');
    assert.deepEqual(aliceStates, ['connected', 'reconnecting', 'connected']);
    assert.equal(outgoing.id, incoming.id);
    assert.notEqual(ufrag(outgoing.peerConnection?.localDescription), ufragBefore, 'the caller restarted ICE');
    assert.equal(ufrag(outgoing.peerConnection?.remoteDescription), ufrag(incoming.peerConnection?.localDescription));

    const bobHears = await atBob.until(isTone(440));
    const aliceHears = await atAlice.until(isTone(880));
    t.diagnostic(
      `transport drop → resumed ${info.downtimeMs} ms, → connected ${tookMs} ms; callee states ${bobStates.join(' → ')}; ` +
        `after: bob hears ${bobHears.frequency} Hz RMS ${bobHears.rms}, alice hears ${aliceHears.frequency} Hz RMS ${aliceHears.rms}`,
    );

    // The resumed link carries the call's controls and its end as before.
    const held = next(outgoing, 'remote', { accept: (f: { held: boolean }) => f.held });
    incoming.hold();
    await held;
    const ended = next<[CallEndInfo]>(incoming, 'ended');
    await outgoing.hangup();
    assert.equal((await ended)[0].reason, 'hangup');
  });

  test('both sides drop at once: both resume, the offers cross, the caller’s wins, audio flows again', async (t) => {
    const carol = await lab.online('carol', 440);
    const dave = await lab.online('dave', 880);
    const { outgoing, incoming } = await lab.connectedCall(carol, dave);
    const atDave = lab.meter(await lab.remoteStream(incoming));
    const atCarol = lab.meter(await lab.remoteStream(outgoing));
    const before = [ufrag(outgoing.peerConnection?.localDescription), ufrag(incoming.peerConnection?.localDescription)];

    const droppedAt = Date.now();
    const back = Promise.all([next(carol, 'reconnected'), next(dave, 'reconnected')]);
    dropTransport(carol);
    dropTransport(dave);
    assert.deepEqual([outgoing.state, incoming.state], ['reconnecting', 'reconnecting']);
    await back;
    await Promise.all([reach(outgoing, 'connected'), reach(incoming, 'connected')]);
    const tookMs = Date.now() - droppedAt;
    assert.notEqual(ufrag(outgoing.peerConnection?.localDescription), before[0]);
    assert.notEqual(ufrag(incoming.peerConnection?.localDescription), before[1]);
    // Whatever offers crossed, the negotiation settles with no offer left hanging.
    await Promise.all([stable(outgoing.peerConnection), stable(incoming.peerConnection)]);
    assert.deepEqual([outgoing.state, incoming.state], ['connected', 'connected']);
    const daveHears = await atDave.until(isTone(440));
    const carolHears = await atCarol.until(isTone(880));
    t.diagnostic(`both dropped → both connected in ${tookMs} ms; dave hears RMS ${daveHears.rms}, carol hears RMS ${carolHears.rms}`);
    await incoming.hangup();
  });

  test("the callee's transport drops: the caller sees reconnecting, the callee re-offers, audio flows again", async () => {
    const erin = await lab.online('erin', 440);
    const frank = await lab.online('frank', 880);
    const { outgoing, incoming } = await lab.connectedCall(erin, frank);
    const atErin = lab.meter(await lab.remoteStream(outgoing));
    const callerStates = statesOf(outgoing);
    const offersByCallee: unknown[] = [];
    frank.socket.onAnyOutgoing((event: string) => event === 'webrtc:offer' && offersByCallee.push(event));

    const back = next(frank, 'reconnected');
    dropTransport(frank);
    await back;
    await Promise.all([reach(outgoing, 'connected'), reach(incoming, 'connected')]);
    assert.equal(offersByCallee.length, 1, 'the party that resumed re-offers');
    await atErin.until(isTone(880));
    // The server tells the peer when it notices the loss before the resumption; the state then shows it.
    if (callerStates.includes('reconnecting')) assert.deepEqual(callerStates, ['connected', 'reconnecting', 'connected']);
    await outgoing.hangup();
  });

  test('a reconnect policy that returns null gives up: the phone is disconnected, the call ends with connection_lost', async () => {
    const asked: ReconnectContext[] = [];
    const gina = await lab.online('gina', 440, { reconnectPolicy: { nextDelay: (context) => (asked.push(context), null) } });
    const hank = await lab.online('hank', 880);
    const { outgoing } = await lab.connectedCall(gina, hank);
    const ended = next<[CallEndInfo]>(outgoing, 'ended');
    const gone = next<[DisconnectInfo]>(gina, 'disconnected');
    dropTransport(gina);
    const [info] = await gone;
    assert.equal(info.reason, 'reconnect_failed');
    assert.equal((await ended)[0].reason, 'connection_lost');
    assert.equal(asked.length, 1);
    assert.equal(asked[0]!.retryCount, 0);
    assert.ok(asked[0]!.elapsedMs >= 0 && asked[0]!.elapsedMs < 1000);
    assert.equal(gina.state, 'disconnected');
    assert.equal(gina.socket.connected, false);
    assert.equal(gina.socket.active, false, 'no socket left trying');
  });
});

describe('a session that cannot be resumed', () => {
  const servers: SwitchboardServer[] = [];
  let lab: Lab;
  after(async () => {
    lab.cleanup();
    await Promise.all(servers.map((s) => s.close()));
    await collectGarbage();
  });

  test('grace expired: the peer sees reconnecting then connection_lost; the lost phone gets reconnect:failed and signs in afresh', async (t) => {
    const server = await startTestServer({ RECONNECT_GRACE_MS: '300' });
    servers.push(server);
    lab = new Lab(server);
    // The lost phone's token is held back until the grace has run out: a resumption that comes too late.
    let release!: () => void;
    let gate: Promise<void> | null = null;
    const alice = await lab.online('alice', 440, {
      token: async () => {
        if (gate) await gate;
        return tokenFor('alice');
      },
    });
    const bob = await lab.online('bob', 880);
    const { outgoing, incoming } = await lab.connectedCall(alice, bob);
    const sessionId = alice.sessionId;
    gate = new Promise<void>((resolve) => (release = resolve));

    const peerReconnecting = reach(incoming, 'reconnecting');
    const peerEnded = next<[CallEndInfo]>(incoming, 'ended');
    const lostAt = Date.now();
    dropTransport(alice);
    await peerReconnecting;
    const [peerInfo] = await peerEnded;
    assert.equal(peerInfo.reason, 'connection_lost');
    t.diagnostic(`peer: reconnecting, then connection_lost after ${Date.now() - lostAt} ms (grace 300 ms)`);
    assert.equal(outgoing.state, 'reconnecting', 'the lost phone has not heard yet');

    const ownEnd = next<[CallEndInfo]>(outgoing, 'ended');
    const back = next<[ReconnectInfo]>(alice, 'reconnected');
    release();
    assert.equal((await ownEnd)[0].reason, 'connection_lost');
    const [info] = await back;
    assert.equal(info.resumed, false, 'signed in afresh: a new session');
    assert.notEqual(alice.sessionId, sessionId);
    assert.equal(alice.state, 'connected');
    await lab.sees(bob, 'alice');
    const again = lab.track(await alice.call('bob'));
    assert.equal(again.state, 'ringing', 'the phone is usable again');
    await again.hangup();
  });

  test('a fresh sign-in refused for its rate while reconnecting is tried again later, not taken as a refused token', async () => {
    const server = await startTestServer({ RECONNECT_GRACE_MS: '300' });
    servers.push(server);
    lab.server = server;
    let release!: () => void;
    let gate: Promise<void> | null = null;
    const policy = new DefaultReconnectPolicy({ delaysMs: Array<number>(60).fill(250), maxJitterMs: 0 });
    const erin = await lab.online('erin', 440, {
      reconnectPolicy: policy,
      token: async () => {
        if (gate) await gate;
        return tokenFor('erin');
      },
    });
    const closed: DisconnectInfo[] = [];
    erin.on('disconnected', (info) => closed.push(info));
    gate = new Promise<void>((resolve) => (release = resolve));
    const lost = next(erin, 'reconnecting');
    dropTransport(erin);
    await lost;
    // While the phone waits for its token, its session expires and erin signs in elsewhere until she
    // may not: her sign-ins for the next seconds are spent, so the phone's own are refused as rate_limited.
    const outcomes: string[] = [];
    while (outcomes.at(-1) !== 'rate_limited' && outcomes.length < 12) {
      const other = io(server.url, { transports: ['websocket'], reconnection: false, forceNew: true, auth: { token: await tokenFor('erin') } });
      outcomes.push(
        await new Promise<string>((resolve) => {
          other.once('auth:success', () => resolve('ok'));
          other.once('auth:error', (e: { code: string }) => resolve(e.code));
        }),
      );
      other.disconnect();
    }
    assert.equal(outcomes.at(-1), 'rate_limited', `erin's sign-ins are spent (${outcomes.join(',')})`);
    const back = next<[ReconnectInfo]>(erin, 'reconnected', { timeoutMs: 20_000 });
    release();
    const [info] = await back;
    assert.equal(info.resumed, false, 'signed in afresh once its rate allowed it');
    assert.deepEqual(closed, [], 'never given up as if its token had been refused');
    assert.equal(erin.state, 'connected');
  });

  test('the server restarted: every resumption fails, calls end with connection_lost, the phones sign in afresh', async (t) => {
    const first = await startTestServer();
    servers.push(first);
    lab.server = first;
    // Every 100 ms, recording what the phones tell it; the new server starts once an attempt has failed.
    const table = new DefaultReconnectPolicy({ delaysMs: Array<number>(50).fill(100), maxJitterMs: 0 });
    const asked: ReconnectContext[] = [];
    let sawFailure!: () => void;
    const failedOnce = new Promise<void>((resolve) => (sawFailure = resolve));
    const policy: ReconnectPolicy = {
      nextDelay(context) {
        asked.push(context);
        if (context.retryCount >= 1) sawFailure();
        return table.nextDelay(context);
      },
    };
    const carol = await lab.online('carol', 440, { reconnectPolicy: policy });
    const dave = await lab.online('dave', 880, { reconnectPolicy: policy });
    const { outgoing, incoming } = await lab.connectedCall(carol, dave);

    const reconnecting = Promise.all([next(carol, 'reconnecting'), next(dave, 'reconnecting')]);
    const ends = Promise.all([next<[CallEndInfo]>(outgoing, 'ended'), next<[CallEndInfo]>(incoming, 'ended')]);
    const back = Promise.all([next<[ReconnectInfo]>(carol, 'reconnected'), next<[ReconnectInfo]>(dave, 'reconnected')]);
    const downAt = Date.now();
    await first.close();
    await reconnecting;
    assert.deepEqual([outgoing.state, incoming.state], ['reconnecting', 'reconnecting']);
    await failedOnce;
    const failed = asked.find((c) => c.retryCount >= 1)!;
    assert.ok(failed.retryReason instanceof Error, 'the policy hears why the last attempt failed');
    assert.ok(failed.elapsedMs >= 100, 'and how long the phone has been away');
    const second = await startTestServer({ PORT: String(first.port) });
    servers.push(second);

    const [[a], [b]] = await ends;
    assert.deepEqual([a.reason, b.reason], ['connection_lost', 'connection_lost']);
    const infos = (await back).map(([info]) => info);
    assert.deepEqual(infos.map((i) => i.resumed), [false, false]);
    t.diagnostic(`server down → both phones back on the new server in ${Date.now() - downAt} ms`);
    assert.equal(carol.state, 'connected');
    await lab.sees(carol, 'dave');
  });
});
