/**
 * The failover scenario every replicated Redis topology must pass (v1.1,
 * "Redis failover"): two nodes, a call between them, the master that holds
 * it killed as a crash would. An event sent during the outage is answered
 * (ok or internal) within 10 s, `/readyz` says 503 and recovers, the call's
 * parties still relay and hang up, a new call across the nodes works, and no
 * node declared the other dead.
 */
import assert from 'node:assert/strict';
import type { TestContext } from 'node:test';
import { userKey } from '../src/calls/types.js';
import type { SwitchboardServer } from '../src/index.js';
import { freshPrefix } from '../../../test/support/redis.js';
import { pollUntil } from '../../../test/support/wait.js';
import { errorCode, establish, expectOk, signIn, startTestServer, type TestClient } from './helpers.js';

/**
 * Runs the scenario on the backend `env` reaches: `kill` kills the master
 * and resolves once its replica has taken over (its result is reported).
 */
export async function failoverMidCall(t: TestContext, env: Record<string, string>, kill: () => Promise<unknown>): Promise<void> {
  const config = { ...env, REDIS_PREFIX: freshPrefix(), NODE_TIMEOUT_MS: '3000', RECONNECT_GRACE_MS: '20000' };
  const nodes: SwitchboardServer[] = [await startTestServer(config), await startTestServer(config)];
  const clients: TestClient[] = [];
  try {
    const user = async (id: string, node: number) => {
      const c = await signIn(nodes[node]!, id);
      clients.push(c);
      return c;
    };
    const alice = await user('alice', 0);
    const bob = await user('bob', 1);
    const callId = await establish(alice, bob, 'bob');
    const ready = async (node: SwitchboardServer) => (await fetch(`${node.url}/readyz`)).status;

    const killed = Date.now();
    const promoted = kill();
    // During the outage the nodes say they are not ready, and an event is answered (ok or internal), never left hanging.
    await pollUntil('/readyz to answer 503', async () => (await ready(nodes[0]!)) === 503, 5000, 50);
    const sent = Date.now();
    const answered = await alice.request('call:mute', { callId }, 10_000);
    const answeredMs = Date.now() - sent;
    assert.ok(answered.ok || errorCode(answered) === 'internal', JSON.stringify(answered));
    const replica = await promoted;
    const promotedMs = Date.now() - killed;
    await pollUntil('both nodes ready again', async () => (await ready(nodes[0]!)) === 200 && (await ready(nodes[1]!)) === 200, 15_000, 100);
    t.diagnostic(
      `a mute sent during the outage (${sent - killed} ms after the kill) answered ${answered.ok ? 'ok' : 'internal'} in ${answeredMs} ms; ` +
        `the replica took over${replica === undefined ? '' : ` (${String(replica)})`} ${promotedMs} ms after the kill; both nodes ready ${Date.now() - killed} ms after`,
    );

    // The call's parties still relay (the binding needs no store) and everything that needs the store works again.
    alice.raw('webrtc:offer', { callId, sdp: 'v=0 after failover' });
    assert.equal((await bob.next('webrtc:offer')).sdp, 'v=0 after failover');
    await pollUntil('a control to be carried out again', async () => (await alice.request('call:hold', { callId })).ok, 10_000, 200);
    assert.deepEqual(await bob.next('call:hold'), { callId, userId: 'alice' });
    expectOk(await alice.request('call:end', { callId }));
    assert.equal((await bob.next('call:ended')).reason, 'hangup');

    const carol = await user('carol', 0);
    const dave = await user('dave', 1);
    const second = await establish(carol, dave, 'dave');
    expectOk(await dave.request('call:end', { callId: second }));
    await carol.next('call:ended');

    // No node declared the other dead: every session is still connected where it was.
    for (const id of ['alice', 'bob']) {
      const [session] = await nodes[0]!.store.sessionsOf(userKey('', id));
      assert.equal(session?.connected, true, `${id}'s session is still connected`);
    }
  } finally {
    clients.forEach((c) => c.close());
    await Promise.all(nodes.map((n) => n.close()));
  }
}
