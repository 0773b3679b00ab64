/**
 * `npm run bench:media`: media on real networks, in the network lab
 * (test/lab/netlab.ts: two NATs, coturn, direct paths dropped), over REPS
 * repetitions (default 10), with a progress line per repetition and the
 * median and maximum of each figure at the end:
 *
 * - `call()` → first audio through TURN, at the callee and at the caller;
 * - network change (the caller moved to another router mid-call) → audio
 *   back at both ends (server pings at their defaults, so only the SDK's own
 *   recovery can be quick);
 * - signalling dropped silently for 3 s (media untouched) → the call
 *   `connected` again after the unblock (server pings 1 s + 1 s, as a
 *   deployment that wants this fast would set them).
 *
 * The lab has no netem (no added delay or jitter), so these are floors.
 * Needs root, nftables and coturn. The report also goes to bench/results/.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { audioBack, connectedCall, hangUp, startPair } from '../../test/lab/calls.js';
import type { LabPhone } from '../../test/lab/lab-phone.js';
import { NetLab } from '../../test/lab/netlab.js';
import { max, median } from './stats.js';

const REPS = Number(process.env.REPS ?? 10);
type Figures = Record<string, number[]>;

/** A phone's phone-state, call-state and audio changes since `since`, in ms after `t0`. */
function timeline(phone: LabPhone, since: number, t0: number): string {
  const kinds = ['phone', 'call', 'audio'] as const;
  const events = kinds.flatMap((k) => phone.eventsOf(k, since).map((e) => ({ t: e.t, what: `${k}:${'state' in e ? e.state : 'present' in e ? (e.present ? 'on' : 'off') : ''}` })));
  return events
    .sort((a, b) => a.t - b.t)
    .map((e) => `${e.what}@${e.t - t0}`)
    .join(' ');
}

async function callsAndMoves(figures: Figures): Promise<void> {
  // A bench places more calls to one callee than a user may (6 a minute): the rate limits are off. And
  // alice resumes her session once per network change, a move every few seconds: more resumptions
  // than a session may make within one grace window (MAX_RECONNECT_ATTEMPTS, 5; the sixth is refused).
  const lab = await NetLab.start({ serverEnv: { RATE_LIMITS: 'off', MAX_RECONNECT_ATTEMPTS: '1000' } });
  try {
    const [alice, bob] = await startPair(lab);
    for (let rep = 1; rep <= REPS; rep++) {
      const placed = await connectedCall(alice, bob);
      figures['call() → first audio at the callee (ms)']!.push(placed.firstAudioMs.callee);
      figures['call() → first audio at the caller (ms)']!.push(placed.firstAudioMs.caller);
      const marks = { alice: alice.mark(), bob: bob.mark() };
      const movedAt = Date.now();
      await lab.move('alice', lab.routerOf('alice') === 'r1' ? 'r3' : 'r1');
      const back = await Promise.all([audioBack(alice, marks.alice), audioBack(bob, marks.bob)]);
      const ms = Math.max(...back) - movedAt;
      figures['network change → audio back at both ends (ms)']!.push(ms);
      if (rep === 1) console.log(`  where the time goes (ms after the move): ${timeline(alice, marks.alice, movedAt)} | bob: ${timeline(bob, marks.bob, movedAt)}`);
      await hangUp(alice, bob);
      console.log(`[${rep}/${REPS}] first audio ${placed.firstAudioMs.callee}/${placed.firstAudioMs.caller} ms; network change → audio back ${ms} ms`);
    }
  } finally {
    await lab.close();
  }
}

async function signallingDrops(figures: Figures): Promise<void> {
  const lab = await NetLab.start({ serverEnv: { PING_INTERVAL_MS: '1000', PING_TIMEOUT_MS: '1000', RATE_LIMITS: 'off' } });
  try {
    const [alice, bob] = await startPair(lab);
    await connectedCall(alice, bob);
    for (let rep = 1; rep <= REPS; rep++) {
      const mark = alice.mark();
      await lab.blockSignalling('alice', 'drop');
      await alice.waitFor('phone', (e) => e.state === 'reconnecting', { since: mark, timeoutMs: 10_000 });
      await new Promise((resolve) => setTimeout(resolve, 3000)); // the cut itself
      await lab.unblockSignalling('alice');
      const unblockedAt = Date.now();
      const back = await alice.callState('connected', { since: mark, timeoutMs: 30_000 });
      figures['signalling drop: unblock → connected again (ms)']!.push(back.t - unblockedAt);
      console.log(`[${rep}/${REPS}] signalling drop: unblock → connected ${back.t - unblockedAt} ms`);
    }
    await hangUp(alice, bob);
  } finally {
    await lab.close();
  }
}

function summary(figures: Figures): string {
  const rows = Object.entries(figures).map(([name, values]) => `| ${name} | ${values.length} | ${Math.round(median(values))} | ${max(values)} |`);
  return ['| figure | reps | median | max |', '| --- | --- | --- | --- |', ...rows].join('\n');
}

const figures: Figures = {
  'call() → first audio at the callee (ms)': [],
  'call() → first audio at the caller (ms)': [],
  'network change → audio back at both ends (ms)': [],
  'signalling drop: unblock → connected again (ms)': [],
};
console.log(`bench:media: ${REPS} repetitions in the network lab`);
await callsAndMoves(figures);
await signallingDrops(figures);
const report = `# Media on real networks (${new Date().toISOString()})\n\n${summary(figures)}\n`;
console.log(`\n${report}`);
mkdirSync(new URL('../results/', import.meta.url), { recursive: true });
writeFileSync(new URL(`../results/media-${new Date().toISOString().replace(/[:.]/g, '-')}.md`, import.meta.url), report);
