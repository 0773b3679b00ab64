/** A hand-written SVG chart: latency percentiles against offered load, Switchboard and bare. */
import type { LoadPoint, LoadResult } from './load.js';
import type { Percentiles } from './stats.js';
import type { TargetName } from './targets.js';

const W = 460;
const H = 320;
const M = { top: 40, right: 16, bottom: 48, left: 56 };
const COLORS: Partial<Record<TargetName, string>> = { switchboard: '#1f6feb', bare: '#d9480f' };

const esc = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');

function niceStep(span: number, ticks = 5): number {
  const raw = span / ticks;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const f = raw / mag;
  return (f <= 1 ? 1 : f <= 2 ? 2 : f <= 5 ? 5 : 10) * mag;
}

function fmt(n: number): string {
  if (Number.isInteger(n) || Math.abs(n) >= 10) return n.toFixed(0);
  return Math.abs(n) >= 1 ? n.toFixed(1) : String(Number(n.toPrecision(2)));
}

function panel(points: LoadPoint[], pick: (p: LoadPoint) => Percentiles, title: string, dx: number, targetMs: number | null): string {
  const xsMax = Math.max(1, ...points.map((p) => p.offeredRate)) * 1.1;
  const values = points.flatMap((p) => [pick(p).p50, pick(p).p99]).filter((v) => Number.isFinite(v) && v > 0);
  const ysRaw = Math.max(0.001, targetMs ?? 0, ...values);
  const ysMin = Math.min(targetMs ?? Infinity, ...values);
  // A log axis when the figures span more than ~1.5 decades (a saturated point would flatten the rest).
  const log = values.length > 0 && ysRaw / ysMin > 30;
  const lo = log ? 10 ** Math.floor(Math.log10(ysMin)) : 0;
  const yStep = niceStep(ysRaw);
  const ysMax = log ? 10 ** Math.ceil(Math.log10(ysRaw)) : Math.ceil((ysRaw * 1.05) / yStep) * yStep;
  const xStep = niceStep(xsMax);
  const pw = W - M.left - M.right;
  const ph = H - M.top - M.bottom;
  const sx = (v: number) => dx + M.left + (v / xsMax) * pw;
  const sy = log
    ? (v: number) => M.top + ph - ((Math.log10(Math.max(v, lo)) - Math.log10(lo)) / (Math.log10(ysMax) - Math.log10(lo))) * ph
    : (v: number) => M.top + ph - (v / ysMax) * ph;
  const yTicks: number[] = [];
  if (log) for (let y = lo; y <= ysMax * 1.0001; y *= 10) yTicks.push(y);
  else for (let y = 0; y <= ysMax + 1e-9; y += yStep) yTicks.push(y);
  const out: string[] = [];
  out.push(`<text x="${dx + W / 2}" y="22" text-anchor="middle" font-size="14" font-weight="bold">${esc(title)}</text>`);
  for (const y of yTicks) {
    out.push(`<line x1="${sx(0)}" y1="${sy(y)}" x2="${sx(xsMax)}" y2="${sy(y)}" stroke="#e5e5e5"/>`);
    out.push(`<text x="${sx(0) - 6}" y="${sy(y) + 4}" text-anchor="end" font-size="11">${fmt(y)}</text>`);
  }
  for (let x = 0; x <= xsMax + 1e-9; x += xStep) {
    out.push(`<line x1="${sx(x)}" y1="${sy(lo)}" x2="${sx(x)}" y2="${sy(lo) + 4}" stroke="#333"/>`);
    out.push(`<text x="${sx(x)}" y="${sy(lo) + 17}" text-anchor="middle" font-size="11">${fmt(x)}</text>`);
  }
  out.push(`<line x1="${sx(0)}" y1="${sy(lo)}" x2="${sx(xsMax)}" y2="${sy(lo)}" stroke="#333"/>`);
  out.push(`<line x1="${sx(0)}" y1="${sy(lo)}" x2="${sx(0)}" y2="${sy(ysMax)}" stroke="#333"/>`);
  if (targetMs !== null) {
    out.push(`<line x1="${sx(0)}" y1="${sy(targetMs)}" x2="${sx(xsMax)}" y2="${sy(targetMs)}" stroke="#2b8a3e" stroke-width="1" stroke-dasharray="2 3"/>`);
    out.push(`<text x="${sx(xsMax) - 4}" y="${sy(targetMs) - 5}" text-anchor="end" font-size="11" fill="#2b8a3e">p99 target ${targetMs} ms</text>`);
  }
  out.push(`<text x="${dx + M.left + pw / 2}" y="${H - 10}" text-anchor="middle" font-size="12">offered load, calls/s</text>`);
  out.push(`<text x="${dx + 14}" y="${M.top + ph / 2}" text-anchor="middle" font-size="12" transform="rotate(-90 ${dx + 14} ${M.top + ph / 2})">latency, ms${log ? ' (log scale)' : ''}</text>`);
  for (const target of ['switchboard', 'bare'] as const) {
    const mine = points.filter((p) => p.target === target).sort((a, b) => a.offeredRate - b.offeredRate);
    for (const [q, dash, width] of [['p50', '5 4', 1.5], ['p99', '', 2.5]] as const) {
      const pts = mine.filter((p) => Number.isFinite(pick(p)[q])).map((p) => `${sx(p.offeredRate).toFixed(1)},${sy(pick(p)[q]).toFixed(1)}`);
      if (pts.length === 0) continue;
      out.push(`<polyline fill="none" stroke="${COLORS[target]}" stroke-width="${width}"${dash ? ` stroke-dasharray="${dash}"` : ''} points="${pts.join(' ')}"/>`);
      for (const pt of pts) {
        const [cx, cy] = pt.split(',');
        out.push(`<circle cx="${cx}" cy="${cy}" r="3" fill="${COLORS[target]}"/>`);
      }
    }
  }
  return out.join('\n');
}

/** Two panels (request→incoming, request→answer) with p50 dashed and p99 solid per target. */
export function latencyChart(load: LoadResult, subtitle: string): string {
  const width = W * 2;
  const legendY = H + 8;
  const legend: string[] = [];
  let lx = M.left;
  for (const target of ['switchboard', 'bare'] as const) {
    for (const [q, dash] of [['p50', '5 4'], ['p99', '']] as const) {
      legend.push(`<line x1="${lx}" y1="${legendY}" x2="${lx + 28}" y2="${legendY}" stroke="${COLORS[target]}" stroke-width="2.5"${dash ? ` stroke-dasharray="${dash}"` : ''}/>`);
      legend.push(`<text x="${lx + 34}" y="${legendY + 4}" font-size="12">${target} ${q}</text>`);
      lx += 150;
    }
  }
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${H + 40}" viewBox="0 0 ${width} ${H + 40}" font-family="sans-serif">`,
    `<rect width="100%" height="100%" fill="white"/>`,
    panel(load.points, (p) => p.incoming, 'call:request → call:incoming', 0, 10),
    panel(load.points, (p) => p.answer, 'call:request → webrtc:answer received', W, null),
    ...legend,
    `<text x="${width - 8}" y="${H + 32}" text-anchor="end" font-size="10" fill="#666">${esc(subtitle)}</text>`,
    '</svg>',
    '',
  ].join('\n');
}
