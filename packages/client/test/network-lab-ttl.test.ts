/**
 * TURN credentials outlived by a session, in the network lab (see
 * network-lab.test.ts): with `TURN_TTL_S=60`, the credentials handed out at
 * sign-in have expired 90 s later, and a call placed then still connects
 * through coturn, because the server puts fresh credentials on the
 * `call:request` ack and on `call:incoming`. Its own lab and server (another
 * TTL), in a file of its own so that it runs beside network-lab.test.ts.
 *
 * Needs root (network namespaces, nftables) and coturn's `turnserver`.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { LabPhone } from '../../../test/lab/lab-phone.js';
import { NetLab } from '../../../test/lab/netlab.js';
import { assertBothRelayed, connectedCall, hangUp, startPair } from '../../../test/lab/calls.js';

const TURN_TTL_S = 60;
const AGE_MS = 90_000;

/**
 * Lets time pass so that credentials issued now expire: the one deliberate
 * wait of the lab tests, because the passing of time is this test's subject.
 */
function ageCredentials(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

describe('network lab: TURN credentials older than their TTL', () => {
  let lab: NetLab;
  let alice: LabPhone;
  let bob: LabPhone;
  let signedInAt: number;

  before(async () => {
    lab = await NetLab.start({ turnTtlS: TURN_TTL_S });
    [alice, bob] = await startPair(lab);
    signedInAt = Date.now();
  });

  after(async () => {
    await lab?.close();
    for (const { name, exit } of lab?.agentExits ?? []) console.log(`netlab: ${name}'s agent exited: ${exit.signal ?? `code ${exit.code}`}`);
  });

  test(`a call placed ${AGE_MS / 1000} s after sign-in (TURN_TTL_S=${TURN_TTL_S}) connects through TURN with fresh credentials`, { timeout: AGE_MS + 60_000 }, async (t) => {
    await ageCredentials(AGE_MS);
    const callAt = Date.now();
    assert.ok(callAt - signedInAt > (TURN_TTL_S + 20) * 1000, 'the sign-in credentials have expired, with a margin');
    assert.deepEqual(lab.turnAllocations(), [], 'nothing was allocated before the call');

    const placed = await connectedCall(alice, bob);
    t.diagnostic(`call() → both connected ${placed.connectMs} ms; → tone at bob ${placed.firstAudioMs.callee} ms, at alice ${placed.firstAudioMs.caller} ms`);
    t.diagnostic(await assertBothRelayed(alice, bob));

    // coturn granted allocations to both, each under a user name whose expiry was issued at the call, not at sign-in.
    const allocations = lab.turnAllocations();
    t.diagnostic(`allocations: ${allocations.map((a) => `${a.user} until +${a.expiresAt - Math.floor(callAt / 1000)} s`).join(', ')}`);
    for (const user of ['alice', 'bob']) assert.ok(allocations.some((a) => a.user === user), `coturn allocated a relay for ${user}`);
    for (const { user, expiresAt } of allocations) {
      assert.ok(expiresAt * 1000 > callAt, `${user}'s credentials were valid at the call`);
      assert.ok(expiresAt * 1000 <= Date.now() + TURN_TTL_S * 1000, `${user}'s credentials live TURN_TTL_S`);
    }

    assert.deepEqual(await hangUp(alice, bob), { reason: 'hangup', by: 'alice' });
  });
});
