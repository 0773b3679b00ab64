/**
 * The latency tail against the garbage collector: one memory-mode server on
 * CPU 1 (the generator on CPU 0), a closed-loop warm-up of 32 pairs, then
 * open-loop Poisson arrivals at `rate` calls/s over 128 pairs for `seconds`.
 * Prints p50/p99 request→incoming, the GCs in the window by kind, how much
 * reached the old generation per call (its growth from one scavenge to the
 * next), and the longest event-loop stalls with the GCs inside them.
 * HEAP=1 also samples, over the window, the allocations a scavenge did not
 * collect, and prints where they were made. SERVER_ENV=K=V,… passes settings,
 * NODE_FLAGS='--flag …' node flags to the server.
 * Usage: node --conditions=source --import tsx scripts/gc-latency.ts [rate=1320] [seconds=10] [warmup=12]
 */
import { mkdtempSync, readFileSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { newCounters } from '../bench/src/call.js';
import { openLoop } from '../bench/src/load.js';
import { envList, pinSelf, startProcess } from '../bench/src/processes.js';
import { closedLoop } from '../bench/src/saturation.js';
import { rng } from '../bench/src/stats.js';
import { closePairs, connectPairs, makeTarget } from '../bench/src/targets.js';

const rate = Number(process.argv[2] ?? 1320);
const seconds = Number(process.argv[3] ?? 10);
const warmupS = Number(process.argv[4] ?? 12);
const heap = process.env.HEAP === '1';
const dir = mkdtempSync(join(tmpdir(), 'sb-gc-'));
const watch = new URL('./gc-watch.mjs', import.meta.url).pathname;
const server = await startProcess({
  label: 'switchboard',
  kind: 'switchboard',
  cpu: 1,
  nodeArgs: [...(process.env.NODE_FLAGS ?? '').split(' ').filter(Boolean), '--import', watch],
  env: { ...envList(process.env.SERVER_ENV), GC_WATCH_DIR: dir },
});
pinSelf(0);
const target = makeTarget('switchboard', [server]);
const pairs = await connectPairs(target, 128, newCounters());
await closedLoop(target, pairs.slice(0, 32), warmupS * 1000);

if (heap) process.kill(server.pid, 'SIGUSR2');
const from = performance.timeOrigin + performance.now();
const point = await openLoop(target, pairs, rate, seconds * 1000, rng(1));
const to = from + seconds * 1000;
if (heap) {
  process.kill(server.pid, 'SIGUSR2');
  await new Promise((r) => setTimeout(r, 3000));
}
closePairs(pairs);
await server.stop();

interface Event {
  type: 'gc' | 'stall';
  t: number;
  d: number;
  k?: number;
  old?: number;
}
const events = readFileSync(join(dir, `events-${server.pid}.jsonl`), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as Event);
const inWindow = events.filter((e) => e.t >= from && e.t <= to);
const gcs = inWindow.filter((e) => e.type === 'gc');
const { incoming } = point;
console.log(`${point.calls} calls at ${rate}/s: request→incoming p50 ${incoming.p50.toFixed(2)} p95 ${incoming.p95.toFixed(2)} p99 ${incoming.p99.toFixed(2)} max ${incoming.max.toFixed(1)} ms`);
const KINDS: Record<number, string> = { 1: 'scavenge', 4: 'mark-compact', 8: 'incremental marking', 16: 'weak callbacks' };
for (const [kind, name] of Object.entries(KINDS)) {
  const ds = gcs.filter((g) => g.k === Number(kind)).map((g) => g.d);
  if (ds.length > 0) console.log(`  ${name}: ${ds.length}, longest ${Math.max(...ds).toFixed(1)} ms, ${ds.reduce((a, b) => a + b, 0).toFixed(0)} ms in all`);
}
let grown = 0;
let span = 0;
for (let i = 1; i < gcs.length; i++) {
  const [a, b] = [gcs[i - 1]!, gcs[i]!];
  if (a.k === 1 && b.k === 1 && a.old !== undefined && b.old !== undefined && b.old >= a.old) {
    grown += b.old - a.old;
    span += b.t - a.t;
  }
}
if (span > 0) console.log(`  reached the old generation: ${(grown / span / 1e3).toFixed(2)} MB/s, ${(grown / 1e3 / ((span / 1000) * rate)).toFixed(2)} KB per call`);
for (const s of inWindow.filter((e) => e.type === 'stall').sort((a, b) => b.d - a.d).slice(0, 5)) {
  const inside = gcs.filter((g) => g.t + g.d >= s.t - 1 && g.t <= s.t + s.d + 1).map((g) => `${KINDS[g.k ?? 0] ?? g.k} ${g.d.toFixed(1)} ms`);
  console.log(`  stall ${s.d.toFixed(1)} ms at +${(s.t - from).toFixed(0)} ms; GC in it: ${inside.join(', ') || 'none'}`);
}

if (heap) {
  interface ProfileNode {
    callFrame: { functionName: string; url: string; lineNumber: number };
    selfSize: number;
    children?: ProfileNode[];
  }
  const file = readdirSync(dir).find((f) => f.startsWith('heap-'));
  const profile = file ? (JSON.parse(readFileSync(join(dir, file), 'utf8')) as { head: ProfileNode }) : null;
  if (profile) {
    const bySite = new Map<string, number>();
    let total = 0;
    const walk = (node: ProfileNode) => {
      const f = node.callFrame;
      const site = `${f.functionName || '(anonymous)'} ${f.url.replace(/^.*node_modules\//, '').replace(/^file:\/\/.*?\/packages\//, 'packages/')}:${f.lineNumber + 1}`;
      if (node.selfSize > 0) {
        bySite.set(site, (bySite.get(site) ?? 0) + node.selfSize);
        total += node.selfSize;
      }
      node.children?.forEach(walk);
    };
    walk(profile.head);
    console.log(`allocations no scavenge collected (sampled, ${(total / 1e6).toFixed(1)} MB), by site:`);
    for (const [site, bytes] of [...bySite].sort((a, b) => b[1] - a[1]).slice(0, 12)) console.log(`${((bytes / total) * 100).toFixed(1).padStart(6)}%  ${site}`);
  }
}
process.exit(0);
