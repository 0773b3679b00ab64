/**
 * Server processes under test: Switchboard (`packages/server/src/main.ts`) and
 * the bare relay (`bench/src/bare-relay.ts`), each its own Node process, pinned
 * to a core with `taskset` when available; CPU time and RSS read from /proc.
 */
import { existsSync } from 'node:fs';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';

export const ROOT = fileURLToPath(new URL('../../', import.meta.url));
/**
 * Switchboard runs as `npm start` runs it: the compiled `dist/main.js` (built by
 * `npm install` / `npm run build`), not TypeScript through a loader, which would
 * add the loader's and the transpiler's own overhead (e.g. esbuild's `__name`
 * wrappers on every closure) to the server's CPU figures. `--server-src` runs
 * the sources through tsx instead.
 */
const SERVER_DIST = join(ROOT, 'packages/server/dist/main.js');
const SERVER_SRC = join(ROOT, 'packages/server/src/main.ts');
const BARE_MAIN = join(ROOT, 'bench/src/bare-relay.ts');
export const BENCH_SECRET = 'bench-secret-0123456789-abcdefghijklmnopqrstuvwxyz';

export type ServerKind = 'switchboard' | 'bare';

let tasksetOk: boolean | undefined;
export function hasTaskset(): boolean {
  tasksetOk ??= spawnSync('taskset', ['-p', String(process.pid)], { stdio: 'ignore' }).status === 0;
  return tasksetOk;
}

let ticks: number | undefined;
/** Clock ticks per second of /proc/<pid>/stat times. */
export function clockTicks(): number {
  if (ticks === undefined) {
    const out = spawnSync('getconf', ['CLK_TCK'], { encoding: 'utf8' });
    const n = Number(out.stdout?.trim());
    ticks = Number.isFinite(n) && n > 0 ? n : 100;
  }
  return ticks;
}

/** User + system CPU time of a whole process (every thread), in ms. */
export function procCpuMs(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  // Fields after "(comm)": state is field 3, utime 14, stime 15.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return ((Number(fields[11]) + Number(fields[12])) * 1000) / clockTicks();
}

/** Resident set size of a process, in bytes. */
export function procRssBytes(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const m = /^VmRSS:\s+(\d+)\s+kB/m.exec(status);
  return m ? Number(m[1]) * 1024 : 0;
}

/** Cores this process could use at start-up (read before pinning narrows it). */
const CORES = availableParallelism();
export function cpuCount(): number {
  return CORES;
}

/** Pins this process (all its threads) to one core. */
export function pinSelf(cpu: number): boolean {
  if (!hasTaskset() || cpu >= cpuCount()) return false;
  return spawnSync('taskset', ['-a', '-p', '-c', String(cpu), String(process.pid)], { stdio: 'ignore' }).status === 0;
}

/** Spawns a command pinned to `cpu`, or to every core when `cpu` is null and taskset exists (children inherit our pin). */
export function spawnPinned(cpu: number | null, command: string, args: string[], options: Parameters<typeof spawn>[2]): ChildProcess {
  if (!hasTaskset()) return spawn(command, args, options);
  const cpus = cpu !== null && cpu < cpuCount() ? String(cpu) : `0-${cpuCount() - 1}`;
  // taskset execs the command: the child's pid is the command's own.
  return spawn('taskset', ['-c', cpus, command, ...args], options);
}

import { freePort } from '../../test/support/ports.js';

export { freePort };

/** What a server printed at warn level or above. */
export interface LogSummary {
  warnings: number;
  errors: number;
  /** First lines of each distinct message (at most a few). */
  samples: string[];
  stderr: string;
}

export interface ServerProcess {
  readonly label: string;
  readonly kind: ServerKind;
  readonly pid: number;
  readonly url: string;
  readonly log: LogSummary;
  /** Set when the process ended before `stop()`. */
  crashed: string | null;
  cpuMs(): number;
  rssBytes(): number;
  /** V8 heap in use: `/metrics` for Switchboard, `/memory` for the bare relay. */
  heapUsedBytes(): Promise<number | null>;
  /**
   * The longest event-loop delay (ms) since the last call, which resets it:
   * Switchboard's `nodejs_eventloop_lag_max_seconds` (`/metrics`), the bare relay's `/loop`.
   */
  eventLoopMaxMs(): Promise<number | null>;
  /** Switchboard's error answers by code and rate-limit refusals, from `/metrics`. */
  errorCounters(): Promise<Record<string, number>>;
  /** Switchboard: how many of one client event it has received (`switchboard_events_total`); null for the bare relay or when unread. */
  eventsReceived(event: string): Promise<number | null>;
  stop(): Promise<void>;
}

export interface StartOptions {
  label: string;
  kind: ServerKind;
  env?: Record<string, string>;
  cpu: number | null;
  logLevel?: string;
  /** Extra flags for node itself (e.g. `--cpu-prof`, which NODE_OPTIONS refuses). */
  nodeArgs?: string[];
  /** Run Switchboard from its TypeScript sources (tsx) instead of the built dist. */
  fromSource?: boolean;
}

function summarise(log: LogSummary, line: string): void {
  let entry: { level?: unknown; msg?: unknown; err?: unknown };
  try {
    entry = JSON.parse(line) as typeof entry;
  } catch {
    entry = { level: 40, msg: line };
  }
  const level = typeof entry.level === 'number' ? entry.level : 30;
  if (level < 40) return;
  if (level >= 50) log.errors++;
  else log.warnings++;
  const msg = String(entry.msg ?? '');
  if (log.samples.length < 8 && !log.samples.some((s) => s.includes(JSON.stringify(msg)))) log.samples.push(line.slice(0, 600));
}

async function waitHealthy(url: string, child: ChildProcess, stderr: () => string): Promise<void> {
  const deadline = Date.now() + 30_000;
  while (Date.now() < deadline) {
    if (child.exitCode !== null || child.signalCode !== null) throw new Error(`exited with ${child.exitCode ?? child.signalCode}: ${stderr().slice(-2000)}`);
    try {
      const res = await fetch(`${url}/healthz`);
      if (res.ok) return;
    } catch {
      // not listening yet
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`did not answer /healthz within 30 s: ${stderr().slice(-2000)}`);
}

function parseMetric(text: string, name: string): number | null {
  for (const line of text.split('\n')) {
    if (line.startsWith(`${name} `) || line.startsWith(`${name}{`)) {
      const value = Number(line.slice(line.lastIndexOf(' ') + 1));
      if (Number.isFinite(value)) return value;
    }
  }
  return null;
}

/**
 * The node flags of `npm start` (root package.json), so the bench runs the
 * built server exactly as it is started in production.
 */
function startFlags(): string[] {
  const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { scripts?: { start?: string } };
  const words = (pkg.scripts?.start ?? '').split(/\s+/);
  return words[0] === 'node' ? words.slice(1).filter((w) => w.startsWith('--')) : [];
}

/** What a server process's own endpoints tell: its heap, its event-loop delay, its error counters. */
function probesOf(kind: ServerKind, url: string): Pick<ServerProcess, 'heapUsedBytes' | 'eventLoopMaxMs' | 'errorCounters' | 'eventsReceived'> {
  return {
    async heapUsedBytes() {
      try {
        if (kind === 'bare') {
          const res = await fetch(`${url}/memory`);
          return ((await res.json()) as { heapUsed: number }).heapUsed;
        }
        const text = await (await fetch(`${url}/metrics`)).text();
        return parseMetric(text, 'switchboard_process_nodejs_heap_size_used_bytes') ?? parseMetric(text, 'nodejs_heap_size_used_bytes');
      } catch {
        return null;
      }
    },
    async eventLoopMaxMs() {
      try {
        if (kind === 'bare') return ((await (await fetch(`${url}/loop`)).json()) as { maxMs: number }).maxMs;
        const seconds = parseMetric(await (await fetch(`${url}/metrics`)).text(), 'switchboard_process_nodejs_eventloop_lag_max_seconds');
        return seconds === null ? null : seconds * 1000;
      } catch {
        return null;
      }
    },
    async errorCounters() {
      if (kind === 'bare') return {};
      try {
        const text = await (await fetch(`${url}/metrics`)).text();
        const counters: Record<string, number> = {};
        for (const line of text.split('\n')) {
          const m = /^switchboard_(errors_total|rate_limited_total)\{(?:code|event)="([^"]+)"\} (\S+)$/.exec(line);
          if (m && Number(m[3]) > 0) counters[`${m[1] === 'errors_total' ? 'error' : 'rate_limited'}:${m[2]}`] = Number(m[3]);
        }
        return counters;
      } catch {
        return {};
      }
    },
    async eventsReceived(event) {
      if (kind === 'bare') return null;
      try {
        const text = await (await fetch(`${url}/metrics`)).text();
        const line = text.split('\n').find((l) => l.startsWith(`switchboard_events_total{event=${JSON.stringify(event)}} `));
        // A counter not incremented yet is not listed: none received.
        return line === undefined ? 0 : Number(line.slice(line.lastIndexOf(' ') + 1));
      } catch {
        return null;
      }
    },
  };
}

async function startOnce(options: StartOptions): Promise<ServerProcess> {
  const port = await freePort();
  const fromDist = options.kind === 'switchboard' && !options.fromSource && existsSync(SERVER_DIST);
  const main = options.kind === 'switchboard' ? (fromDist ? SERVER_DIST : SERVER_SRC) : BARE_MAIN;
  const loader = fromDist ? [] : ['--conditions=source', '--import', 'tsx'];
  const flags = options.kind === 'switchboard' ? startFlags() : [];
  const child = spawnPinned(options.cpu, process.execPath, [...flags, ...(options.nodeArgs ?? []), ...loader, main], {
    cwd: ROOT,
    env: {
      PATH: process.env.PATH ?? '',
      HOME: process.env.HOME ?? '/tmp',
      HOST: '127.0.0.1',
      PORT: String(port),
      JWT_SECRET: BENCH_SECRET,
      LOG_LEVEL: options.logLevel ?? 'warn',
      RATE_LIMITS: 'off',
      NODE_ID: options.label,
      ...options.env,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const log: LogSummary = { warnings: 0, errors: 0, samples: [], stderr: '' };
  child.stderr!.on('data', (d: Buffer) => {
    log.stderr = (log.stderr + d.toString()).slice(-8000);
  });
  createInterface({ input: child.stdout! }).on('line', (line) => summarise(log, line));
  const url = `http://127.0.0.1:${port}`;
  let stopping = false;
  const proc: ServerProcess = {
    label: options.label,
    kind: options.kind,
    pid: child.pid!,
    url,
    log,
    crashed: null,
    cpuMs: () => procCpuMs(child.pid!),
    rssBytes: () => procRssBytes(child.pid!),
    ...probesOf(options.kind, url),
    async stop() {
      stopping = true;
      if (child.exitCode !== null || child.signalCode !== null) return;
      const exited = once(child, 'exit');
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 4000);
      await exited;
      clearTimeout(timer);
    },
  };
  child.once('exit', (code, signal) => {
    if (!stopping) proc.crashed = `exited with ${code ?? signal}: ${log.stderr.slice(-1000)}`;
  });
  try {
    await waitHealthy(url, child, () => log.stderr);
  } catch (err) {
    child.kill('SIGKILL');
    throw err;
  }
  return proc;
}

/** Starts a server process and waits until `/healthz` answers (a port race is retried). */
/** `K=V,K2=V2` (as scripts take `SERVER_ENV`) as an environment; empty for undefined. */
export function envList(spec: string | undefined): Record<string, string> {
  const env: Record<string, string> = {};
  for (const pair of (spec ?? '').split(',')) {
    const at = pair.indexOf('=');
    if (at > 0) env[pair.slice(0, at)] = pair.slice(at + 1);
  }
  return env;
}

export async function startProcess(options: StartOptions): Promise<ServerProcess> {
  let lastError: unknown;
  for (let attempt = 0; attempt < 3; attempt++) {
    try {
      return await startOnce(options);
    } catch (err) {
      lastError = err;
      if (!String(err).includes('EADDRINUSE')) break;
    }
  }
  throw new Error(`${options.label} did not start: ${lastError instanceof Error ? lastError.message : String(lastError)}`);
}
