/** The run's report as Markdown (beside the JSON and the SVG chart). */
import type { BenchReport } from './run.js';
import type { Percentiles } from './stats.js';
import { warmUpTimes } from './saturation.js';
import { VIDEO_SDP_BYTES } from './sdp.js';

const f = (n: number | null | undefined, digits = 2) => (n === null || n === undefined || !Number.isFinite(n) ? 'n/a' : n.toFixed(digits));
const kib = (n: number | null | undefined) => (n === null || n === undefined || !Number.isFinite(n) ? 'n/a' : `${(n / 1024).toFixed(1)} KiB`);
const mib = (n: number | null | undefined) => (n === null || n === undefined || !Number.isFinite(n) ? 'n/a' : `${(n / 2 ** 20).toFixed(1)} MiB`);
const x = (n: number | undefined) => (n === undefined || !Number.isFinite(n) ? 'n/a' : `${n.toFixed(2)}×`);
const pct = (p: Percentiles) => `${f(p.p50)} / ${f(p.p95)} / ${f(p.p99)}`;

function table(head: string[], rows: (string | number)[][]): string {
  return [`| ${head.join(' | ')} |`, `| ${head.map(() => '---').join(' | ')} |`, ...rows.map((r) => `| ${r.join(' | ')} |`)].join('\n');
}

/** The title, the run's circumstances and the targets met. */
function header(r: BenchReport): string[] {
  const out: string[] = [];
  const m = r.meta;
  out.push(`# Switchboard bench — ${m.startedAt}`);
  out.push('');
  out.push(
    `\`${m.command}\` · ${f(m.durationS, 0)} s · Node ${m.node} · ${m.cores} × ${m.cpuModel} · ` +
      (m.pinned ? `servers pinned to CPU ${m.serverCpu}, generator to CPU ${m.generatorCpu}` : 'not pinned') +
      ` · server LOG_LEVEL=${m.logLevel} · load average ${m.loadAvgStart.map((v) => v.toFixed(2)).join(' ')} → ${m.loadAvgEnd.map((v) => v.toFixed(2)).join(' ')}` +
      (m.quick ? ' · **quick smoke run: tiny counts, not a measurement**' : ''),
  );
  out.push('');
  out.push('## Targets');
  out.push('');
  out.push(
    table(
      ['measure', 'target', 'this run', 'met'],
      r.checks.map((c) => [c.name, c.target, c.detail ? `${c.value} (${c.detail})` : c.value, c.ok === null ? '—' : c.ok ? 'yes' : '**no**']),
    ),
  );
  return out;
}

/** Saturation: the summary, the ratios and every window. */
function saturationSection(r: BenchReport): string[] {
  const out: string[] = [];
  const s = r.saturation;
  if (!s) return [];
  out.push('');
  const warmup = s.warmups ? `a warm-up until CPU per call settles (${warmUpTimes(s.warmups)})` : `${s.warmupS} s warm-up`;
  out.push(`## Saturation — closed loop, ${s.pairs} concurrent pairs, ${s.windowS} s windows after ${warmup}, targets interleaved`);
  out.push('');
  out.push(
    table(
      ['target', 'calls/s', 'server CPU ms / call', 'server CPU (% of a core)', 'generator CPU (% of a core)', 'machine CPU pressure %', 'failed calls'],
      Object.entries(s.summary).map(([name, t]) => [
        name,
        f(t.callsPerSec, 0),
        f(t.serverCpuMsPerCall, 3),
        f(t.serverCpuPct, 0),
        `${f(t.generatorCpuPct, 0)}${t.generatorSaturated ? ' (**saturated**)' : ''}`,
        f(t.cpuPressurePct, 0),
        t.failed,
      ]),
    ),
  );
  out.push('');
  out.push('Medians over rounds. Ratios are taken round by round (each round runs every target back to back), then their median:');
  out.push('');
  if (s.cpuPerCallRatio) out.push(`- server CPU per call, Switchboard / bare: **${x(s.cpuPerCallRatio.median)}** (rounds: ${s.cpuPerCallRatio.perRound.map(x).join(', ')})`);
  if (s.callsPerSecRatio) out.push(`- calls/s, Switchboard / bare: **${x(s.callsPerSecRatio.median)}** (rounds: ${s.callsPerSecRatio.perRound.map(x).join(', ')})`);
  if (s.redisVsMemory) out.push(`- calls/s, Redis mode (2 nodes) / memory mode: **${x(s.redisVsMemory.median)}** (rounds: ${s.redisVsMemory.perRound.map(x).join(', ')})`);
  if (s.redisCpuPerCallRatio) out.push(`- server CPU per call (both nodes), Redis mode / memory mode: **${x(s.redisCpuPerCallRatio.median)}**`);
  if (s.clusterVsMemory) out.push(`- calls/s, Redis Cluster mode (2 nodes, 3 masters) / memory mode: **${x(s.clusterVsMemory.median)}** (rounds: ${s.clusterVsMemory.perRound.map(x).join(', ')})`);
  if (s.clusterVsRedis) out.push(`- calls/s, Redis Cluster mode / one Redis: **${x(s.clusterVsRedis.median)}**`);
  if (s.clusterCpuPerCallVsRedis) out.push(`- server CPU per call (both nodes), Redis Cluster mode / one Redis: **${x(s.clusterCpuPerCallVsRedis.median)}**`);
  if (s.videoCpuPerCallVsAudio) {
    const [audio, video] = [s.summary.switchboard, s.summary['switchboard-video']];
    out.push(
      `- video calls (SDPs of ${VIDEO_SDP_BYTES.offer.toLocaleString('en')}/${VIDEO_SDP_BYTES.answer.toLocaleString('en')} bytes, as Chromium's) on the same memory-mode node: server CPU per call ${f(video?.serverCpuMsPerCall, 3)} ms against ${f(audio?.serverCpuMsPerCall, 3)} ms for audio calls, **${x(s.videoCpuPerCallVsAudio.median)}** (rounds: ${s.videoCpuPerCallVsAudio.perRound.map(x).join(', ')}); calls/s ${x(s.videoVsAudio?.median ?? NaN)}`,
    );
  }
  for (const [name, label] of [
    ['switchboard-redis', 'Redis mode, the Redis server itself'],
    ['switchboard-cluster', 'Redis Cluster mode, its three masters together'],
  ] as const) {
    const rs = s.summary[name];
    if (rs?.redisCommandsPerCall === undefined) continue;
    const shared = name === 'switchboard-redis' && r.redis?.source === 'shared' ? ' (a shared Redis: other clients count too)' : '';
    out.push(`- ${label}: ${f(rs.redisCommandsPerCall, 1)} commands and ${f(rs.redisCpuMsPerCall, 3)} ms of its CPU per call${shared}`);
    if (rs.redisCommandMix) {
      out.push(`  - per call, by command (last window): ${Object.entries(rs.redisCommandMix).map(([k, v]) => `${k} ${v}`).join(', ')}`);
    }
  }
  out.push('');
  out.push('<details><summary>every window</summary>');
  out.push('');
  out.push(
    table(
      ['round', 'target', 'calls', 'calls/s', 'server ms/call', 'server %', 'generator %', 'CPU pressure %', 'incoming p50/p95/p99 ms', 'answer p50/p95/p99 ms', 'failed'],
      s.windows.map((w) => [w.round, w.target, w.calls, f(w.callsPerSec, 0), f(w.serverCpuMsPerCall, 3), f(w.serverCpuPct, 0), f(w.generatorCpuPct, 0), f(w.cpuPressurePct, 0), pct(w.incoming), pct(w.answer), w.failed]),
    ),
  );
  out.push('');
  out.push('</details>');
  return out;
}

/** Fixed offered load: one row per point, the CPU ratios and the chart. */
function loadSection(r: BenchReport, chartFile: string | null): string[] {
  const out: string[] = [];
  const l = r.load;
  if (!l) return [];
  out.push('');
  out.push(
    `## Fixed offered load — open-loop Poisson arrivals, ${l.windowS} s per point, ${l.pairs} pairs available; rates are fractions of Switchboard's saturation (${f(l.baseRate, 0)} calls/s${l.baseFrom === 'option' ? ', from --load-base' : ''}); latency from the scheduled send time${
      l.warmups ? `; each server first warmed until CPU per call settled (${warmUpTimes(l.warmups)})` : ''
    }`,
  );
  out.push('');
  out.push(
    table(
      ['offered', 'target', 'completed calls/s', 'request→incoming p50 / p95 / p99 ms', 'request→answer p50 / p95 / p99 ms', 'generator send lag p99 ms', 'queued for a pair', 'server event-loop max delay ms', 'server %', 'server ms/call', 'generator %', 'CPU pressure %', 'failed'],
      l.points.map((p) => [
        `${(p.fraction * 100).toFixed(0)}% = ${f(p.offeredRate, 0)}/s`,
        p.target,
        f(p.achievedRate, 0),
        pct(p.incoming),
        pct(p.answer),
        f(p.sendLag.p99),
        p.queued,
        p.eventLoopMaxMs === null ? '—' : f(p.eventLoopMaxMs, 0),
        f(p.serverCpuPct, 0),
        f(p.serverCpuMsPerCall, 3),
        f(p.generatorCpuPct, 0),
        f(p.cpuPressurePct, 0),
        p.failed,
      ]),
    ),
  );
  out.push('');
  for (const q of l.cpuPerCallRatios) {
    out.push(`- at ${(q.fraction * 100).toFixed(0)}% offered load, server CPU per call Switchboard / bare: **${x(q.ratio)}**`);
  }
  if (chartFile) {
    out.push('');
    out.push(`![latency against offered load](${chartFile})`);
  }
  return out;
}

/** Idle sessions: memory per session. */
function idleSection(r: BenchReport): string[] {
  const out: string[] = [];
  const i = r.idle;
  if (!i) return [];
  out.push('');
  out.push(`## Idle authenticated sessions — ${i.levels.join(' / ')} sessions, fresh process per run; per-session cost = slope over the levels`);
  out.push('');
  out.push(
    table(
      ['target', 'round', 'baseline RSS', ...i.levels.map((n) => `RSS at ${n}`), 'RSS / session', 'heap / session', 'held', 'open time'],
      i.runs.map((run) => [
        run.target,
        run.round,
        mib(run.baseline.rssBytes),
        ...i.levels.map((n) => mib(run.points.find((p) => p.sessions === n)?.rssBytes)),
        kib(run.rssPerSession),
        kib(run.heapPerSession),
        run.sessionsHeld + (run.error ? ` (${run.error})` : ''),
        `${f(run.openSeconds, 1)} s`,
      ]),
    ),
  );
  out.push('');
  if (i.rssRatio) out.push(`- RSS per session, Switchboard / bare: **${x(i.rssRatio.median)}** (rounds: ${i.rssRatio.perRound.map(x).join(', ')})`);
  if (i.heapRatio) out.push(`- V8 heap per session, Switchboard / bare: **${x(i.heapRatio.median)}** (rounds: ${i.heapRatio.perRound.map(x).join(', ')})`);
  return out;
}

/** Presence fan-out. */
function fanoutSection(r: BenchReport): string[] {
  const out: string[] = [];
  const fo = r.fanout;
  if (!fo) return [];
  out.push('');
  out.push('## Presence fan-out — one user comes online; time from its connect until every watcher saw `user:online` (median of reps)');
  out.push('');
  out.push(
    table(
      ['watchers', 'target', 'all saw it, ms', 'first saw it, ms'],
      fo.summary.map((row) => [row.watchers, row.target, f(row.allMs), f(row.firstMs)]),
    ),
  );
  out.push('');
  for (const q of fo.ratios) out.push(`- ${q.watchers} watchers, Switchboard / bare: **${x(q.ratio)}**`);
  return out;
}

/** Quality reports: CPU per call-minute with and without `call:quality`, and against a call's setup. */
function qualitySection(r: BenchReport): string[] {
  const out: string[] = [];
  const q = r.quality;
  if (!q) return [];
  out.push('');
  out.push(
    `## Quality reports — ${q.calls} active calls per server held ${f(q.holdS, 0)} s (after a ${f(q.leadS, 1)} s lead-in), both parties sending \`call:quality\` every ${q.reportEveryMs} ms without an ack on one server, silent on the other; ${q.rounds} rounds, the servers swapping roles`,
  );
  out.push('');
  out.push(
    table(
      ['server', 'with reports, ms CPU / call-minute', 'silent, ms CPU / call-minute', 'difference', 'reports sent / call-minute', 'per report µs', "one call's setup, ms CPU", 'difference / setup', 'hang-up ms CPU / call', 'reports sent → at the server → reached the peer', 'failed calls'],
      q.summary.map((s) => [
        s.kind === 'memory' ? 'Switchboard, memory' : 'Switchboard, Redis (2 nodes, summed)',
        f(s.withMs, 3),
        f(s.withoutMs, 3),
        `**${f(s.diffMs, 3)}**`,
        f(s.reportsPerCallMinute, 1),
        f(s.perReportUs, 1),
        f(s.setupMs, 3),
        `**${f(s.diffPctOfSetup, 1)}%**`,
        f(s.hangUpMs, 3),
        `${s.reportsSent} → ${s.reportsAtServer ?? 'n/a'} → ${s.reportsReceived}${s.silentReceived ? ` (silent server: ${s.silentReceived})` : ''}`,
        s.failed,
      ]),
    ),
  );
  out.push('');
  out.push(
    `Medians over rounds; each round compares the reporting server with the silent one of the same kind over the same window. A call-minute is one held call for one minute (at exactly one report a second per party, 120 reports; a late timer delays a party's next report, so a busy generator sends fewer); per report = the difference / reports sent. The server forwards a report to the peer only when it changes the party's level or warnings: every tenth report of a party dips to fair and back, so a fifth of the reports reach the peer; fewer than the changes sent means reports dropped as early (more than 500 ms before due) or in flight at the window's edges. Setup: request to the answer and the candidates, per call, the calls set up ${q.concurrency} at a time on a warmed server (warm-ups: ${Object.entries(q.warmups)
      .map(([label, w]) => `${label} ${f(w.seconds, 0)} s`)
      .join(', ')}).`,
  );
  const sat = r.saturation?.summary.switchboard?.serverCpuMsPerCall;
  const mem = q.summary.find((s) => s.kind === 'memory');
  if (sat !== undefined && mem) out.push(`For reference, a whole call at saturation in this run: ${f(sat, 3)} ms; the difference is ${f((100 * mem.diffMs) / sat, 1)}% of it.`);
  out.push('');
  out.push('<details><summary>every round</summary>');
  out.push('');
  out.push(
    table(
      ['round', 'server', 'reports', 'calls', 'setup ms CPU / call', 'window s', 'server ms CPU in window', 'ms CPU / call-minute', 'server %', 'sent', 'at the server', 'reached the peer', 'stray', 'hang-up ms / call', 'generator %', 'CPU pressure %', 'failed'],
      q.arms.map((a) => [
        a.round,
        a.label,
        a.reporting ? 'yes' : 'no',
        a.calls,
        f(a.setupCpuMsPerCall, 3),
        f(a.windowMs / 1000, 1),
        f(a.windowCpuMs, 0),
        f(a.cpuMsPerCallMinute, 3),
        f(a.serverCpuPct, 1),
        a.reportsSent,
        a.reportsAtServer ?? 'n/a',
        a.reportsReceived,
        a.strayReports,
        f(a.hangUpCpuMsPerCall, 3),
        f(a.generatorCpuPct, 0),
        f(a.cpuPressurePct, 0),
        a.failed,
      ]),
    ),
  );
  out.push('');
  out.push(
    table(
      ['round', 'kind', 'reporting', 'silent', 'with', 'without', 'difference ms / call-minute', 'setup ms', 'difference / setup', 'per report µs'],
      q.perRound.map((p) => [p.round, p.kind, p.reporting, p.silent, f(p.withMs, 3), f(p.withoutMs, 3), f(p.diffMs, 3), f(p.setupMs, 3), `${f(p.diffPctOfSetup, 1)}%`, f(p.perReportUs, 1)]),
    ),
  );
  out.push('');
  out.push('</details>');
  return out;
}

/** Failed calls, server complaints and crashes, the run's notes. */
function oddities(r: BenchReport): string[] {
  const out: string[] = [];
  out.push('');
  out.push('## Errors and oddities');
  out.push('');
  const counters = [...Object.entries(r.counters), ...Object.entries(r.quality?.counters ?? {}).map(([label, c]) => [`quality ${label}`, c] as const)];
  const counterRows = counters.map(([name, c]) => [
    name,
    c.completed,
    c.failed,
    c.outOfOrder,
    c.incomplete,
    Object.entries(c.reasons)
      .map(([k, v]) => `${k} ×${v}`)
      .join(', ') || '—',
  ]);
  if (counterRows.length) out.push(table(['target', 'calls completed', 'failed', 'candidate before its offer/answer', 'ended incomplete', 'reasons'], counterRows));
  out.push('');
  out.push(
    table(
      ['server process', 'warn lines', 'error lines', 'error answers (metrics)', 'crashed'],
      r.servers.map((p) => [
        p.label,
        p.warnings,
        p.errors,
        Object.entries(p.errorCounters)
          .map(([k, v]) => `${k} ×${v}`)
          .join(', ') || '—',
        p.crashed ?? 'no',
      ]),
    ),
  );
  const samples = r.servers.flatMap((p) => p.samples.map((line) => `${p.label}: ${line}`));
  if (samples.length) {
    out.push('');
    out.push('```');
    out.push(...samples.slice(0, 20));
    out.push('```');
  }
  return out;
}

/** The notes a reader of the numbers must see. */
function notesSection(r: BenchReport): string[] {
  const out: string[] = [];
  if (r.notes.length) {
    out.push('');
    out.push('## Notes');
    out.push('');
    for (const n of r.notes) out.push(`- ${n}`);
  }
  return out;
}

export function markdownReport(r: BenchReport, chartFile: string | null): string {
  return [...header(r), ...saturationSection(r), ...loadSection(r, chartFile), ...idleSection(r), ...fanoutSection(r), ...qualitySection(r), ...oddities(r), ...notesSection(r), ''].join('\n');
}
