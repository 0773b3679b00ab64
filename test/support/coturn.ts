/**
 * A real coturn (Debian's `turnserver`) for a test, on 127.0.0.1 and a free
 * port, with TURN REST credentials (`--use-auth-secret`): give a Switchboard
 * server `TURN_URLS=<url>` and `TURN_SECRET=<secret>` (see `serverEnv`).
 * Loopback peers are allowed, since every party of the test is on this
 * machine. Started by PID and stopped by that PID; its log (stdout, verbose)
 * is kept in memory, and readiness is its "listener opened" lines, awaited
 * as they are written, within a bound.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort } from './ports.js';

const TURNSERVER = process.env.TURNSERVER_PATH ?? 'turnserver';
const LOG_LIMIT = 2_000_000;

export interface Coturn {
  /** The daemon's process id. */
  readonly pid: number;
  readonly port: number;
  /** coturn's `static-auth-secret`. */
  readonly secret: string;
  /** `turn:127.0.0.1:<port>` (UDP, and TCP with `?transport=tcp`). */
  readonly url: string;
  /** `stun:127.0.0.1:<port>`: coturn answers STUN binding requests too. */
  readonly stunUrl: string;
  /** Environment for a Switchboard server that hands this TURN server out. */
  readonly serverEnv: Record<string, string>;
  /** What coturn logged so far. */
  log(): string;
  /** Relay allocations coturn granted so far (from its verbose log), by TURN REST user name. */
  allocations(): string[];
  /** Stops coturn (SIGTERM, then SIGKILL after a grace period) and removes its folder. Safe to call twice. */
  stop(): Promise<void>;
}

export async function startCoturn(options: { secret?: string; timeoutMs?: number } = {}): Promise<Coturn> {
  const timeoutMs = options.timeoutMs ?? 15_000;
  const secret = options.secret ?? randomBytes(24).toString('base64url');
  const port = await freePort();
  const dir = mkdtempSync(join(tmpdir(), 'switchboard-coturn-'));
  const args = [
    '-n', // no configuration file: only these flags
    '--listening-ip=127.0.0.1',
    '--relay-ip=127.0.0.1',
    `--listening-port=${port}`,
    '--use-auth-secret',
    `--static-auth-secret=${secret}`,
    '--realm=switchboard.test',
    '--allow-loopback-peers',
    '--no-tls',
    '--no-dtls',
    '--no-cli',
    '--no-rfc5780',
    '--no-software-attribute',
    '--no-multicast-peers',
    `--pidfile=${join(dir, 'turn.pid')}`,
    `--userdb=${join(dir, 'turndb')}`,
    // --verbose: the listeners (the readiness signal) and each allocation's user are logged only then.
    '--verbose',
    '--log-file=stdout',
    '--simple-log',
  ];

  const child: ChildProcess = spawn(TURNSERVER, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  let log = '';
  const listeners = new Set<() => void>();
  const append = (chunk: string) => {
    if (log.length < LOG_LIMIT) log += chunk;
    for (const listener of listeners) listener();
  };
  child.stdout!.setEncoding('utf8').on('data', append);
  child.stderr!.setEncoding('utf8').on('data', append);
  let exited: { code: number | null; signal: NodeJS.Signals | null } | undefined;
  const exit = new Promise<void>((resolve) => {
    child.once('exit', (code, signal) => {
      exited = { code, signal };
      for (const listener of listeners) listener();
      resolve();
    });
  });
  const spawnError = await new Promise<Error | undefined>((resolve) => {
    child.once('spawn', () => resolve(undefined));
    child.once('error', (err) => resolve(err));
  });
  if (spawnError || child.pid === undefined) {
    rmSync(dir, { recursive: true, force: true });
    throw new Error(`could not start coturn (${TURNSERVER}): ${spawnError?.message ?? 'no pid'}; install Debian's coturn`);
  }
  const pid = child.pid;

  let stopped = false;
  const stop = async (): Promise<void> => {
    if (stopped) return;
    stopped = true;
    if (!exited) {
      process.kill(pid, 'SIGTERM');
      const grace = setTimeout(() => {
        if (!exited) process.kill(pid, 'SIGKILL');
      }, 3000);
      await exit;
      clearTimeout(grace);
    }
    rmSync(dir, { recursive: true, force: true });
  };

  // Ready once it logged both its UDP and its TCP listener on our port.
  const ready = [`UDP listener opened on: 127.0.0.1:${port}`, `TCP listener opened on : 127.0.0.1:${port}`];
  try {
    await new Promise<void>((resolve, reject) => {
      const check = () => {
        if (ready.every((line) => log.includes(line))) done();
        else if (exited) done(new Error(`coturn exited at start (code ${exited.code}, signal ${exited.signal})`));
      };
      const timer = setTimeout(() => done(new Error(`coturn did not open its listeners on 127.0.0.1:${port} within ${timeoutMs} ms`)), timeoutMs);
      const done = (err?: Error) => {
        clearTimeout(timer);
        listeners.delete(check);
        if (err) reject(err);
        else resolve();
      };
      listeners.add(check);
      check();
    });
  } catch (err) {
    await stop();
    throw new Error(`${(err as Error).message}:\n${log.split('\n').slice(-30).join('\n')}`, { cause: err });
  }

  const url = `turn:127.0.0.1:${port}`;
  return {
    pid,
    port,
    secret,
    url,
    stunUrl: `stun:127.0.0.1:${port}`,
    serverEnv: { TURN_URLS: url, TURN_SECRET: secret },
    log: () => log,
    allocations: () => [...log.matchAll(/user <([^>]*)>: incoming packet ALLOCATE processed, success/g)].map((m) => m[1]!),
    stop,
  };
}
