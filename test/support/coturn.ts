/**
 * A real coturn (Debian's `turnserver`) for a test, on 127.0.0.1 and a free
 * port, with TURN REST credentials (`--use-auth-secret`): give a Switchboard
 * server `TURN_URLS=<url>` and `TURN_SECRET=<secret>` (see `serverEnv`).
 * Loopback peers are allowed, since every party of the test is on this
 * machine. Started by PID and stopped by that PID; its log (stdout, verbose)
 * is kept in memory, and readiness is its "listener opened" lines, awaited
 * as they are written, within a bound.
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startDaemon } from './daemon.js';
import { freePort } from './ports.js';

const TURNSERVER = process.env.TURNSERVER_PATH ?? 'turnserver';

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

  const daemon = await startDaemon({ command: TURNSERVER, args, dir, install: 'coturn' });

  // Ready once it logged both its UDP and its TCP listener on our port.
  const ready = [`UDP listener opened on: 127.0.0.1:${port}`, `TCP listener opened on : 127.0.0.1:${port}`];
  try {
    await new Promise<void>((resolve, reject) => {
      const check = () => {
        const exited = daemon.exited();
        if (ready.every((line) => daemon.log().includes(line))) done();
        else if (exited) done(new Error(`coturn exited at start (code ${exited.code}, signal ${exited.signal})`));
      };
      const timer = setTimeout(() => done(new Error(`coturn did not open its listeners on 127.0.0.1:${port} within ${timeoutMs} ms`)), timeoutMs);
      const unlisten = daemon.onChange(check);
      const done = (err?: Error) => {
        clearTimeout(timer);
        unlisten();
        if (err) reject(err);
        else resolve();
      };
      check();
    });
  } catch (err) {
    await daemon.stop();
    throw new Error(`${(err as Error).message}:\n${daemon.log().split('\n').slice(-30).join('\n')}`, { cause: err });
  }

  const url = `turn:127.0.0.1:${port}`;
  return {
    pid: daemon.pid,
    port,
    secret,
    url,
    stunUrl: `stun:127.0.0.1:${port}`,
    serverEnv: { TURN_URLS: url, TURN_SECRET: secret },
    log: daemon.log,
    allocations: () => [...daemon.log().matchAll(/user <([^>]*)>: incoming packet ALLOCATE processed, success/g)].map((m) => m[1]!),
    stop: daemon.stop,
  };
}
