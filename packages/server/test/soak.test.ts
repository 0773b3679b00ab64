/**
 * Soak: hundreds of abusers flood ICE candidates and call requests for a while
 * (SOAK_SECONDS, 12 by default; SOAK_ABUSERS, 200) while well-behaved pairs keep
 * calling. The abusers run in a worker thread (soak-abusers.mjs) so that their
 * loops do not share the server's event loop; the server and the legitimate
 * pairs run here.
 *
 * Held: every legitimate call completes, with a loose bound on its p99 setup
 * latency (reported, not tuned against); every abuser is limited (rate_limited,
 * or refused a session past MAX_SESSIONS_PER_USER) or cut; abusers that ignore
 * rate_limited are cut, abusers that back off as told never are; afterwards no
 * state is left and the heap is back near its start. Runs past the runner's 120 s limit need
 * `node --conditions=source --import tsx --test --test-timeout=0 packages/server/test/soak.test.ts`.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { once } from 'node:events';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { describe, test } from 'node:test';
import { setTimeout as delay } from 'node:timers/promises';
import { Worker } from 'node:worker_threads';
import { MemoryStore } from '../src/index.js';
import { TOMBSTONE_MS } from '../src/transport/calls.js';
import { expectOk, signIn, startTestServer, tokenFor, type TestClient } from './helpers.js';
import { assertNothingLeft, MB, metricSum, settledHeap, watchProcessErrors, type UserRef } from './hostile.js';

const SOAK_SECONDS = Number(process.env.SOAK_SECONDS ?? 12);
const ABUSERS = Number(process.env.SOAK_ABUSERS ?? 200);
/**
 * The abusers' tenants. Every call start and end is announced (user:status) to the whole tenant, so
 * abusers calling each other cost the server O(tenant size) packets per call: with all 200 in one
 * tenant (SOAK_TENANTS=1) that fan-out dominates the server's CPU. Four organisations of 50 is the default.
 */
const TENANTS = Number(process.env.SOAK_TENANTS ?? 4);
const LEGIT_PAIRS = 10;
const LEGIT_TENANT = 'soak-legit';
/** A person does not place calls back to back: one call per pair every 1.2 s (each user then spends ~1.5 of the 2 call tokens a second). */
const CALL_PACE_MS = 1200;
const STEP_MS = 10_000;
/**
 * A loose bound, not a target: measured p99 is 0.1–0.7 s with the soak alone on the first 2-core
 * development machine, and up to 1.5 s with the fuzz test running beside it (the runner runs two files
 * at once). A later 2-core machine, about three times slower per call (see docs/benchmarks.md), gave
 * 2.2–3.0 s with the soak alone. 6 s keeps that from flaking while still catching calls starved by the
 * flood (a starved call waits out its 30 s ring timeout).
 */
const P99_BOUND_MS = 6000;
const HEAP_BOUND = 50 * MB;

interface AbuserSpec {
  id: string;
  tenant: string;
  token: string;
  flood: 'ice' | 'request';
  obey: boolean;
  callee?: string;
}
interface AbuserStats {
  id: string;
  flood: 'ice' | 'request';
  obey: boolean;
  sent: number;
  limited: number;
  cuts: number;
  resumes: number;
  freshSignIns: number;
  capped: number;
  failedResumes: Record<string, number>;
  cutReasons: Record<string, number>;
}

const merge = (maps: Record<string, number>[]) =>
  maps.reduce<Record<string, number>>((all, m) => {
    for (const [k, v] of Object.entries(m)) all[k] = (all[k] ?? 0) + v;
    return all;
  }, {});
const quantile = (sorted: number[], q: number) => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? NaN;

describe('soak', () => {
  test(`${ABUSERS} abusers flood ICE and call requests: legitimate calls still complete, abusers are limited or cut, memory returns`, async () => {
    const watch = watchProcessErrors();
    const t0 = Date.now();
    const phases: string[] = [];
    const mark = (what: string) => phases.push(`${what} ${((Date.now() - t0) / 1000).toFixed(1)} s`);
    // Ended calls are kept five minutes by design (TOMBSTONE_MS) and history is kept per user: the store's clock
    // is moved past the first and the second is capped, so the heap check is about what should not stay.
    let storeSkewMs = 0;
    const store = new MemoryStore({ historyLimit: 5, now: () => Date.now() + storeSkewMs });
    const server = await startTestServer(
      {
        RECONNECT_GRACE_MS: '1500',
        // Every socket here comes from 127.0.0.1, where in production 200 abusers are 200 addresses: with the
        // default cap of 100 unauthenticated sockets per address, part of the abusers' opening burst (and of
        // their reconnections) would be refused before signing in — the cap working, but not what this measures.
        MAX_UNAUTHENTICATED_PER_ADDRESS: '1000',
      },
      { store },
    );
    let worker: Worker | undefined;
    const legitClients: TestClient[] = [];
    try {
      const users: UserRef[] = [];
      const setupMs: number[] = [];
      const ringMs: number[] = [];

      const pair = async (k: number) => {
        const ids = [`pair-${k}-a`, `pair-${k}-b`] as const;
        users.push(...ids.map((id) => ({ tenant: LEGIT_TENANT, id })));
        const a = await signIn(server, ids[0], { tenant: LEGIT_TENANT });
        const b = await signIn(server, ids[1], { tenant: LEGIT_TENANT });
        legitClients.push(a, b);
        return { a, b, ids };
      };
      /** One whole call; the roles alternate. Returns its setup time (request → answer relayed back). */
      const call = async (p: Awaited<ReturnType<typeof pair>>, n: number) => {
        const [caller, callee, callerId, calleeId] = n % 2 === 0 ? [p.a, p.b, p.ids[0], p.ids[1]] : [p.b, p.a, p.ids[1], p.ids[0]];
        const callId = randomUUID();
        const started = performance.now();
        expectOk(await caller.request('call:request', { to: calleeId, callId }, STEP_MS));
        await callee.next('call:incoming', (x) => x.callId === callId, STEP_MS);
        ringMs.push(performance.now() - started);
        expectOk(await callee.request('call:accept', { callId }, STEP_MS));
        await caller.next('call:accepted', (x) => x.callId === callId, STEP_MS);
        caller.socket.emit('webrtc:offer', { callId, sdp: 'v=0 offer' });
        assert.equal((await callee.next('webrtc:offer', (x) => x.callId === callId, STEP_MS)).from, callerId);
        callee.socket.emit('webrtc:answer', { callId, sdp: 'v=0 answer' });
        assert.equal((await caller.next('webrtc:answer', (x) => x.callId === callId, STEP_MS)).from, calleeId);
        const setup = performance.now() - started;
        for (let i = 0; i < 3; i++) {
          caller.socket.emit('webrtc:ice-candidate', { callId, candidate: { candidate: `candidate:${i}`, sdpMid: '0' } });
          callee.socket.emit('webrtc:ice-candidate', { callId, candidate: { candidate: `candidate:${i}`, sdpMid: '0' } });
        }
        for (let i = 0; i < 3; i++) {
          assert.equal((await callee.next('webrtc:ice-candidate', (x) => x.callId === callId, STEP_MS)).candidate?.candidate, `candidate:${i}`);
          assert.equal((await caller.next('webrtc:ice-candidate', (x) => x.callId === callId, STEP_MS)).candidate?.candidate, `candidate:${i}`);
        }
        expectOk(await caller.request('call:end', { callId }, STEP_MS));
        assert.equal((await callee.next('call:ended', (x) => x.callId === callId, STEP_MS)).reason, 'hangup');
        return setup;
      };

      // Warm up, then the baseline.
      const warm = await pair(-1);
      await call(warm, 0);
      warm.a.close();
      warm.b.close();
      await assertNothingLeft(server, users);
      const heapBefore = await settledHeap();
      const serverSide: Record<string, number> = {};
      server.io.on('connection', (socket) => socket.on('disconnect', (reason) => (serverSide[reason] = (serverSide[reason] ?? 0) + 1)));

      const specs: AbuserSpec[] = [];
      for (let i = 0; i < ABUSERS; i++) {
        const id = `abuser-${i}`;
        const ice = i < ABUSERS / 2;
        // A quarter of them back off when told rate_limited; ICE pairs (2k, 2k+1) behave alike and share a tenant.
        const obey = ice ? Math.floor(i / 2) % 4 === 0 : i % 4 === 0;
        const tenant = `abuse-${Math.floor(i / 2) % TENANTS}`;
        specs.push({ id, tenant, token: await tokenFor(id, { tenant }), flood: ice ? 'ice' : 'request', obey, ...(ice && i % 2 === 0 ? { callee: `abuser-${i + 1}` } : {}) });
        users.push({ tenant, id });
      }
      // The legitimate pairs are signed in before the flood (a sign-in during the opening burst of 200 floods
      // can take seconds on a small machine); then they call through it.
      const pairs = await Promise.all(Array.from({ length: LEGIT_PAIRS }, (_, k) => pair(k)));
      worker = new Worker(new URL('./soak-abusers.mjs', import.meta.url), { workerData: { url: server.url, seconds: SOAK_SECONDS, abusers: specs } });
      const messages: { type: string; [k: string]: unknown }[] = [];
      const waitFor = (type: string, timeoutMs: number) =>
        new Promise<{ type: string; [k: string]: unknown }>((resolve, reject) => {
          const found = messages.find((m) => m.type === type);
          if (found) return resolve(found);
          const timer = setTimeout(() => reject(new Error(`the abusers' worker sent no ${type} within ${timeoutMs} ms`)), timeoutMs);
          const onMessage = (m: { type: string }) => {
            if (m.type === type) {
              clearTimeout(timer);
              worker!.off('message', onMessage);
              resolve(m);
            }
          };
          worker!.on('message', onMessage);
        });
      worker.on('message', (m: { type: string }) => messages.push(m));
      const workerError = new Promise<never>((_, reject) => worker!.once('error', reject));
      const ready = await Promise.race([waitFor('ready', 60_000), workerError]);
      mark('abusers ready');

      // The flood is on: the legitimate pairs keep calling until it stops.
      const loop = monitorEventLoopDelay({ resolution: 10 });
      loop.enable();
      const floodEnds = Date.now() + SOAK_SECONDS * 1000;
      const perPair = await Promise.all(
        pairs.map(async (p) => {
          let n = 0;
          while (Date.now() < floodEnds) {
            const started = Date.now();
            setupMs.push(await call(p, n++));
            const next = started + CALL_PACE_MS;
            if (next >= floodEnds) break;
            await delay(next - Date.now());
          }
          return n;
        }),
      );
      mark('flood over');
      const done = await Promise.race([waitFor('done', 60_000), workerError]);
      mark('abusers done');
      loop.disable();
      const [exitCode] = (await Promise.race([once(worker, 'exit'), delay(30_000, undefined, { ref: false }).then(() => [`no exit`])])) as [number | string];
      worker = undefined;
      mark('worker exited');
      legitClients.forEach((c) => c.close());
      // Their inboxes hold every user:status of the legitimate tenant they never consumed: test memory, not the server's.
      legitClients.forEach((c) => c.clear());
      const rateLimited = await metricSum(server, 'switchboard_rate_limited_total');
      const callsEnded = await metricSum(server, 'switchboard_calls_total');

      const stats = done.stats as AbuserStats[];
      const sorted = [...setupMs].sort((x, y) => x - y);
      const ringSorted = [...ringMs].sort((x, y) => x - y);
      const ignorers = stats.filter((s) => !s.obey);
      const obeyers = stats.filter((s) => s.obey);
      const sum = (xs: AbuserStats[], k: keyof AbuserStats) => xs.reduce((t, s) => t + (s[k] as number), 0);

      await assertNothingLeft(server, users, 30_000);
      assert.equal((await fetch(`${server.url}/healthz`)).status, 200);
      assert.equal((await fetch(`${server.url}/readyz`)).status, 200);
      mark('state clean');
      storeSkewMs = TOMBSTONE_MS + 60_000;
      (store as unknown as { sweepTombstones(): void }).sweepTombstones();
      const heapAfter = await settledHeap();

      console.log(
        [
          `soak: ${stats.length} abusers in ${TENANTS} tenant(s) (${ready.signedIn} signed in, ${ready.inCalls} in ICE-flooding calls) for ${SOAK_SECONDS} s, worker exit ${exitCode}`,
          `  abusers sent ${sum(stats, 'sent')} events; server refused ${rateLimited} with rate_limited; ${callsEnded} calls ended in all (abusers calling each other, and the legitimate ones)`,
          `  ignoring rate limits: ${ignorers.length}, of which ${ignorers.filter((s) => s.cuts > 0).length} cut (${sum(ignorers, 'cuts')} cuts in all; came back ${sum(ignorers, 'resumes')} times by reconnect:attempt, ${sum(ignorers, 'freshSignIns')} by a fresh sign-in; ${sum(ignorers, 'capped')} sign-ins refused by MAX_SESSIONS_PER_USER)`,
          `  backing off when limited: ${obeyers.length}, of which ${obeyers.filter((s) => s.limited > 0).length} limited, ${obeyers.filter((s) => s.cuts > 0).length} cut`,
          `  legitimate: ${setupMs.length} calls by ${LEGIT_PAIRS} pairs (${perPair.join('/')}), setup (request → answer) p50 ${quantile(sorted, 0.5).toFixed(1)} ms, p95 ${quantile(sorted, 0.95).toFixed(1)} ms, p99 ${quantile(sorted, 0.99).toFixed(1)} ms, max ${quantile(sorted, 1).toFixed(1)} ms; ring (request → incoming) p99 ${quantile(ringSorted, 0.99).toFixed(1)} ms`,
          `  server event-loop delay during the flood: p50 ${(loop.percentile(50) / 1e6).toFixed(1)} ms, p99 ${(loop.percentile(99) / 1e6).toFixed(1)} ms, max ${(loop.max / 1e6).toFixed(1)} ms`,
          `  server-side disconnect reasons: ${JSON.stringify(serverSide)}; abusers' failed resumes: ${JSON.stringify(merge(stats.map((s) => s.failedResumes)))}; cut reasons seen by abusers: ${JSON.stringify(merge(stats.map((s) => s.cutReasons)))}`,
          `  timeline: ${phases.join(', ')}`,
          `  heap (after GC): ${(heapBefore / MB).toFixed(1)} MB before, ${(heapAfter / MB).toFixed(1)} MB after`,
        ].join('\n'),
      );

      assert.deepEqual(watch.errors, [], 'nothing uncaught in the server process');
      assert.equal(ready.signedIn, ABUSERS, 'every abuser signed in');
      assert.ok(perPair.every((n) => n >= 2), `every pair kept calling (${perPair.join('/')})`);
      assert.ok(quantile(sorted, 0.99) < P99_BOUND_MS, `p99 setup ${quantile(sorted, 0.99).toFixed(0)} ms < ${P99_BOUND_MS} ms`);
      const untouched = stats.filter((s) => s.limited + s.capped === 0 && s.cuts === 0).map((s) => s.id);
      assert.deepEqual(untouched, [], 'every abuser was limited or cut');
      assert.deepEqual(ignorers.filter((s) => s.cuts === 0).map((s) => s.id), [], 'every abuser that ignores rate_limited is cut');
      assert.deepEqual(obeyers.filter((s) => s.cuts > 0).map((s) => s.id), [], 'no abuser that backs off as told is cut');
      assert.ok(heapAfter - heapBefore < HEAP_BOUND, `heap grew by ${((heapAfter - heapBefore) / MB).toFixed(1)} MB (bound ${HEAP_BOUND / MB} MB)`);
    } finally {
      watch.stop();
      legitClients.forEach((c) => c.close());
      await worker?.terminate();
      await server.close();
    }
  });
});
