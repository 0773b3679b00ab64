/**
 * A private PulseAudio for a test: one null sink (sound goes nowhere, but a
 * browser has an output to open, so its AudioContext runs), listening on a
 * socket in a temporary folder, with its own HOME and runtime folders so it
 * neither finds nor disturbs any other PulseAudio on the machine. Started by
 * PID and stopped by that PID.
 *
 * Give a browser `pulse.env` (PULSE_SERVER, and a client config that never
 * autospawns another daemon).
 */
import { once } from 'node:events';
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startDaemon } from './daemon.js';

const PULSEAUDIO = process.env.PULSEAUDIO_PATH ?? 'pulseaudio';

export interface PulseAudio {
  /** The daemon's process id. */
  readonly pid: number;
  /** `unix:<socket>`, for PULSE_SERVER. */
  readonly server: string;
  /** Environment for a client of this daemon (a browser): PULSE_SERVER and PULSE_CLIENTCONFIG. */
  readonly env: Record<string, string>;
  /** What the daemon wrote so far (its errors and warnings: it logs to stderr). */
  log(): string;
  /** Stops the daemon (SIGTERM, then SIGKILL after a grace period) and removes its folder. Safe to call twice. */
  stop(): Promise<void>;
}

export async function startPulseAudio(options: { timeoutMs?: number } = {}): Promise<PulseAudio> {
  const timeoutMs = options.timeoutMs ?? 10_000;
  const dir = mkdtempSync(join(tmpdir(), 'switchboard-pulse-'));
  const home = join(dir, 'home');
  const runtime = join(dir, 'run');
  for (const d of [home, runtime]) mkdirSync(d, { recursive: true, mode: 0o700 });
  const socket = join(dir, 'native');
  const clientConfig = join(dir, 'client.conf');
  writeFileSync(clientConfig, 'autospawn = no\n');
  const server = `unix:${socket}`;

  const args = [
    '-n', // no default.pa: only the modules below
    '--daemonize=no',
    '--system=false', // as root PulseAudio warns but runs as a per-user daemon
    '--exit-idle-time=-1',
    '--disallow-exit',
    '--use-pid-file=false',
    '--log-target=stderr',
    '--log-level=warning',
    '-L',
    'module-null-sink sink_name=switchboard_null sink_properties=device.description=Switchboard-test',
    '-L',
    `module-native-protocol-unix socket=${socket} auth-anonymous=1`,
  ];
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    HOME: home,
    XDG_RUNTIME_DIR: runtime,
    XDG_CONFIG_HOME: join(home, '.config'),
    PULSE_RUNTIME_PATH: runtime,
    PULSE_STATE_PATH: join(dir, 'state'),
    PULSE_CLIENTCONFIG: clientConfig,
    // No session bus to find: say so, rather than have it try to autolaunch one.
    DBUS_SESSION_BUS_ADDRESS: 'disabled:',
  };
  delete env.PULSE_SERVER;

  const daemon = await startDaemon({ command: PULSEAUDIO, args, env, dir, install: 'pulseaudio', logLimit: 64_000 });

  // Ready once its socket takes a connection.
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const exited = daemon.exited();
    if (exited) {
      await daemon.stop();
      throw new Error(`PulseAudio exited at start (code ${exited.code}, signal ${exited.signal}): ${daemon.log().trim()}`);
    }
    if (await accepts(socket)) break;
    if (Date.now() > deadline) {
      await daemon.stop();
      throw new Error(`PulseAudio did not listen on ${socket} within ${timeoutMs} ms: ${daemon.log().trim()}`);
    }
    await Promise.race([new Promise((resolve) => setTimeout(resolve, 50)), daemon.exit]);
  }

  return {
    pid: daemon.pid,
    server,
    env: { PULSE_SERVER: server, PULSE_CLIENTCONFIG: clientConfig },
    log: daemon.log,
    stop: daemon.stop,
  };
}

async function accepts(socket: string): Promise<boolean> {
  const conn = connect(socket);
  let timer: NodeJS.Timeout | undefined;
  try {
    await Promise.race([
      once(conn, 'connect'),
      new Promise((_, reject) => (timer = setTimeout(() => reject(new Error('connect timeout')), 1000))),
    ]);
    return true;
  } catch {
    return false;
  } finally {
    clearTimeout(timer);
    conn.destroy();
  }
}
