/** Before/after snapshots of the server's and the generator's CPU time. */
import { readFileSync } from 'node:fs';
import { performance } from 'node:perf_hooks';
import { targetCpuMs, type Target } from './targets.js';

export interface Snapshot {
  at: number;
  serverCpuMs: number;
  generatorCpuMs: number;
  /** /proc/pressure/cpu "some" total, µs (null without PSI). */
  pressureUs: number | null;
}

/** Machine-wide CPU pressure: µs during which some runnable task waited for a CPU. */
export function cpuPressureUs(): number | null {
  try {
    const m = /^some .*total=(\d+)/m.exec(readFileSync('/proc/pressure/cpu', 'utf8'));
    return m ? Number(m[1]) : null;
  } catch {
    return null;
  }
}

export function snapshot(target: Target): Snapshot {
  const u = process.cpuUsage();
  return { at: performance.now(), serverCpuMs: targetCpuMs(target), generatorCpuMs: (u.user + u.system) / 1000, pressureUs: cpuPressureUs() };
}

export interface CpuDelta {
  elapsedMs: number;
  serverCpuMs: number;
  /** Server CPU as a share of one core, %. */
  serverCpuPct: number;
  generatorCpuMs: number;
  /** Generator CPU as a share of one core, %. */
  generatorCpuPct: number;
  /** Share of the window in which some task on the machine waited for a CPU (PSI), %: how contended the machine was. */
  cpuPressurePct: number;
}

export function delta(a: Snapshot, b: Snapshot): CpuDelta {
  const elapsedMs = b.at - a.at;
  const serverCpuMs = b.serverCpuMs - a.serverCpuMs;
  const generatorCpuMs = b.generatorCpuMs - a.generatorCpuMs;
  return {
    elapsedMs,
    serverCpuMs,
    serverCpuPct: (100 * serverCpuMs) / elapsedMs,
    generatorCpuMs,
    generatorCpuPct: (100 * generatorCpuMs) / elapsedMs,
    cpuPressurePct: a.pressureUs !== null && b.pressureUs !== null ? (100 * (b.pressureUs - a.pressureUs)) / 1000 / elapsedMs : NaN,
  };
}

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** Waits for `promise` at most `ms`; the timer is cleared either way (no stray handle keeps the process up). */
export async function within(promise: Promise<unknown>, ms: number): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  await Promise.race([promise, new Promise<void>((r) => (timer = setTimeout(r, ms)))]);
  clearTimeout(timer);
}
