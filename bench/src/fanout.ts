/**
 * Presence fan-out: N watchers connected, then one user comes online; the time
 * from that user's connect to the moment all N watchers saw `user:online`.
 * Switchboard runs with CONTACTS=claims (each watcher's token lists the users it
 * watches), so watchers do not see each other and set-up stays O(N).
 */
import { performance } from 'node:perf_hooks';
import { authFor, closeAll, openMany, openSession, openSpec, type Socket } from './clients.js';
import { sleep, within } from './measure.js';
import type { Progress } from './progress.js';
import { median, ratio } from './stats.js';
import type { ServerKind, ServerProcess } from './processes.js';

export interface FanoutRep {
  target: ServerKind;
  watchers: number;
  rep: number;
  /** Star's connect → first watcher saw it, ms. */
  firstMs: number;
  /** Star's connect → every watcher saw it, ms. */
  allMs: number;
  seen: number;
}

export interface FanoutResult {
  watchers: number[];
  reps: FanoutRep[];
  summary: { target: ServerKind; watchers: number; firstMs: number; allMs: number }[];
  /** Switchboard / bare of the median all-seen time, per watcher count. */
  ratios: { watchers: number; ratio: number }[];
}

interface Watch {
  star: string;
  t0: number;
  seen: number;
  firstAt: number;
  allAt: number;
  done: () => void;
}

export interface FanoutInput {
  servers: Record<ServerKind, ServerProcess>;
  watchers: number[];
  reps: number;
  concurrency: number;
  timeoutMs: number;
  progress: Progress;
}

export async function runFanout(input: FanoutInput): Promise<FanoutResult> {
  const { servers, reps, progress } = input;
  const out: FanoutRep[] = [];
  for (const n of input.watchers) {
    const stars = Array.from({ length: reps }, (_, r) => `s${n}-${r}`);
    const groups = {} as Record<ServerKind, { sockets: Socket[]; current: { w: Watch | null } }>;
    for (const kind of ['switchboard', 'bare'] as const) {
      const current: { w: Watch | null } = { w: null };
      const phase = `fan-out: ${n} watchers on ${kind}`;
      const sockets = await openMany(
        n,
        input.concurrency,
        async (i) => {
          const s = await openSpec(servers[kind].url, kind, { userId: `w${n}-${i}`, watch: stars });
          s.on('user:online', (p: { user?: { id?: string } }) => {
            const w = current.w;
            if (!w || p?.user?.id !== w.star) return;
            const now = performance.now();
            if (w.seen++ === 0) w.firstAt = now;
            if (w.seen === n) {
              w.allAt = now;
              w.done();
            }
          });
          return s;
        },
        (done) => progress.update(phase, `${done}`),
      );
      groups[kind] = { sockets, current };
    }
    for (let rep = 0; rep < reps; rep++) {
      for (const kind of ['switchboard', 'bare'] as const) {
        const star = stars[rep]!;
        const auth = await authFor(kind, { userId: star });
        const g = groups[kind];
        let done: () => void = () => undefined;
        const finished = new Promise<void>((r) => (done = r));
        const w: Watch = { star, t0: performance.now(), seen: 0, firstAt: 0, allAt: 0, done };
        g.current.w = w;
        const socket = await openSession(servers[kind].url, kind, auth);
        await within(finished, input.timeoutMs);
        g.current.w = null;
        socket.disconnect();
        out.push({
          target: kind,
          watchers: n,
          rep,
          firstMs: w.firstAt ? w.firstAt - w.t0 : NaN,
          allMs: w.allAt ? w.allAt - w.t0 : NaN,
          seen: w.seen,
        });
        const r = out[out.length - 1]!;
        progress.log(`  fan-out ${n} watchers, ${kind} #${rep + 1}: all saw user:online after ${r.allMs.toFixed(1)} ms (first ${r.firstMs.toFixed(1)} ms)${r.seen < n ? `, only ${r.seen} saw it` : ''}`);
        await sleep(100);
      }
    }
    for (const g of Object.values(groups)) closeAll(g.sockets);
    await sleep(200);
  }
  const summary: FanoutResult['summary'] = [];
  const ratios: FanoutResult['ratios'] = [];
  for (const n of input.watchers) {
    const allOf = (kind: ServerKind) => median(out.filter((r) => r.target === kind && r.watchers === n).map((r) => r.allMs));
    for (const kind of ['switchboard', 'bare'] as const) {
      summary.push({ target: kind, watchers: n, allMs: allOf(kind), firstMs: median(out.filter((r) => r.target === kind && r.watchers === n).map((r) => r.firstMs)) });
    }
    ratios.push({ watchers: n, ratio: ratio(allOf('switchboard'), allOf('bare')) });
  }
  return { watchers: input.watchers, reps: out, summary, ratios };
}
