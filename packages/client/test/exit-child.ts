/**
 * A Node app's whole life on the SDK with @roamhq/wrtc, run as its own
 * process by exit.test.ts: sign in, a call with audio measured both ways,
 * hang up, `disconnect()`, and the end the SDK README prescribes.
 * `SERVER_URL` names the server (signed with the test secret).
 */
import type { SwitchboardServer } from '../../server/src/index.js';
import { Lab, isTone, reach } from './support.js';

const lab = new Lab({ url: process.env.SERVER_URL } as SwitchboardServer);
const alice = await lab.online('exit-alice', 440);
const bob = await lab.online('exit-bob', 880);
await lab.sees(alice, 'exit-bob');
const { outgoing, incoming } = await lab.connectedCall(alice, bob);
await lab.meter(await lab.remoteStream(incoming)).until(isTone(440));
await lab.meter(await lab.remoteStream(outgoing)).until(isTone(880));
await outgoing.hangup();
await reach(incoming, 'ended');
lab.cleanup(); // meters stopped, phones disconnected, tones stopped
console.log('done');
// What the README says a Node app on wrtc does once it has called disconnect(): end the process itself.
process.exit(0);
